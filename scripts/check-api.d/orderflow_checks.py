"""schemathesis checks of scripts/check-api (loaded through SCHEMATHESIS_HOOKS)."""

import schemathesis

try:  # a coverage-phase probe of the request's shape, not of its data
    from schemathesis.specs.openapi.checks import is_unexpected_http_status_case
except ImportError:  # pragma: no cover - older 4.x
    def is_unexpected_http_status_case(case):
        return False

# Problem types that mean "this request is malformed": a schema-valid request
# must never get one of them.
SHAPE_PROBLEMS = {
    "malformed-json",
    "invalid-body",
    "invalid-id",
    "invalid-header",
    "invalid-parameter",
    "validation",
    "unsupported-media-type",
    "payload-too-large",
}


@schemathesis.check
def schema_valid_request_not_refused_for_its_shape(ctx, response, case):
    """A schema-valid request may be refused for its data (404/409/412/422
    with a semantic problem type), never as malformed."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if is_unexpected_http_status_case(case) or not 400 <= response.status_code < 500:
        return None
    try:
        body = response.json()
    except Exception:
        return None
    kind = str(body.get("type", "")).rsplit("/", 1)[-1] if isinstance(body, dict) else ""
    if kind in SHAPE_PROBLEMS:
        raise AssertionError(
            f"schema-valid request refused as {kind} ({response.status_code}): {body.get('detail')}"
        )
    return None
