"""Inventory endpoints: the change feed (data plane: keyed, gated, metered) and the founder's
bulk stock sync."""

from typing import Annotated

from fastapi import Depends, Header, Query, Response

from app.core.errors import error_responses
from app.core.routing import Router
from app.deps import AdminDep, SessionDep, SettingsDep, gate
from app.gate.decision import GateDecision
from app.inventory import service
from app.inventory.feed import MAX_CURSOR_LENGTH, FeedCursors
from app.inventory.schemas import (
    FEED_LIMIT_DEFAULT,
    FEED_LIMIT_MAX,
    ChangePage,
    SyncRequest,
    SyncResult,
)

router = Router(
    prefix="/v1/inventory",
    tags=["inventory"],
    responses=error_responses(400, 401, 402, 403, 422, 429, 503),
)
admin_router = Router(
    prefix="/v1/admin/inventory",
    tags=["admin"],
    responses=error_responses(400, 401, 403, 409, 413, 422, 429, 503),
)

ChangesGate = Annotated[GateDecision, Depends(gate("inventory.sync", "inventory.changes"))]

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Any unique string (e.g. a UUID): a retry with the same key and body gets the"
        " first response back (`Idempotent-Replayed: true`) and applies nothing; the same key"
        " with another body is a 409. Keys are kept for at least 24 hours.",
    ),
]


@router.get("/changes", response_model=ChangePage)
async def list_changes(
    session: SessionDep,
    settings: SettingsDep,
    _: ChangesGate,
    limit: Annotated[int, Query(ge=1, le=FEED_LIMIT_MAX)] = FEED_LIMIT_DEFAULT,
    cursor: Annotated[
        str | None,
        Query(
            min_length=1,
            description=f"`next_cursor` of the previous page (at most {MAX_CURSOR_LENGTH}"
            " characters; any other value is a 400 `invalid_cursor`). Omit it to start from the"
            " first change.",
        ),
    ] = None,
) -> ChangePage:
    """Stock and price changes in commit order: follow `next_cursor` to mirror the inventory."""
    cursors = FeedCursors.from_settings(settings)
    return await service.changes_page(session, cursors, cursor=cursor, limit=limit)


@admin_router.post("/sync", response_model=SyncResult)
async def sync_inventory(
    body: SyncRequest,
    _: AdminDep,
    session: SessionDep,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> SyncResult:
    """Set the stock (and optionally the price) of up to 1,000 SKUs; unknown SKUs are listed."""
    outcome = await service.sync(session, body, idempotency_key=idempotency_key)
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return outcome.result
