"""The OpenAPI document names every status an operation can answer, not only its handler's.

Some answers come from machinery every route shares rather than from the route itself: the
body-size guard (413 `payload_too_large`, app/core/limits.py), the body reader (400
`invalid_body`, 422 `invalid_json`) and request validation (422 naming the fields). A route
cannot forget them, so they are added here, once, to every operation they apply to: an operation
that takes a body can answer 400, 413 and 422; one with parameters, 422.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from app.core.errors import ERROR_BODY_REF, ERROR_DESCRIPTIONS, ErrorBody

BODY_ERRORS = (400, 413, 422)
PARAMETER_ERRORS = (422,)


def shared_errors(operation: dict[str, Any]) -> tuple[int, ...]:
    """The statuses the shared machinery can answer for this OpenAPI operation."""
    if "requestBody" in operation:
        return BODY_ERRORS
    return PARAMETER_ERRORS if operation.get("parameters") else ()


def add_shared_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Document the shared statuses on every operation of an OpenAPI document (in place)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault(
        "ErrorBody", ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    )
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for status in shared_errors(operation):
                responses.setdefault(
                    str(status),
                    {
                        "description": ERROR_DESCRIPTIONS[status],
                        "content": {"application/json": {"schema": ERROR_BODY_REF}},
                    },
                )
    return schema


def document_shared_errors(app: FastAPI) -> None:
    """Make `app.openapi()` (and /openapi.json) carry the shared statuses."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_shared_errors(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
