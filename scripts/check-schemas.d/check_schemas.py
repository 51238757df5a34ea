"""Compatibility and hygiene check of the published event contract in proto/.

Run by scripts/check-schemas; tests in test_check_schemas.py beside it.

Two parts:

* compatibility: every schema of the baseline (proto/baseline/, a copy of
  the last released contract, or a git ref) is compared with the file of
  the same path in proto/. Within one path, so one schema_version, a change
  that an existing consumer or an event already on the topic would not
  survive is BREAKING and fails; a new file (a new schema_version or event
  type) has nothing to be compared with and passes. Widenings pass with a
  NOTE, because consumers see them.
* hygiene of the current files: valid draft 2020-12 schemas, `$id` = the
  file's path under proto/ below ID_PREFIX, every `$ref` resolves to a file
  and a pointer here, `examples` validate, event types and versions agree
  with the envelope, and AsyncAPI publishes every payload schema.

The comparison is structural, over a view of each schema in which local
`$ref`s and `allOf` are merged in. Keywords it does not model (anyOf, oneOf,
not, if/then/else, patternProperties, ...) are compared as opaque values: any
change to them is reported as breaking, since it cannot be shown compatible.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urldefrag, urljoin

import yaml

ID_PREFIX = "https://orderflow.dev/schemas/"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI = "asyncapi.yaml"
ENVELOPE = "events/envelope.schema.json"
PAYLOAD_RE = re.compile(r"^events/v([1-9][0-9]*)/([A-Za-z][A-Za-z0-9]*)\.schema\.json$")

# Why each kind of break matters, appended to its message.
FOR_HISTORY = "events already on the topic, and producers still on the old schema, may not satisfy it"
FOR_CONSUMERS = "existing consumers read it"
UNPROVABLE = "the checker cannot show this compatible"

LOWER = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
UPPER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
# Keywords that never change what is valid.
ANNOTATIONS = {
    "$schema", "$id", "$comment", "$defs", "title", "description", "examples",
    "default", "deprecated", "readOnly", "writeOnly", "$anchor",
}
MODELLED = ANNOTATIONS | set(LOWER) | set(UPPER) | {
    "$ref", "allOf", "type", "enum", "const", "pattern", "format", "multipleOf",
    "uniqueItems", "properties", "required", "additionalProperties", "items",
}


# ---------------------------------------------------------------- loading


def contract_paths(names: list[str]) -> list[str]:
    """The files of the contract among `names` (paths relative to proto/)."""
    return sorted(
        n for n in names
        if n == ASYNCAPI or (n.startswith("events/") and n.endswith(".schema.json"))
    )


def parse(path: str, text: str):
    return yaml.safe_load(text) if path.endswith((".yaml", ".yml")) else json.loads(text)


def load_dir(root: Path) -> dict[str, object]:
    names = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    names = [n for n in names if not n.startswith("baseline/")]
    return {n: parse(n, (root / n).read_text(encoding="utf-8")) for n in contract_paths(names)}


def load_git(ref: str, proto: str = "proto") -> dict[str, object]:
    listing = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", ref, "--", proto + "/"],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    names = [n[len(proto) + 1:] for n in listing]
    names = [n for n in names if not n.startswith("baseline/")]
    out = {}
    for n in contract_paths(names):
        text = subprocess.run(
            ["git", "show", f"{ref}:{proto}/{n}"], check=True, capture_output=True, text=True
        ).stdout
        out[n] = parse(n, text)
    return out


def uri_of(path: str) -> str:
    return ID_PREFIX + path


def path_of(uri: str) -> str | None:
    return uri[len(ID_PREFIX):] if uri.startswith(ID_PREFIX) else None


def pointer(doc, frag: str):
    """Resolve a JSON pointer fragment (without '#'); KeyError when absent."""
    node = doc
    if frag in ("", "/"):
        return node
    if not frag.startswith("/"):
        raise KeyError(f"#{frag} (only JSON pointers are used here)")
    for raw in frag[1:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(f"#{frag}")
    return node


# ---------------------------------------------------------------- findings


@dataclass(frozen=True)
class Finding:
    breaking: bool
    where: str  # the file, e.g. events/v1/OrderPaid.schema.json or asyncapi.yaml#/components/...
    path: str  # JSON path of the field in an instance, e.g. $.lines[*].sku
    message: str
    invalid: bool = False  # a problem of the current files themselves, not of a change

    def __str__(self) -> str:
        kind = "INVALID" if self.invalid else "BREAKING" if self.breaking else "NOTE"
        at = f" {self.path}" if self.path else ""
        return f"{kind} {self.where}{at}: {self.message}"


def child(path: str, name: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return f"{path}.{name}"
    return f"{path}[{json.dumps(name)}]"


# ---------------------------------------------------------------- the view of a schema


@dataclass
class Node:
    """A schema inside one document of a tree; `doc` is its path under proto/."""

    schema: object
    doc: str
    tree: dict
    stack: tuple = ()


@dataclass
class View:
    nothing: bool = False
    types: frozenset | None = None
    enum: frozenset | None = None  # canonical JSON of each allowed value
    bounds: dict = field(default_factory=dict)
    patterns: frozenset = frozenset()
    formats: frozenset = frozenset()
    multiple_of: frozenset = frozenset()
    unique_items: bool = False
    properties: dict = field(default_factory=dict)  # name -> [Node]
    required: frozenset = frozenset()
    additional: list | None = None  # [Node]; None when absent (anything)
    items: list | None = None
    opaque: dict = field(default_factory=dict)  # keyword -> canonical JSON

    @property
    def is_object(self) -> bool:
        return bool(self.properties or self.required or self.additional is not None)


def canon(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def covers(types: frozenset | None, t: str) -> bool:
    return types is None or t in types or (t == "integer" and "number" in types)


def intersect_types(a: frozenset | None, b: frozenset | None) -> frozenset | None:
    if a is None or b is None:
        return a if b is None else b
    return frozenset(t for t in a | b if covers(a, t) and covers(b, t))


def merge(a: View, b: View) -> View:
    """The view of allOf [a, b]."""
    bounds = dict(a.bounds)
    for k, v in b.bounds.items():
        if k not in bounds:
            bounds[k] = v
        else:
            bounds[k] = max(bounds[k], v) if k in LOWER else min(bounds[k], v)
    props = {k: list(v) for k, v in a.properties.items()}
    for k, v in b.properties.items():
        props.setdefault(k, []).extend(v)
    opaque = dict(a.opaque)
    for k, v in b.opaque.items():
        opaque[k] = v if k not in opaque else canon(sorted([opaque[k], v]))
    return View(
        nothing=a.nothing or b.nothing,
        types=intersect_types(a.types, b.types),
        enum=b.enum if a.enum is None else a.enum if b.enum is None else a.enum & b.enum,
        bounds=bounds,
        patterns=a.patterns | b.patterns,
        formats=a.formats | b.formats,
        multiple_of=a.multiple_of | b.multiple_of,
        unique_items=a.unique_items or b.unique_items,
        properties=props,
        required=a.required | b.required,
        additional=None if a.additional is None and b.additional is None
        else (a.additional or []) + (b.additional or []),
        items=None if a.items is None and b.items is None else (a.items or []) + (b.items or []),
        opaque=opaque,
    )


def view_of(nodes: list[Node]) -> View:
    out = View()
    for n in nodes:
        out = merge(out, view(n))
    return out


def view(node: Node) -> View:
    s = node.schema
    if s is True or s == {}:
        return View()
    if s is False:
        return View(nothing=True)
    if not isinstance(s, dict):
        return View(opaque={"(not a schema)": canon(s)})
    sub = lambda schema: Node(schema, node.doc, node.tree, node.stack)  # noqa: E731
    v = View()
    if "type" in s:
        t = s["type"]
        v.types = frozenset([t] if isinstance(t, str) else t)
    if "enum" in s:
        v.enum = frozenset(canon(x) for x in s["enum"])
    if "const" in s:
        c = frozenset([canon(s["const"])])
        v.enum = c if v.enum is None else v.enum & c
    v.bounds = {k: s[k] for k in LOWER + UPPER if k in s}
    v.patterns = frozenset([s["pattern"]]) if "pattern" in s else frozenset()
    v.formats = frozenset([s["format"]]) if "format" in s else frozenset()
    v.multiple_of = frozenset([s["multipleOf"]]) if "multipleOf" in s else frozenset()
    v.unique_items = bool(s.get("uniqueItems", False))
    v.properties = {k: [sub(x)] for k, x in s.get("properties", {}).items()}
    v.required = frozenset(s.get("required", []))
    if "additionalProperties" in s:
        v.additional = [sub(s["additionalProperties"])]
    if "items" in s:
        v.items = [sub(s["items"])]
    v.opaque = {k: canon(x) for k, x in s.items() if k not in MODELLED and not k.startswith("x-")}
    for part in s.get("allOf", []):
        v = merge(v, view(sub(part)))
    if "$ref" in s:
        v = merge(v, view_ref(node, s["$ref"]))
    return v


def view_ref(node: Node, ref: str) -> View:
    """A reference into the same document is merged in; one into another
    file stays a name (that file is compared on its own)."""
    target, frag = urldefrag(urljoin(uri_of(node.doc), ref))
    doc = path_of(target)
    if doc != node.doc:
        return View(opaque={"$ref": canon(f"{doc or target}#{frag}")})
    key = (doc, frag)
    if key in node.stack:
        return View(opaque={"$ref (recursive)": canon(f"#{frag}")})
    try:
        schema = pointer(node.tree[doc], frag)
    except (KeyError, IndexError, ValueError):
        return View(opaque={"$ref (unresolved)": canon(ref)})
    return view(Node(schema, doc, node.tree, node.stack + (key,)))


# ---------------------------------------------------------------- comparison


def fmt_types(types: frozenset | None) -> str:
    if types is None:
        return "any type"
    ordered = sorted(types)
    return json.dumps(ordered[0]) if len(ordered) == 1 else json.dumps(ordered)


def compare(old: list[Node], new: list[Node], where: str, path: str = "$") -> list[Finding]:
    o, n = view_of(old), view_of(new)
    out: list[Finding] = []
    brk = lambda msg, p=path: out.append(Finding(True, where, p, msg))  # noqa: E731
    note = lambda msg, p=path: out.append(Finding(False, where, p, msg))  # noqa: E731

    if n.nothing and not o.nothing:
        brk(f"no value is valid any more ({FOR_HISTORY})")
        return out

    # Types: integer is a subset of number.
    if n.types != o.types:
        narrowed = o.types is not None and any(not covers(n.types, t) for t in o.types)
        if o.types is None or narrowed:
            brk(f"type narrowed: {fmt_types(o.types)} -> {fmt_types(n.types)} ({FOR_HISTORY})")
        elif n.types is None or any(not covers(o.types, t) for t in n.types):
            note(f"type widened: {fmt_types(o.types)} -> {fmt_types(n.types)}: "
                 "consumers may now see a type they have not seen")

    # Enumerations (const is an enum of one).
    if o.enum is None and n.enum is not None:
        brk(f"restricted to {', '.join(sorted(n.enum))} ({FOR_HISTORY})")
    elif o.enum is not None and n.enum is not None:
        for gone in sorted(o.enum - n.enum):
            brk(f"enum value removed: {gone} ({FOR_HISTORY})")
        for added in sorted(n.enum - o.enum):
            note(f"enum value added: {added}: consumers must skip or dead-letter a value they do not know")
    elif o.enum is not None and n.enum is None:
        note("enum removed: any value of the type is now valid")

    # Bounds.
    for k in LOWER + UPPER:
        ov, nv = o.bounds.get(k), n.bounds.get(k)
        if ov == nv:
            continue
        tighter = nv is not None and (ov is None or (nv > ov if k in LOWER else nv < ov))
        desc = f"{k} {'added' if ov is None else 'removed' if nv is None else 'changed'}: {ov} -> {nv}"
        if tighter:
            brk(f"{desc}, tightened ({FOR_HISTORY})")
        else:
            note(f"{desc}, loosened: consumers may now see values outside the old bound")

    # Patterns, formats, multipleOf: any new one may refuse an old value.
    for word, ov, nv in (
        ("pattern", o.patterns, n.patterns),
        ("format", o.formats, n.formats),
        ("multipleOf", o.multiple_of, n.multiple_of),
    ):
        if nv - ov:
            old_s = ", ".join(json.dumps(x) for x in sorted(ov, key=str)) or "none"
            new_s = ", ".join(json.dumps(x) for x in sorted(nv - ov, key=str))
            brk(f"{word} {'changed' if ov else 'added'}: {old_s} -> {new_s} ({FOR_HISTORY}; "
                f"{UNPROVABLE if word == 'pattern' and ov else 'new constraint'})")
        elif ov - nv:
            note(f"{word} removed: " + ", ".join(json.dumps(x) for x in sorted(ov - nv, key=str)))
    if n.unique_items and not o.unique_items:
        brk(f"uniqueItems added ({FOR_HISTORY})")

    # Objects.
    if o.is_object or n.is_object:
        out += compare_object(o, n, where, path)

    # Arrays.
    if o.items is not None or n.items is not None:
        if o.items is None:
            brk(f"items constrained where any item was valid ({FOR_HISTORY})")
        elif n.items is None:
            note("items no longer constrained")
        else:
            out += compare(o.items, n.items, where, f"{path}[*]")

    # Everything the view does not model.
    for k in sorted(set(o.opaque) | set(n.opaque)):
        if o.opaque.get(k) != n.opaque.get(k):
            brk(f"{k} changed: {o.opaque.get(k, 'absent')} -> {n.opaque.get(k, 'absent')} ({UNPROVABLE})")
    return out


def compare_object(o: View, n: View, where: str, path: str) -> list[Finding]:
    out: list[Finding] = []
    for name in sorted(set(o.properties) | set(o.required)):
        p = child(path, name)
        if name not in n.properties and name not in n.required:
            req = "required " if name in o.required else ""
            out.append(Finding(True, where, p, f"{req}property removed ({FOR_CONSUMERS}; a rename is a removal plus an addition)"))
            continue
        if name in o.required and name not in n.required:
            out.append(Finding(True, where, p, f"no longer required ({FOR_CONSUMERS} and rely on it being present)"))
        if name not in o.required and name in n.required:
            out.append(Finding(True, where, p, f"optional property made required ({FOR_HISTORY})"))
        if name in o.properties and name in n.properties:
            out += compare(o.properties[name], n.properties[name], where, p)
    for name in sorted((set(n.properties) | set(n.required)) - set(o.properties) - set(o.required)):
        p = child(path, name)
        if name in n.required:
            out.append(Finding(True, where, p, f"new required property ({FOR_HISTORY})"))
        else:
            out.append(Finding(False, where, p, "new optional property"))

    def state(v: View) -> str:
        if v.additional is None:
            return "any"
        views = [view(x) for x in v.additional]
        if any(x.nothing for x in views):
            return "none"
        if all(x == View() for x in views):
            return "any"
        return "schema"

    os_, ns = state(o), state(n)
    label = {"any": "true (or absent)", "none": "false", "schema": "a schema"}
    ap = f"{path}.*"
    if os_ != ns:
        tighter = ns == "none" or (os_ == "any" and ns == "schema")
        msg = f"additionalProperties {label[os_]} -> {label[ns]}"
        if tighter:
            out.append(Finding(True, where, ap, f"{msg}, tightened ({FOR_HISTORY})"))
        else:
            out.append(Finding(False, where, ap, f"{msg}, loosened: consumers ignore fields they do not know"))
    elif os_ == "schema":
        out += compare(o.additional, n.additional, where, ap)
    return out


def compare_trees(old: dict, new: dict) -> list[Finding]:
    """Every file of `old` against the file of the same path in `new`."""
    out: list[Finding] = []
    for path in sorted(old):
        if path not in new:
            out.append(Finding(True, path, "", "schema removed (consumers of this version, and the events "
                                                "of it on the topic, still need it)"))
            continue
        if path == ASYNCAPI:
            out += compare_asyncapi(old, new)
        else:
            out += compare([Node(old[path], path, old)], [Node(new[path], path, new)], path)
    for path in sorted(set(new) - set(old)):
        out.append(Finding(False, path, "", "new schema: nothing to compare it with"))
    return out


def kept(old: dict | None, new: dict | None, where: str, what: str, out: list[Finding]):
    """(where, old entry, new entry) for each entry of `old` still in `new`;
    a removed one is reported as breaking."""
    new = new or {}
    for key, entry in (old or {}).items():
        if key in new:
            yield f"{where}/{key}", entry, new[key]
        else:
            out.append(Finding(True, f"{where}/{key}", "", f"{what} removed ({FOR_CONSUMERS})"))


def compare_asyncapi(old: dict, new: dict) -> list[Finding]:
    """Channels keep their address and messages; messages and component
    schemas stay compatible (external $refs are compared in their own files)."""
    a, b = old[ASYNCAPI] or {}, new[ASYNCAPI] or {}
    out: list[Finding] = []
    for where, ch, nch in kept(a.get("channels"), b.get("channels"), f"{ASYNCAPI}#/channels", "channel", out):
        if ch.get("address") != nch.get("address"):
            out.append(Finding(True, where, "", f"address changed: {ch.get('address')} -> {nch.get('address')} ({FOR_CONSUMERS})"))
        for m in ch.get("messages") or {}:
            if m not in (nch.get("messages") or {}):
                out.append(Finding(True, where, "", f"message {m} removed from the channel ({FOR_CONSUMERS})"))
    ca, cb = a.get("components") or {}, b.get("components") or {}
    at = f"{ASYNCAPI}#/components"
    for where, o, n in kept(ca.get("schemas"), cb.get("schemas"), f"{at}/schemas", "schema", out):
        out += compare([Node(o, ASYNCAPI, old)], [Node(n, ASYNCAPI, new)], where)
    for where, msg, nmsg in kept(ca.get("messages"), cb.get("messages"), f"{at}/messages", "message", out):
        for part in ("payload", "headers"):
            o, n = msg.get(part, True), nmsg.get(part, True)
            if o == n and isinstance(o, dict) and set(o) == {"$ref"} and (
                o["$ref"].startswith("#/components/schemas/") or not o["$ref"].startswith("#")
            ):
                continue  # the same component schema or file, compared on its own
            out += compare([Node(o, ASYNCAPI, old)], [Node(n, ASYNCAPI, new)], f"{where}/{part}")
    return out


# ---------------------------------------------------------------- hygiene


def refs_in(node, at: str = ""):
    """Every ("$ref" value, pointer to it) in a document."""
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"], at or "/"
        for k, v in node.items():
            yield from refs_in(v, f"{at}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from refs_in(v, f"{at}/{i}")


def nodes_in(node, at: str = ""):
    """Every (pointer, object) in a document, skipping `examples`."""
    if isinstance(node, dict):
        yield at or "/", node
        for k, v in node.items():
            if k != "examples":
                yield from nodes_in(v, f"{at}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from nodes_in(v, f"{at}/{i}")


def hygiene(tree: dict) -> list[Finding]:
    """Problems in the current contract itself (each one fails)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    out: list[Finding] = []
    bad = lambda where, msg, path="": out.append(Finding(True, where, path, msg, invalid=True))  # noqa: E731
    schemas = {p: d for p, d in tree.items() if p != ASYNCAPI}
    registry = Registry().with_resources(
        (uri_of(p), Resource.from_contents(d, default_specification=DRAFT202012)) for p, d in schemas.items()
    )

    for path, doc in sorted(schemas.items()):
        for at, node in nodes_in(doc):
            t = node.get("type")
            if t == "null" or (isinstance(t, list) and "null" in t) or ("const" in node and node["const"] is None):
                bad(f"{path}#{at}", "allows null: an optional field is left out, never null (proto/README.md)")

    dangling = set()
    for path, doc in sorted(tree.items()):
        for ref, at in refs_in(doc):
            target, frag = urldefrag(urljoin(uri_of(path), ref))
            doc_path = path_of(target)
            if doc_path not in tree:
                bad(f"{path}#{at}", f"$ref {ref!r} names {target}, which is no file under proto/")
                dangling.add(path)
                continue
            try:
                pointer(tree[doc_path], frag)
            except (KeyError, IndexError, ValueError):
                bad(f"{path}#{at}", f"$ref {ref!r}: {doc_path} has no #{frag}")
                dangling.add(path)

    for path, doc in sorted(schemas.items()):
        if not isinstance(doc, dict):
            bad(path, "not a JSON object")
            continue
        if doc.get("$schema") != DIALECT:
            bad(path, f"$schema is {doc.get('$schema')!r}, not {DIALECT!r}")
        if doc.get("$id") != uri_of(path):
            bad(path, f"$id is {doc.get('$id')!r}, not {uri_of(path)!r}: an $id names the file at its path under proto/")
        try:
            Draft202012Validator.check_schema(doc)
        except SchemaError as e:
            bad(path, f"not a valid draft 2020-12 schema: {e.message} at #/{'/'.join(map(str, e.path))}")
            continue
        if path in dangling:
            continue  # its examples cannot be validated
        validator = Draft202012Validator(doc, registry=registry)
        for i, example in enumerate(doc.get("examples", [])):
            for e in validator.iter_errors(example):
                bad(path, f"examples[{i}] is not valid: {e.message}", e.json_path)

    # Event types, versions, and what AsyncAPI publishes.
    envelope = tree.get(ENVELOPE)
    declared = set()
    if isinstance(envelope, dict):
        declared = set(((envelope.get("properties") or {}).get("event_type") or {}).get("enum") or [])
    else:
        bad(ENVELOPE, "missing")
    versions: dict[str, set[int]] = {}
    for path in schemas:
        m = PAYLOAD_RE.match(path)
        if m:
            versions.setdefault(m.group(2), set()).add(int(m.group(1)))
        elif path != ENVELOPE:
            bad(path, "not where a schema belongs: events/envelope.schema.json or events/v<N>/<EventType>.schema.json")
    for event_type in sorted(declared - set(versions)):
        bad(ENVELOPE, f"event_type {event_type} has no events/v1/{event_type}.schema.json", "$.event_type")
    for event_type, vs in sorted(versions.items()):
        if event_type not in declared:
            bad(f"events/v{min(vs)}/{event_type}.schema.json", f"{event_type} is not in the envelope's event_type enum")
        if vs != set(range(1, max(vs) + 1)):
            bad(f"events/v{max(vs)}/{event_type}.schema.json",
                f"versions of {event_type} are {sorted(vs)}: every version from 1 up stays published")
    if ASYNCAPI in tree:
        published = set()
        for ref, _ in refs_in(tree[ASYNCAPI]):
            p = path_of(urldefrag(urljoin(uri_of(ASYNCAPI), ref))[0])
            if p:
                published.add(p)
        for path in sorted(schemas):
            if path not in published:
                bad(path, f"not referenced from {ASYNCAPI}: subscribers learn of a schema there")
    else:
        bad(ASYNCAPI, "missing")
    return out


