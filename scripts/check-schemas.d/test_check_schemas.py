"""Tests of check_schemas.py: each rule on a small schema, then on the last
released contract (proto/baseline/, not the files being edited in proto/,
so that a breaking edit there is reported by the check, not by these
tests). Run by scripts/check-schemas."""

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import check_schemas as cs

REPO = Path(__file__).resolve().parents[2]
RELEASED = REPO / "proto" / "baseline"
PAID = "events/v1/OrderPaid.schema.json"


def schema(path=PAID, **body):
    return {"$schema": cs.DIALECT, "$id": cs.uri_of(path), "type": "object", **body}


def paid():
    """A cut-down OrderPaid v1 with the shapes the real files use."""
    return schema(
        additionalProperties=False,
        required=["order_id", "amount_minor", "currency"],
        properties={
            "order_id": {"$ref": "#/$defs/uuid"},
            "amount_minor": {"type": "integer", "minimum": 0, "maximum": 10**18},
            "currency": {"$ref": "#/$defs/currency"},
            "payment_reference": {"allOf": [{"$ref": "#/$defs/text"}], "maxLength": 100},
            "note": {"type": ["string", "null"]},
            "ratio": {"type": "number"},
            "method": {"type": "string", "enum": ["card", "transfer"]},
            "customer": {"$ref": "#/$defs/customer"},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}},
        },
        **{"$defs": {
            "uuid": {"type": "string", "format": "uuid", "pattern": "^[0-9a-f-]{36}$"},
            "currency": {"type": "string", "minLength": 3, "maxLength": 3, "pattern": "^[A-Z]{3}$"},
            "text": {"type": "string", "minLength": 1},
            "customer": {
                "type": "object",
                "required": ["customer_id"],
                "properties": {"customer_id": {"$ref": "#/$defs/uuid"}, "name": {"type": "string"}},
            },
        }},
    )


def diff(change, base=None, path=PAID):
    old = base or paid()
    new = copy.deepcopy(old)
    change(new)
    return cs.compare_trees({path: old}, {path: new})


def breaking(findings):
    return [str(f) for f in findings if f.breaking]


def notes(findings):
    return [str(f) for f in findings if not f.breaking]


def only_break(findings, path, *words):
    """Exactly one breaking finding, at `path`, whose message has `words`."""
    b = [f for f in findings if f.breaking]
    assert len(b) == 1, [str(f) for f in findings]
    assert b[0].where == PAID and b[0].path == path, str(b[0])
    for w in words:
        assert w in b[0].message, str(b[0])
    return str(b[0])


# ---------------------------------------------------------------- what fails


def test_unchanged_and_annotations_only_pass():
    def reword(s):
        s["description"] = "reworded"
        s["properties"]["amount_minor"]["description"] = "in minor units"
        s["examples"] = [{"anything": 1}]
        s["$comment"] = "why"
    assert diff(lambda s: None) == []
    assert diff(reword) == []


def test_property_removed():
    msg = only_break(diff(lambda s: s["properties"].pop("payment_reference")), "$.payment_reference", "property removed")
    assert msg.startswith(f"BREAKING {PAID} $.payment_reference: property removed")


def test_required_property_removed():
    def drop(s):
        s["properties"].pop("currency")
        s["required"].remove("currency")
    only_break(diff(drop), "$.currency", "required property removed")


def test_property_renamed_is_a_removal_and_an_addition():
    def rename(s):
        s["properties"]["amount"] = s["properties"].pop("amount_minor")
        s["required"] = ["amount" if r == "amount_minor" else r for r in s["required"]]
    found = diff(rename)
    assert [(f.path, f.breaking) for f in found if f.breaking] == [("$.amount_minor", True), ("$.amount", True)]
    assert "a rename is a removal plus an addition" in breaking(found)[0]
    assert "new required property" in breaking(found)[1]


def test_nested_property_removed_names_its_path():
    only_break(diff(lambda s: s["$defs"]["customer"]["properties"].pop("name")), "$.customer.name", "property removed")


@pytest.mark.parametrize(
    "field,old,new,shown",
    [
        ("note", ["string", "null"], "string", '["null", "string"] -> "string"'),
        ("ratio", "number", "integer", '"number" -> "integer"'),
        ("amount_minor", "integer", "string", '"integer" -> "string"'),
    ],
)
def test_type_narrowed(field, old, new, shown):
    base = paid()
    base["properties"][field]["type"] = old
    msg = only_break(diff(lambda s: s["properties"][field].__setitem__("type", new), base), f"$.{field}", "type narrowed")
    assert shown in msg


