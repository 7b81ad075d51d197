"""Catalog payloads. Every field is bounded: a bad value is a 422 naming it, never a 500."""

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field, StringConstraints, field_validator

from app.core.features import MAX_BULK_SKUS
from app.core.schemas import InputModel, Schema, check_json_value

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
Sku = Annotated[str, StringConstraints(pattern=SKU_PATTERN)]
Currency = Annotated[str, StringConstraints(pattern=r"^[a-z]{3}$")]
Category = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]

MAX_UPSERT_PRODUCTS = 1000
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTES_JSON = 4000
MAX_ATTRIBUTE_DEPTH = 5


class ProductIn(InputModel):
    """One product as the founder uploads it (admin upsert and the import command)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    sku: Sku
    # Stripped first (str_strip_whitespace): the pattern says so in the schema, so a name of
    # only whitespace (a no-break space too) is documented as refused, not just refused.
    name: str = Field(min_length=1, max_length=200, pattern=r"\S")
    description: str = Field(default="", max_length=2000)
    category: Category
    price_cents: int = Field(ge=0, le=2_000_000_000)  # fits PostgreSQL INTEGER ($20M)
    currency: Currency = "usd"
    attributes: dict[str, Any] = Field(default_factory=dict)
    stock: int | None = Field(default=None, ge=0, le=1_000_000_000)

    @field_validator("attributes")
    @classmethod
    def _bounded_attributes(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > MAX_ATTRIBUTES:
            raise ValueError(f"at most {MAX_ATTRIBUTES} attributes")
        check_json_value(value, max_depth=MAX_ATTRIBUTE_DEPTH)
        try:
            encoded = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError("attributes must be plain JSON (no NaN or Infinity)") from exc
        if len(encoded) > MAX_ATTRIBUTES_JSON:
            raise ValueError(f"attributes must serialise to at most {MAX_ATTRIBUTES_JSON} bytes")
        return value


class ProductPublic(Schema):
    sku: str
    name: str
    description: str
    category: str
    price_cents: int
    currency: str
    attributes: dict[str, Any]
    stock: int
    in_stock: bool
    updated_at: datetime


class ProductPage(Schema):
    data: list[ProductPublic]
    next_cursor: str | None


class BulkRequest(InputModel):
    skus: list[Sku] = Field(min_length=1, max_length=MAX_BULK_SKUS)


class BulkResponse(Schema):
    data: list[ProductPublic]
    not_found: list[str]


class UpsertRequest(InputModel):
    products: list[ProductIn] = Field(min_length=1, max_length=MAX_UPSERT_PRODUCTS)


class UpsertResponse(Schema):
    created: int
    updated: int
