"""Search payloads: `POST /v1/products/search` in the shape of UCP's `search_catalog`, plus ours.

Request: `query`, `filters{categories, brands, price{min,max}, in_stock, attributes[]}`,
`pagination{cursor, limit}` (UCP), and `sort`, `facets` (ours). Response: `products[]` (each with
its `score`), `pagination{cursor, has_next_page, total_count}`, `messages[]` (UCP), `facets`.
Every list and string is bounded; anything else is a 422 naming the field.
"""

from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from app.catalog.schemas import ProductPage, ProductPublic
from app.core.schemas import InputModel, Schema, clean_text

MAX_QUERY_LENGTH = 200
MAX_FILTER_VALUES = 20
MAX_ATTRIBUTE_FILTERS = 10
MAX_PRICE_CENTS = 2_000_000_000

Sort = Literal["relevance", "price_asc", "price_desc", "newest", "sku"]
Op = Literal["eq", "gt", "gte", "lt", "lte"]
# the bounds before the text check: on the string itself, they count characters (after a
# validator, pydantic checks a generic length that counts "items"; app/core/errors.py says
# characters for those too, but MCP renders pydantic's own message)
QueryText = Annotated[
    str, StringConstraints(max_length=MAX_QUERY_LENGTH), AfterValidator(clean_text)
]
FilterValue = Annotated[
    str, StringConstraints(min_length=1, max_length=100), AfterValidator(clean_text)
]
AttributeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,40}$")]
MAX_ATTRIBUTE_NUMBER = 10**15  # beyond every real measure, and exact in a double
AttributeValue = (
    Annotated[str, StringConstraints(max_length=100)]
    | bool
    | Annotated[int, Field(ge=-MAX_ATTRIBUTE_NUMBER, le=MAX_ATTRIBUTE_NUMBER)]
    | Annotated[
        float,
        Field(ge=-MAX_ATTRIBUTE_NUMBER, le=MAX_ATTRIBUTE_NUMBER, allow_inf_nan=False),
    ]
)


class PriceRange(InputModel):
    """Inclusive bounds in minor units (cents)."""

    min: int | None = Field(default=None, ge=0, le=MAX_PRICE_CENTS)
    max: int | None = Field(default=None, ge=0, le=MAX_PRICE_CENTS)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("price.min must not be greater than price.max")
        return self


class AttributeFilter(InputModel):
    """`{"name": "ram_gb", "op": "gte", "value": 16}`; numeric ops need a number."""

    name: AttributeName
    op: Op = "eq"
    value: AttributeValue

    @model_validator(mode="after")
    def _numeric_op(self) -> Self:
        if self.op != "eq" and (isinstance(self.value, bool) or isinstance(self.value, str)):
            raise ValueError(f"op {self.op!r} needs a numeric value")
        if isinstance(self.value, float) and self.value != self.value:  # NaN
            raise ValueError("value must be a number")
        return self


class SearchFilters(InputModel):
    categories: list[FilterValue] = Field(default_factory=list, max_length=MAX_FILTER_VALUES)
    brands: list[FilterValue] = Field(default_factory=list, max_length=MAX_FILTER_VALUES)
    price: PriceRange | None = None
    in_stock: bool | None = None
    attributes: list[AttributeFilter] = Field(
        default_factory=list, max_length=MAX_ATTRIBUTE_FILTERS
    )


class PaginationIn(InputModel):
    # any length: an overlong cursor is a 400 `invalid_cursor` like every other bad one
    cursor: Annotated[str, StringConstraints(min_length=1)] | None = None
    limit: int = Field(default=20, ge=1, le=100)


class SearchRequest(InputModel):
    query: QueryText | None = None
    filters: SearchFilters = Field(default_factory=SearchFilters)
    sort: Sort | None = Field(
        default=None, description="Default: `relevance` with a query, `sku` without."
    )
    facets: bool = False
    pagination: PaginationIn = Field(default_factory=PaginationIn)


class SearchProduct(ProductPublic):
    """A product as every catalog read returns it, with its brand and relevance."""

    brand: str | None
    score: float | None = Field(description="Relevance (higher is better); null without a query.")
    matched_words: list[str] | None = Field(
        default=None,
        description="When no product matched every word (`interpreted.match` = `relaxed`): "
        "the query's words this product matched. Null otherwise.",
    )


class PaginationOut(Schema):
    cursor: str | None
    has_next_page: bool
    total_count: int
    total_count_capped: bool = Field(description="True when `total_count` is a lower bound.")


class Message(Schema):
    type: Literal["info", "warning"]
    code: str
    content: str
    suggestion: str | None = None


class FacetValue(Schema):
    value: str = Field(description="What to filter by (a category slug, a brand).")
    name: str = Field(description="What to show: the category's or the brand's display name.")
    count: int


class PriceBand(Schema):
    min: int
    max: int | None  # exclusive; null = no upper bound
    count: int


class Facets(Schema):
    categories: list[FacetValue]
    brands: list[FacetValue]
    price: list[PriceBand]
    capped: bool = Field(description="True when counted over the first matches only.")


class Condition(Schema):
    name: str
    op: Op
    value: str | bool | int | float


class InterpretedFilter(Schema):
    """A filter read from the query's words."""

    filter: Literal["price", "attribute", "in_stock"]
    words: str = Field(description="The words it was read from, as typed.")
    applied: bool = Field(
        description="False when a filter of the request on the same field won, or when no "
        "product matched with it and it was dropped (an attribute condition)."
    )
    min: int | None = Field(default=None, description="price: inclusive, in minor units.")
    max: int | None = Field(default=None, description="price: inclusive, in minor units.")
    value: bool | None = Field(default=None, description="in_stock.")
    conditions: list[Condition] | None = Field(
        default=None, description="attribute: any one of them holds."
    )


class InterpretedBoost(Schema):
    """What ranks some of the matches first, read from the query's words."""

    boost: Literal["price", "category", "attribute"]
    words: str
    direction: Literal["low", "high"] | None = Field(
        default=None, description="price: cheaper (low) or dearer (high) first among equals."
    )
    value: str | None = Field(default=None, description="category: its slug.")
    conditions: list[Condition] | None = Field(
        default=None, description="attribute: products with this exact value rank first."
    )


class Correction(Schema):
    typed: str
    corrected: str


class Interpreted(Schema):
    """How the query was read: the words matched as text, and what the other words became."""

    text: str = Field(description="The words matched as text (empty: a listing by filters).")
    filters: list[InterpretedFilter]
    boosts: list[InterpretedBoost]
    ignored: list[str] = Field(description="Filler words: neither required nor corrected.")
    corrections: list[Correction] = Field(description="Spelling corrections applied.")
    match: Literal["all", "corrected", "relaxed"] = Field(
        description="all: every word matched; corrected: after spelling corrections; "
        "relaxed: no product matched every word (see each product's matched_words)."
    )


class SearchResponse(Schema):
    products: list[SearchProduct]
    pagination: PaginationOut
    messages: list[Message]
    facets: Facets | None = None
    interpreted: Interpreted | None = Field(
        default=None, description="How the query was read (null without a query)."
    )


class Category(Schema):
    slug: str
    name: str
    count: int


class CategoryList(Schema):
    data: list[Category]


class ProductListing(ProductPage):
    """`GET /v1/products`: a page of products, and how `q` was read."""

    interpreted: Interpreted | None = Field(
        default=None, description="How `q` was read (null without `q`); see the search endpoint."
    )
