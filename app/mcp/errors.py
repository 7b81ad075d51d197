"""How a refused or failed tool call reads to the model, and to a program.

Two kinds, following the SDK (a plain exception would reach the model only as "Error executing
tool X"):

* **Refusals** — the gate said no before anything ran or counted: no/unknown/revoked key,
  suspended key, feature not in plan, payment overdue, per-minute window or monthly quota used up.
  A JSON-RPC error (`MCPError`) with code `REFUSED`; `message` is a sentence the model can act on
  (the upgrade link and the reset time, the wait in seconds, where the key goes), `data` is the
  REST twin's error body (`error`, `message`, `upgrade_url`, `reset`, ...) plus its HTTP `status`
  and `retry_after` when there is a wait. HTTP statuses do not survive the SDK client, so nothing
  here depends on one: the answer is always HTTP 200.
* **Failures** — the call was admitted but could not be answered (no such SKU, a bad cursor, a
  search that ran too long): a tool error (`ToolError`: `isError: true`, the reason as text), so
  the model can correct itself. The call is refunded, as REST refunds every non-2xx.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError

from app.core.config import Settings
from app.core.errors import AppError

REFUSED = -32003
"""JSON-RPC error code of every gate refusal (`data.error` says which, as in the REST API)."""

_KEY_SETUP = (
    "Configure this MCP server in your client with the header `X-API-Key: <your key>` (or "
    "`Authorization: Bearer <your key>`). A free key (1,000 calls a month): POST {base}/v1/signup "
    'with {{"email": "..."}}.'
)
# The REST messages speak HTTP ("the Retry-After delay", "the X-API-Key header"); a model reads
# these instead.
_MESSAGES = {
    "missing_api_key": "No API key came with this tool call. " + _KEY_SETUP,
    "invalid_api_key": "The API key sent with this tool call is unknown or has been revoked. "
    + _KEY_SETUP,
    "feature_not_in_plan": "Your plan does not include this tool call ({feature}).",
    "quota_exceeded": "Your plan's monthly quota of calls is used up.",
    "rate_limit_exceeded": "Your plan's per-minute limit of calls is reached.",
    "too_many_invalid_keys": "Too many calls with unknown API keys came from this address.",
    "retry_shortly": "Your key's plan or status is changing at this moment.",
}
_FEATURE_HINTS = {
    "catalog.bulk": "Looking up 2 to 100 SKUs in one call needs a paid plan; one SKU per call "
    "works on every plan.",
}
_HINTS = {
    "product_not_found": "search_catalog finds SKUs by name, brand, category or GTIN.",
    "invalid_cursor": "Pass pagination.cursor exactly as the previous page returned it, with the "
    "same query, filters and sort, or leave it out to start again.",
}


def refusal(error: AppError, settings: Settings, *, feature: str = "") -> MCPError:
    """The gate's refusal as a JSON-RPC error the model can act on."""
    data: dict[str, Any] = {**error.body(), "status": error.status_code}
    retry = error.headers.get("Retry-After")
    if retry is not None and "retry_after" not in data:
        data["retry_after"] = int(retry)
    template = _MESSAGES.get(error.code)
    message = template.format(base=settings.PUBLIC_BASE_URL, feature=feature) if template else ""
    sentences = [message or error.message]
    if error.code == "feature_not_in_plan" and feature in _FEATURE_HINTS:
        sentences.append(_FEATURE_HINTS[feature])
    return MCPError(REFUSED, " ".join(sentences + _next_steps(data)), data)


def _next_steps(data: dict[str, Any]) -> list[str]:
    steps = []
    if data.get("upgrade_url"):
        steps.append(f"Upgrade to the Pro plan here: {data['upgrade_url']}")
    if data.get("reset_at"):
        steps.append(f"The monthly quota resets at {data['reset_at']}.")
    retry = data.get("retry_after")
    if retry and data.get("error") != "quota_exceeded":
        steps.append(f"Retry in {retry} second{'' if retry == 1 else 's'}.")
    if data.get("billing_portal_url"):
        steps.append(f"Update the payment method here: {data['billing_portal_url']}")
    return steps


def failure(error: AppError) -> ToolError:
    """An admitted call that could not be answered, as a tool error (`isError: true`)."""
    details = ", ".join(f"{name}: {value}" for name, value in error.extra.items())
    parts = [f"{error.code}: {error.message}"]
    if details:
        parts.append(f"({details})")
    if error.code in _HINTS:
        parts.append(_HINTS[error.code])
    return ToolError(" ".join(parts))