def test_type_added_where_any_was_valid():
    base = paid()
    base["properties"]["extra"] = {}
    only_break(diff(lambda s: s["properties"]["extra"].__setitem__("type", "string"), base), "$.extra", "any type")


def test_new_required_field():
    def add(s):
        s["properties"]["paid_by"] = {"type": "string"}
        s["required"].append("paid_by")
    only_break(diff(add), "$.paid_by", "new required property")


def test_optional_made_required():
    only_break(diff(lambda s: s["required"].append("payment_reference")), "$.payment_reference", "made required")


def test_required_made_optional_breaks_consumers():
    only_break(diff(lambda s: s["required"].remove("currency")), "$.currency", "no longer required", "consumers")


def test_enum_value_removed():
    msg = only_break(diff(lambda s: s["properties"]["method"]["enum"].remove("transfer")), "$.method", "enum value removed")
    assert '"transfer"' in msg


def test_enum_or_const_added_restricts():
    only_break(diff(lambda s: s["properties"]["note"].__setitem__("const", "x")), "$.note", "restricted to")


@pytest.mark.parametrize("old", [None, True, {}])
def test_additional_properties_tightened(old):
    base = paid()
    if old is None:
        base.pop("additionalProperties")
    else:
        base["additionalProperties"] = old
    only_break(diff(lambda s: s.__setitem__("additionalProperties", False), base), "$.*",
               "additionalProperties true (or absent) -> false", "tightened")


def test_additional_properties_tightened_in_a_def_names_the_field():
    only_break(diff(lambda s: s["$defs"]["customer"].__setitem__("additionalProperties", False)),
               "$.customer.*", "tightened")


@pytest.mark.parametrize(
    "change,path,words",
    [
        (lambda s: s["properties"]["amount_minor"].__setitem__("maximum", 10), "$.amount_minor", "maximum changed: 1000000000000000000 -> 10"),
        (lambda s: s["properties"]["amount_minor"].__setitem__("minimum", 1), "$.amount_minor", "minimum changed: 0 -> 1"),
        (lambda s: s["properties"]["amount_minor"].__setitem__("exclusiveMaximum", 99), "$.amount_minor", "exclusiveMaximum added"),
        (lambda s: s["properties"]["payment_reference"].__setitem__("maxLength", 50), "$.payment_reference", "maxLength changed: 100 -> 50"),
        (lambda s: s["$defs"]["text"].__setitem__("minLength", 2), "$.payment_reference", "minLength changed: 1 -> 2"),
        (lambda s: s["$defs"]["currency"].__setitem__("pattern", "^[A-Z]{2,3}$"), "$.currency", "pattern changed"),
        (lambda s: s["properties"]["note"].__setitem__("pattern", "^a"), "$.note", "pattern added"),
        (lambda s: s["properties"]["note"].__setitem__("format", "email"), "$.note", "format added"),
        (lambda s: s["properties"]["tags"]["items"].__setitem__("maxLength", 10), "$.tags[*]", "maxLength changed: 20 -> 10"),
        (lambda s: s["properties"]["tags"].__setitem__("maxItems", 3), "$.tags", "maxItems added"),
        (lambda s: s["properties"]["tags"].__setitem__("uniqueItems", True), "$.tags", "uniqueItems added"),
    ],
)
def test_value_constraints_tightened(change, path, words):
    only_break(diff(change), path, words)


def test_a_changed_def_is_reported_at_every_field_using_it():
    found = diff(lambda s: s["$defs"]["uuid"].__setitem__("pattern", "^[0-9a-f]{32}$"))
    assert sorted(f.path for f in found if f.breaking) == ["$.customer.customer_id", "$.order_id"]


def test_keywords_not_modelled_fail_when_they_change():
    base = paid()
    base["properties"]["note"] = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    msg = only_break(diff(lambda s: s["properties"]["note"]["anyOf"].pop(), base), "$.note", "anyOf changed")
    assert "cannot show this compatible" in msg


def test_schema_file_removed():
    found = cs.compare_trees({PAID: paid()}, {})
    assert breaking(found) == [f"BREAKING {PAID}: schema removed (consumers of this version, and the events of it on the topic, still need it)"]


