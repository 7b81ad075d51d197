"""Catalog reads (data plane) and the founder's bulk upsert."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog import repository as repo
from app.catalog.schemas import (
    ProductIn,
    ProductPublic,
    UpsertResponse,
)
from app.core.errors import NotFound
from app.inventory.service import event_data
from app.models import Product
from app.webhooks.outbox import enqueue


class ProductNotFound(NotFound):
    code = "product_not_found"
    default_message = "No product with this SKU."


def product_public(product: Product | Any, stock: int) -> ProductPublic:
    """The public view of a product (an ORM `Product` or a row with its columns)."""
    return ProductPublic(
        sku=product.sku,
        name=product.name,
        description=product.description,
        category=product.category,
        price_cents=product.price_cents,
        currency=product.currency,
        attributes=product.attributes,
        stock=stock,
        in_stock=stock > 0,
        updated_at=product.updated_at,
    )


async def get(session: AsyncSession, sku: str) -> ProductPublic:
    row = await repo.get(session, sku)
    if row is None:
        raise ProductNotFound(sku=sku)
    return product_public(*row)


async def upsert(session: AsyncSession, products: Sequence[ProductIn]) -> UpsertResponse:
    """Upsert products; the effective changes go to the change feed and one webhook event."""
    created, updated, changes = await repo.upsert_with_changes(session, products)
    if changes:
        await enqueue(session, event_type="product.updated", data=event_data(changes))
    return UpsertResponse(created=created, updated=updated)
