"""One error hierarchy, rendered by one handler into the SPEC's body:
`{"error": "<snake_case_code>", "message": "<one human sentence>", ...extra}`.

Domain errors subclass `AppError` beside the service that raises them. Anything that is not an
`AppError` (including Starlette's own 404/405 and request-validation failures) is translated here,
so no client ever sees FastAPI's default `{"detail": ...}` shape.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

logger = logging.getLogger("agentmall")


class AppError(Exception):
    """Base of every expected error: a status, a code, a sentence and optional extra fields."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    default_message: ClassVar[str] = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.message = message or self.default_message
        self.headers = headers or {}
        self.extra = extra
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}


class InvalidCursor(AppError):
    status_code = 400
    code = "invalid_cursor"
    default_message = "The cursor is malformed, was tampered with, or belongs to another query."


class NotFound(AppError):
    status_code = 404
    code = "not_found"
    default_message = "No such resource."


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"
    default_message = "Authentication is required."


class ErrorBody(BaseModel):
    """Every error: a snake_case code, one human sentence, and extra fields where useful."""

    model_config = ConfigDict(extra="allow")

    error: str
    message: str


ERROR_DESCRIPTIONS = {
    400: "Bad request (unreadable body, invalid cursor)",
    401: "Missing, unknown or revoked API key",
    402: "Subscription payment overdue",
    403: "Key suspended, feature not in plan, or admin only",
    404: "Not found",
    409: "Conflict",
    413: "Body too large",
    422: "Validation failed (the fields are named)",
    429: "Rate limited: per-minute window, monthly quota, or too many failed key lookups",
    502: "Stripe unreachable or failing (nothing changed; retry)",
    503: "Rate limiter unavailable (RATE_LIMIT_FAILURE_MODE=closed)",
}


ERROR_BODY_REF = {"$ref": "#/components/schemas/ErrorBody"}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the errors a router can return, all with the one error body.

    A reference to the schema, not `"model": ErrorBody`: FastAPI builds a response field per
    `model` per route at import (≈ 30 ms over all routes, bench/coldstart.py); the document is the
    same, since app/core/openapi.py puts `ErrorBody` in its components."""
    return {
        code: {
            "description": ERROR_DESCRIPTIONS[code],
            "content": {"application/json": {"schema": ERROR_BODY_REF}},
        }
        for code in codes
    }


def error_response(error: AppError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers)


# A page renderer for people rather than programs (the portal's): given the request and the
# error, an HTML answer, or None where the JSON body applies. Set on `app.state.error_page`.
ErrorPage = Callable[[Request, AppError], Response | None]


def _page(
    request: Request, status: int, body: dict[str, Any], headers: Any = None
) -> Response | None:
    """The error as a page, when the app renders pages for this path."""
    page: ErrorPage | None = getattr(request.app.state, "error_page", None)
    if page is None:
        return None
    attributes = {"status_code": status, "code": body["error"]}
    error = type("PageError", (AppError,), attributes)(body["message"], headers=dict(headers or {}))
    return page(request, error)


def _field_name(loc: tuple[Any, ...]) -> str:
    """`("body", "filters", "price")` → `filters.price`: only the leading source is dropped (a
    body field may itself be called `query`)."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _issue(err: Mapping[str, Any]) -> str:
    """What is wrong with one field: pydantic's sentence, except for a length bound on a string.

    A length bound that pydantic cannot attach to the string itself (it follows a validator, as
    on `Annotated[CleanStr, StringConstraints(max_length=…)]`) is checked as a generic length,
    whose message counts "items" whatever the value; a string's length is in characters."""
    kind, value, ctx = err.get("type"), err.get("input"), err.get("ctx") or {}
    if kind in _LENGTH_BOUNDS and isinstance(value, str) and isinstance(ctx, Mapping):
        which, key = _LENGTH_BOUNDS[kind]
        bound = ctx.get(key)
        if isinstance(bound, int):
            plural = "" if bound == 1 else "s"
            return f"String should have {which} {bound} character{plural}"  # as pydantic's own
    return str(err.get("msg", "invalid"))


_LENGTH_BOUNDS = {"too_long": ("at most", "max_length"), "too_short": ("at least", "min_length")}


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    page: ErrorPage | None = getattr(request.app.state, "error_page", None)
    return (page and page(request, exc)) or error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    fields: list[dict[str, str]] = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        entry = {"field": _field_name(loc), "issue": _issue(err)}
        if entry not in fields:  # a body read by a dependency too is reported once
            fields.append(entry)
    if any(err.get("type") == "json_invalid" for err in exc.errors()):
        invalid = {"error": "invalid_json", "message": "The request body is not valid JSON."}
        return _page(request, 422, invalid) or JSONResponse(invalid, status_code=422)
    names = ", ".join(sorted({f["field"] for f in fields}))
    body: dict[str, Any] = {
        "error": "validation_error",
        "message": f"Invalid request: check {names}.",
        "fields": fields,
    }
    return _page(request, 422, body) or JSONResponse(body, status_code=422)


_HTTP_CODES = {
    400: ("invalid_body", "The request body could not be read: send UTF-8 JSON, uncompressed."),
    404: ("not_found", "No route matches this path."),
    405: ("method_not_allowed", "This method is not allowed on this path."),
    413: ("payload_too_large", "The request body is too large."),
}


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """The methods of the resource at this request's path, for a 405's `Allow`.

    The router answers 405 from the first route whose path matched, so its `Allow` names only
    that route's methods; a path served by several routes (`GET` and `POST /v1/keys`) needs the
    union. Each method is asked of every route as the router would (`matches`, which also sees
    into included routers). Where the OpenAPI document has the path, its path item is the
    resource, concrete paths before templates as OpenAPI matches them: `/v1/products/bulk` is
    `POST` only, though `GET /v1/products/{sku}` would read a product whose SKU is "bulk"."""
    served = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    ]
    openapi = getattr(request.app, "openapi", None)  # a FastAPI app's document
    documented = _documented_methods(openapi(), request.scope["path"]) if openapi else set()
    return [method for method in served if method in documented] or served


def _documented_methods(openapi: dict[str, Any], path: str) -> set[str]:
    """The methods of the OpenAPI path item `path` resolves to (a concrete path first)."""
    paths: dict[str, Any] = openapi.get("paths", {})
    templates = sorted(paths, key=lambda template: "{" in template)  # concrete first
    for template in templates:
        segments = template.split("/")
        pattern = "/".join("[^/]+" if s.startswith("{") else re.escape(s) for s in segments)
        if re.fullmatch(pattern, path):
            return {method.upper() for method in paths[template]}
    return set()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code, message = _HTTP_CODES.get(exc.status_code, ("http_error", str(exc.detail)))
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request)) or headers.get("Allow", "")
    body = {"error": code, "message": message}
    return _page(request, exc.status_code, body, headers) or JSONResponse(
        body, exc.status_code, headers=headers
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error", exc_info=exc)
    body = {"error": "internal_error", "message": "Something went wrong on our side."}
    return _page(request, 500, body) or JSONResponse(body, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register the single rendering path for every error the app can produce."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