# ---------------------------------------------------------------- command line


def update_baseline(proto: Path, baseline: Path, release: str) -> None:
    """Replace the baseline's copy of the contract (other files there stay)."""
    shutil.rmtree(baseline / "events", ignore_errors=True)
    (baseline / ASYNCAPI).unlink(missing_ok=True)
    for path in contract_paths([p.relative_to(proto).as_posix() for p in proto.rglob("*") if p.is_file()]):
        if path.startswith("baseline/"):
            continue
        (baseline / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(proto / path, baseline / path)
    (baseline / "RELEASE").write_text(release + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--proto", type=Path, default=Path("proto"))
    ap.add_argument("--baseline", type=Path, help="default: <proto>/baseline")
    ap.add_argument("--baseline-ref", help="compare with <ref>:proto/ from git instead (e.g. a release tag)")
    ap.add_argument("--update-baseline", metavar="RELEASE",
                    help="copy the current contract into the baseline folder, recorded as RELEASE, and stop")
    ap.add_argument("--quiet-notes", action="store_true", help="print only what fails")
    args = ap.parse_args(argv)
    baseline_dir = args.baseline or args.proto / "baseline"

    if args.update_baseline:
        problems = hygiene(load_dir(args.proto))
        if problems:
            for f in problems:
                print(f, file=sys.stderr)
            print("the current contract has the problems above: fix them before it becomes the baseline", file=sys.stderr)
            return 1
        update_baseline(args.proto, baseline_dir, args.update_baseline)
        print(f"baseline {baseline_dir} is now release {args.update_baseline}")
        return 0

    current = load_dir(args.proto)
    if args.baseline_ref:
        old, against = load_git(args.baseline_ref, args.proto.as_posix()), f"{args.baseline_ref}:{args.proto}"
    else:
        if not (baseline_dir / "RELEASE").is_file():
            print(f"no baseline at {baseline_dir} (create it with --update-baseline RELEASE)", file=sys.stderr)
            return 1
        release = (baseline_dir / "RELEASE").read_text(encoding="utf-8").strip()
        old, against = load_dir(baseline_dir), f"{baseline_dir} (release {release})"

    findings = hygiene(current) + compare_trees(old, current)
    breaking = [f for f in findings if f.breaking]  # invalid ones too
    for f in findings:
        if f.breaking or not args.quiet_notes:
            print(f)
    n_notes = len(findings) - len(breaking)
    n_invalid = sum(f.invalid for f in findings)
    print(f"contract: {len(current)} files against {against}: {len(breaking) - n_invalid} breaking, "
          f"{n_invalid} invalid, {n_notes} note{'' if n_notes == 1 else 's'}", flush=True)
    if breaking:
        print(
            "Within one schema_version only compatible changes are allowed. Put a breaking change in a new\n"
            "file events/v<N+1>/<EventType>.schema.json beside the old one and leave that as it is\n"
            "(the envelope has no schema_version: breaking it needs a new topic). See proto/README.md.\n"
            "A false alarm (say, a pattern you know accepts more) is accepted by copying the file into\n"
            "the baseline in the same reviewed commit, with a proto/CHANGELOG.md entry.",
            flush=True,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
