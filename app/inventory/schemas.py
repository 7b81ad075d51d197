"""Inventory payloads: the founder's sync request and its result, and the change feed's page."""

from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from app.catalog.schemas import Sku
from app.core.schemas import InputModel, Schema

MAX_SYNC_ITEMS = 1000
MAX_STOCK = 1_000_000_000
MAX_PRICE_CENTS = 2_000_000_000  # fits PostgreSQL INTEGER, as for products
FEED_LIMIT_DEFAULT = 100
FEED_LIMIT_MAX = 100


class SyncItem(InputModel):
    """The new absolute stock of one SKU and, optionally, its new price (same currency)."""

    sku: Sku
    stock: int = Field(ge=0, le=MAX_STOCK)
    price_cents: int | None = Field(default=None, ge=0, le=MAX_PRICE_CENTS)


class SyncRequest(InputModel):
    items: list[SyncItem] = Field(min_length=1, max_length=MAX_SYNC_ITEMS)

    @field_validator("items")
    @classmethod
    def _one_line_per_sku(cls, items: list[SyncItem]) -> list[SyncItem]:
        seen: set[str] = set()
        for item in items:
            if item.sku in seen:
                raise ValueError(f"SKU {item.sku!r} appears more than once")
            seen.add(item.sku)
        return items


class SyncResult(Schema):
    """What one sync did, per SKU: changed (a feed entry each), already so, or unknown."""

    updated: list[str]
    unchanged: list[str]
    not_found: list[str]


class ChangePublic(Schema):
    id: int
    sku: str
    kind: Literal["inventory", "product"]
    stock: int
    price_cents: int
    currency: str
    changed_at: datetime


class ChangePage(Schema):
    """Changes in commit order. `next_cursor` is always set: keep it and poll again later when
    `has_more` is false."""

    data: list[ChangePublic]
    next_cursor: str
    has_more: bool