def test_recursive_schema_terminates():
    tree = schema(properties={"child": {"$ref": "#"}, "name": {"type": "string"}})
    changed = copy.deepcopy(tree)
    changed["properties"]["name"]["maxLength"] = 5
    found = cs.compare_trees({PAID: tree}, {PAID: changed})
    assert sorted(f.path for f in found if f.breaking) == ["$.child.name", "$.name"]


# ---------------------------------------------------------------- what passes


def test_new_optional_field_passes_with_a_note():
    found = diff(lambda s: s["properties"].__setitem__("channel", {"type": "string"}))
    assert breaking(found) == []
    assert notes(found) == [f"NOTE {PAID} $.channel: new optional property"]


@pytest.mark.parametrize(
    "field,old,new",
    [("amount_minor", "integer", "number"), ("note", "string", ["string", "null"]), ("ratio", "number", None)],
)
def test_widened_type_passes_with_a_note(field, old, new):
    base = paid()
    base["properties"][field]["type"] = old
    def widen(s):
        if new is None:
            s["properties"][field].pop("type")
        else:
            s["properties"][field]["type"] = new
    found = diff(widen, base)
    assert breaking(found) == []
    assert any("type widened" in n for n in notes(found))


def test_new_enum_value_passes_with_a_note():
    found = diff(lambda s: s["properties"]["method"]["enum"].append("voucher"))
    assert breaking(found) == []
    assert notes(found) == [f'NOTE {PAID} $.method: enum value added: "voucher": consumers must skip or dead-letter a value they do not know']


def test_loosened_constraints_pass_with_notes():
    def loosen(s):
        s["properties"]["amount_minor"]["maximum"] = 10**19
        s["properties"]["amount_minor"].pop("minimum")
        s["$defs"]["currency"].pop("pattern")
        s.pop("additionalProperties")
    found = diff(loosen)
    assert breaking(found) == []
    assert len(notes(found)) == 4


def test_a_new_version_beside_the_old_one_passes():
    v2 = paid()
    v2["$id"] = cs.uri_of("events/v2/OrderPaid.schema.json")
    v2["properties"].pop("payment_reference")
    v2["required"].append("note")
    old = {PAID: paid()}
    new = {PAID: paid(), "events/v2/OrderPaid.schema.json": v2}
    found = cs.compare_trees(old, new)
    assert breaking(found) == []
    assert notes(found) == ["NOTE events/v2/OrderPaid.schema.json: new schema: nothing to compare it with"]


# ---------------------------------------------------------------- AsyncAPI


def real_tree():
    return cs.load_dir(RELEASED)


def test_asyncapi_header_enum_value_removed():
    old = real_tree()
    new = copy.deepcopy(old)
    new[cs.ASYNCAPI]["components"]["schemas"]["OrderEventHeaders"]["properties"]["event_type"]["enum"].remove("OrderPaid")
    found = [f for f in cs.compare_trees(old, new) if f.breaking]
    assert [str(f) for f in found] == [
        'BREAKING asyncapi.yaml#/components/schemas/OrderEventHeaders $.event_type: enum value removed: "OrderPaid" '
        f"({cs.FOR_HISTORY})"
    ]


def test_asyncapi_channel_address_and_messages():
    old = real_tree()
    new = copy.deepcopy(old)
    channel = new[cs.ASYNCAPI]["channels"]["orderEvents"]
    channel["address"] = "orders.events"
    channel["messages"].pop("OrderPaid")
    found = breaking(cs.compare_trees(old, new))
    assert any("#/channels/orderEvents: address changed: orders.events.v1 -> orders.events" in f for f in found)
    assert any("message OrderPaid removed from the channel" in f for f in found)


def test_asyncapi_wrapper_pointing_at_another_payload_file_fails():
    old = real_tree()
    new = copy.deepcopy(old)
    wrapper = new[cs.ASYNCAPI]["components"]["schemas"]["OrderPaidEnvelope"]["allOf"][1]
    wrapper["properties"]["payload"]["$ref"] = "./events/v2/OrderPaid.schema.json"
    found = breaking(cs.compare_trees(old, new))
    assert len(found) == 1 and "$.payload: $ref changed" in found[0], found


# ---------------------------------------------------------------- hygiene


def hygiene_of(change):
    tree = copy.deepcopy(real_tree())
    change(tree)
    return [str(f) for f in cs.hygiene(tree)]


def test_the_real_contract_is_clean():
    assert hygiene_of(lambda t: None) == []


