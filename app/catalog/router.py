"""Catalog endpoints (data plane: keyed, gated, metered)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import StringConstraints

from app.catalog import service
from app.catalog.cursor import MAX_CURSOR_LENGTH, CursorCodec
from app.catalog.schemas import (
    SKU_PATTERN,
    BulkRequest,
    BulkResponse,
    ProductPage,
    ProductPublic,
)
from app.core.errors import error_responses
from app.core.features import BULK_SKUS_PER_UNIT, cost_per
from app.core.schemas import CleanStr
from app.deps import SessionDep, SettingsDep, gate
from app.gate.decision import GateDecision

SearchText = Annotated[CleanStr, StringConstraints(min_length=1, max_length=100)]

router = APIRouter(
    prefix="/v1/products",
    tags=["catalog"],
    responses=error_responses(400, 401, 402, 403, 404, 413, 422, 429, 503),
)

ReadGate = Annotated[GateDecision, Depends(gate("catalog.read", "products.list"))]
GetGate = Annotated[GateDecision, Depends(gate("catalog.read", "products.get"))]


def bulk_cost(body: BulkRequest) -> int:
    """1 unit per 10 SKUs, rounded up."""
    return cost_per(BULK_SKUS_PER_UNIT, len(body.skus))


BulkGate = Annotated[GateDecision, Depends(gate("catalog.bulk", "products.bulk", bulk_cost))]


CursorParam = Annotated[
    str | None,
    Query(
        min_length=1,
        description=f"`next_cursor` of the previous page (at most {MAX_CURSOR_LENGTH} characters;"
        " any other value is a 400 `invalid_cursor`).",
    ),
]


@router.get("", response_model=ProductPage)
async def list_products(
    session: SessionDep,
    settings: SettingsDep,
    _: ReadGate,
    q: Annotated[SearchText | None, Query()] = None,
    category: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: CursorParam = None,
) -> ProductPage:
    """Search the catalog (`q` in name, description or SKU), newest page first by SKU."""
    cursors = CursorCodec(settings.cursor_key)
    return await service.search(session, cursors, q=q, category=category, limit=limit, after=cursor)


@router.post("/bulk", response_model=BulkResponse)
async def bulk_products(session: SessionDep, body: BulkRequest, _: BulkGate) -> BulkResponse:
    """Up to 100 products in one call (paid plans); costs 1 unit per 10 SKUs."""
    return await service.bulk(session, body.skus)


@router.get("/{sku}", response_model=ProductPublic)
async def get_product(
    session: SessionDep,
    _: GetGate,
    sku: Annotated[str, Path(pattern=SKU_PATTERN)],
) -> ProductPublic:
    """One product with price, attributes and current stock."""
    return await service.get(session, sku)
