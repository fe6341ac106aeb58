"""The error responses every operation can give, written into the OpenAPI schema.

Errors come from one handler (`router.app.handle_error`) rather than from each route, so
the route decorators do not list them; this adds them to every operation of the schema,
with the one error body, so that clients (and schemathesis) see the real responses.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Reference,
    Schema,
)

__all__ = ["document_errors"]

_ERRORS = {
    "400": "The request cannot be served as sent (the detail says what to change)",
    "401": "Missing, unknown or revoked API key",
    "403": "The key's role may not do this",
    "404": "No such object, or one of another project (never revealed)",
    "409": "Contradicts the current state: a duplicate, a lost lease, a different label",
    "413": "The body is over ROUTER_MAX_BODY_BYTES (or an item over ROUTER_MAX_PAYLOAD_BYTES)",
    "415": "A body in a format the endpoint does not read",
    "422": "Invalid content; `extra` lists every problem with its field",
    "429": "Over the key's rate limit; retry after Retry-After seconds",
    "503": "The database or Redis is unreachable; nothing was changed, retry shortly",
}
_PUBLIC = {"/health": (), "/metrics": (), "/ready": ("503",)}
"""Routes without a key, and the only errors they give."""
_EXTRA_SUCCESS = {
    ("post", "/v1/assignments/{aid}/label"): (
        "200",
        "The same label again (or an Idempotency-Key replay of a 200): the stored label",
        "201",
    ),
    ("post", "/v1/projects/{pid}/tasks/next"): ("204", "Nothing is available right now", None),
}
"""Success codes besides the decorator's: (code, description, code whose body it shares)."""

_ERROR_BODY = Schema(
    type=OpenAPIType.OBJECT,
    required=["status_code", "detail", "extra"],
    properties={
        "status_code": Schema(type=OpenAPIType.INTEGER),
        "detail": Schema(type=OpenAPIType.STRING),
        "extra": Schema(),
    },
    description="Every error: the status, a message a person can act on, and details",
)


def _error(code: str, description: str) -> OpenAPIResponse:
    headers: dict[str, OpenAPIHeader | Reference] | None = None
    if code == "429":
        headers = {
            "Retry-After": OpenAPIHeader(
                schema=Schema(type=OpenAPIType.INTEGER), description="Seconds to wait"
            )
        }
    return OpenAPIResponse(
        description=description,
        content={"application/json": OpenAPIMediaType(schema=_ERROR_BODY)},
        headers=headers,
    )


def document_errors(app: Litestar) -> None:
    """Add the error responses to every operation of the app's OpenAPI schema (in place)."""
    spec = app.openapi_schema
    for path, item in (spec.paths or {}).items():
        codes = _PUBLIC.get(path, tuple(_ERRORS))
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(item, method, None)
            if operation is None:
                continue
            responses = operation.responses if operation.responses is not None else {}
            for code in codes:
                responses.setdefault(code, _error(code, _ERRORS[code]))
            extra = _EXTRA_SUCCESS.get((method, path))
            if extra is not None and extra[0] not in responses:
                code, description, like = extra
                same = responses.get(like) if like else None
                content = same.content if isinstance(same, OpenAPIResponse) else None
                responses[code] = OpenAPIResponse(description=description, content=content)
            operation.responses = responses