def test_id_must_name_the_file():
    def wrong(t):
        t[PAID]["$id"] = "https://orderflow.dev/schemas/OrderPaid.schema.json"
    assert any("$id is" in f and "not 'https://orderflow.dev/schemas/events/v1/OrderPaid.schema.json'" in f for f in hygiene_of(wrong))


def test_every_ref_resolves():
    def dangling(t):
        t[PAID]["properties"]["currency"]["$ref"] = "#/$defs/money"
        t[cs.ASYNCAPI]["components"]["schemas"]["Envelope"]["$ref"] = "./events/envelop.schema.json"
    found = hygiene_of(dangling)
    assert any(f"{PAID}#/properties/currency" in f and "has no #/$defs/money" in f for f in found), found
    assert any("events/envelop.schema.json, which is no file under proto/" in f for f in found), found


def test_examples_must_validate():
    found = hygiene_of(lambda t: t[PAID]["examples"][0].__setitem__("amount_minor", -1))
    assert any("examples[0] is not valid" in f and "$.amount_minor" in f for f in found), found


def test_a_payload_schema_must_be_declared_and_published():
    def add(t):
        s = copy.deepcopy(t[PAID])
        s["$id"] = cs.uri_of("events/v1/OrderRefunded.schema.json")
        t["events/v1/OrderRefunded.schema.json"] = s
        s3 = copy.deepcopy(t[PAID])
        s3["$id"] = cs.uri_of("events/v3/OrderPaid.schema.json")
        t["events/v3/OrderPaid.schema.json"] = s3
    found = hygiene_of(add)
    assert any("OrderRefunded is not in the envelope's event_type enum" in f for f in found), found
    assert any("events/v1/OrderRefunded.schema.json: not referenced from asyncapi.yaml" in f for f in found), found
    assert any("versions of OrderPaid are [1, 3]" in f for f in found), found


def test_null_is_refused_by_convention():
    found = hygiene_of(lambda t: t[PAID]["properties"]["amount_minor"].__setitem__("type", ["integer", "null"]))
    assert found == [f"INVALID {PAID}#/properties/amount_minor: allows null: an optional field is left out, never null (proto/README.md)"]


def test_invalid_schema_is_reported():
    found = hygiene_of(lambda t: t[PAID]["properties"]["amount_minor"].__setitem__("type", "money"))
    assert any("not a valid draft 2020-12 schema" in f for f in found), found


# ---------------------------------------------------------------- end to end


@pytest.fixture
def proto_copy(tmp_path):
    """A proto/ whose files and baseline are both the released contract."""
    dst = tmp_path / "proto"
    shutil.copytree(RELEASED, dst / "baseline")
    shutil.copytree(RELEASED / "events", dst / "events")
    shutil.copyfile(RELEASED / cs.ASYNCAPI, dst / cs.ASYNCAPI)
    return dst


def test_released_contract_passes_against_itself(proto_copy, capsys):
    assert cs.main(["--proto", str(proto_copy)]) == 0
    assert "0 breaking, 0 invalid, 0 notes" in capsys.readouterr().out


def test_a_breaking_edit_fails_naming_file_and_field(proto_copy, capsys):
    f = proto_copy / "events/v1/OrderShipped.schema.json"
    s = json.loads(f.read_text())
    s["properties"]["tracking_number"]["maxLength"] = 40
    f.write_text(json.dumps(s))
    assert cs.main(["--proto", str(proto_copy)]) == 1
    err = capsys.readouterr().out
    assert "BREAKING events/v1/OrderShipped.schema.json $.tracking_number: maxLength changed: 100 -> 40, tightened" in err
    assert "events/v<N+1>/<EventType>.schema.json" in err


def test_update_baseline_then_compare_with_a_git_ref(proto_copy, tmp_path, capsys, monkeypatch):
    assert cs.main(["--proto", str(proto_copy), "--update-baseline", "9.9.9"]) == 0
    assert (proto_copy / "baseline/RELEASE").read_text() == "9.9.9\n"
    git = lambda *a: subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("add", "proto")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "release")
    git("tag", "v9.9.9")
    a = proto_copy / cs.ASYNCAPI
    doc = yaml.safe_load(a.read_text())
    doc["channels"].pop("orderEventsDeadLetter")
    a.write_text(yaml.safe_dump(doc))
    monkeypatch.chdir(tmp_path)
    assert cs.main(["--proto", "proto", "--baseline-ref", "v9.9.9"]) == 1
    assert "asyncapi.yaml#/channels/orderEventsDeadLetter: channel removed" in capsys.readouterr().out
