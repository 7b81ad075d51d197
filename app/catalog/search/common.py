"""What both search backends share: the tables and columns, a search's shape, and its filters.

`Spec` says what one search asks (a parsed query, `Filters`, a sort, a cursor, a page size) and
`Row` is what a page returns. `TextBackend` is the contract a backend keeps: how a parsed query
matches and scores products (`tier_selects`) and how an attribute is read, compared and indexed;
`PostgresText` (app/catalog/search/postgres.py) and `SqliteText` (app/catalog/search/sqlite.py)
implement it. `filter_conditions` turns `Filters` into SQLAlchemy Core conditions on either
database, asking the backend only for what differs (attributes, lowercasing).
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import visitors

from app.catalog.search.text import ParsedQuery, Term
from app.models import Inventory, Product

PRODUCTS: sa.Table = cast(Any, Product).__table__
INVENTORY: sa.Table = cast(Any, Inventory).__table__
BRAND = sa.literal_column("products.brand", sa.String)
STOCK = sa.func.coalesce(INVENTORY.c.quantity, 0)
WORDS = sa.table("search_words", sa.column("word", sa.String), sa.column("ndoc", sa.Integer))
ATTRIBUTE_FACTS = sa.table(
    "search_attributes",
    sa.column("name", sa.String),
    sa.column("kind", sa.String),
    sa.column("value", sa.String),
    sa.column("ndoc", sa.Integer),
)


@dataclass(frozen=True)
class Fields:
    """Where the filterable and rankable facts of a product are read from."""

    sku: Any
    category: Any
    price_cents: Any
    brand: Any
    created_at: Any
    name_length: Any


PRODUCT_FIELDS = Fields(
    PRODUCTS.c.sku,
    PRODUCTS.c.category,
    PRODUCTS.c.price_cents,
    BRAND,
    PRODUCTS.c.created_at,
    sa.func.length(PRODUCTS.c.name),
)


@dataclass(frozen=True)
class AttributeCondition:
    name: str
    op: str  # eq, gt, gte, lt, lte
    value: str | int | float | bool


@dataclass(frozen=True)
class Filters:
    categories: tuple[str, ...] = ()  # slugs
    brands: tuple[str, ...] = ()
    price_min: int | None = None
    price_max: int | None = None
    in_stock: bool | None = None
    attributes: tuple[AttributeCondition, ...] = ()
    # conditions read from the query's words: each group holds when any one of its conditions
    # does (`16gb`: ram_gb = 16 or storage_gb = 16)
    any_of: tuple[tuple[AttributeCondition, ...], ...] = ()


@dataclass(frozen=True)
class Boosts:
    """What reorders a query's matches beyond their text score (app/catalog/search/ranking)."""

    attributes: tuple[tuple[AttributeCondition, ...], ...] = ()  # values named in words
    categories: tuple[str, ...] = ()  # categories named in words
    price: int = 0  # -1: cheaper first among equals, 1: dearer first
    coverage: bool = False  # relaxed: rank by the share of the query's terms matched

    def __bool__(self) -> bool:
        return bool(self.attributes or self.categories or self.price or self.coverage)


@dataclass(frozen=True)
class Spec:
    """One search: what to match, how to filter and order, where to continue, how many."""

    query: ParsedQuery | None
    filters: Filters
    sort: str  # relevance, price_asc, price_desc, newest, sku
    after: tuple[Any, ...] | None = None  # the last row's sort key
    limit: int = 20
    candidates: int = 1000  # relevance: only this many best matches are ranked and paged
    boosts: Boosts = Boosts()


@dataclass(frozen=True)
class Row:
    product: dict[str, Any]
    stock: int
    score: float | None
    matched: tuple[str, ...] | None = None  # relaxed: the query terms this product matched


def tier_columns(fields: Fields, sort: str) -> tuple[Any, ...]:
    """What a tier row carries after (sku, base score): name length, then `_facts`."""
    created = fields.created_at if sort == "newest" else sa.null()
    return fields.name_length, fields.price_cents, created, fields.category, fields.brand


class TextBackend:
    """How a parsed query matches and scores products on one database."""

    # the tiers leave out each other's matches (`ranking` then reads at most its limit in all)
    disjoint_tiers = False

    def tier_selects(
        self, query: ParsedQuery, filters: Filters, sort: str
    ) -> Iterator[sa.Select[Any]]:
        """The text matches of `query` (filters applied) in tiers, strongest first, as rows of
        (sku, base score, `tier_columns`) without a LIMIT, built as they are read (a common
        word fills the first one); see `ranking`."""
        raise NotImplementedError

    def attribute_text(self, name: str) -> sa.ColumnElement[Any]:
        raise NotImplementedError

    def attribute_number(self, name: str) -> sa.ColumnElement[Any]:
        raise NotImplementedError

    def attribute_is(self, name: str, value: bool) -> sa.ColumnElement[bool]:
        """The attribute is the JSON boolean `value`."""
        indexed = self.attribute_equals(name, value)
        if indexed is not None:
            return indexed
        return self.attribute_text(name) == ("true" if value else "false")

    def attribute_equals(self, name: str, value: Any) -> sa.ColumnElement[bool] | None:
        """The attribute is the JSON value `value` (a number or boolean), if the backend has an
        index for it (None: compare by `attribute_text` / `attribute_number`)."""
        return None

    def attribute_equals_any(
        self, name: str, values: tuple[Any, ...]
    ) -> sa.ColumnElement[bool] | None:
        """The attribute is one of the JSON `values`, from the backend's index (None: none)."""
        found = [self.attribute_equals(name, v) for v in values]
        if any(f is None for f in found):
            return None
        return sa.or_(*cast(list[sa.ColumnElement[bool]], found))

    def attribute_number_skus(self, name: str, op: str, value: int | float) -> Any:
        """The SKUs whose attribute compares to the number `value` by `op` (for `eq`: the
        number, or the same digits as a string), from an index of attribute values; None
        where the backend has none."""
        return None

    def attribute_text_candidates(self, name: str, value: str) -> Any:
        """SKUs including every product whose text attribute equals `value` in any case (more
        may be included: the exact test follows), from an index; None where there is none."""
        return None

    def lower(self, value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """Lowercase in SQL as Python's `str.lower` does."""
        return sa.func.lower(value)

    async def prepare(self, session: AsyncSession) -> None:
        """Per-transaction settings (PostgreSQL: the statement timeout)."""

    async def similar_words(
        self, session: AsyncSession, words: Sequence[str]
    ) -> dict[str, list[tuple[str, float, int]]]:
        raise NotImplementedError

    async def term_matches(
        self, session: AsyncSession, terms: Sequence[Term], skus: Sequence[str]
    ) -> dict[str, set[int]]:
        """Which of `terms` (by index) each of `skus` matches anywhere in its text."""
        raise NotImplementedError

    def one_of(self, column: Any, values: Sequence[str]) -> sa.ColumnElement[bool]:
        """`column IN values` as one parameter (a list of 1,000 SKUs as 1,000 parameters cost
        more to compile than the statement takes to run)."""
        raise NotImplementedError

    def term_match(self, term: Term) -> tuple[Any, sa.ColumnElement[bool]]:
        """(the table to read, the condition) for the products matching `term` anywhere."""
        raise NotImplementedError

    async def term_counts(
        self, session: AsyncSession, terms: Sequence[Term], cap: int
    ) -> list[int]:
        """How many products match each of `terms` anywhere, counted up to `cap` (one
        statement; the same on every backend below the cap)."""

        def counted(term: Term) -> Any:
            table, condition = self.term_match(term)
            found = sa.select(sa.literal(1)).select_from(table).where(condition).limit(cap)
            return sa.select(sa.func.count()).select_from(found.subquery()).scalar_subquery()

        row = (await session.execute(sa.select(*[counted(t) for t in terms]))).one()
        return [int(n) for n in row]


def flag(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
    return sa.case((condition, 1), else_=0)


def product_source(where: list[sa.ColumnElement[bool]] | None = None) -> Any:
    """Products, joined to their stock when it is selected or filtered on (`where` None: always)."""
    if where is not None and not any(uses_stock(w) for w in where):
        return PRODUCTS
    return PRODUCTS.outerjoin(INVENTORY, INVENTORY.c.sku == PRODUCTS.c.sku)


def uses_stock(condition: sa.ColumnElement[bool]) -> bool:
    return uses(condition, INVENTORY)


def uses(condition: sa.ColumnElement[bool], table: sa.Table) -> bool:
    return any(getattr(column, "table", None) is table for column in visitors.iterate(condition))


def filter_conditions(
    text: TextBackend, filters: Filters, fields: Fields = PRODUCT_FIELDS
) -> list[sa.ColumnElement[bool]]:
    """The filters as conditions; category, brand and price on `fields`, stock on `inventory`,
    attributes on `products` (or on the backend's index of attribute values, by SKU)."""
    where: list[sa.ColumnElement[bool]] = []
    if filters.categories:
        where.append(fields.category.in_(filters.categories))
    if filters.brands:
        where.append(text.lower(fields.brand).in_([b.lower() for b in filters.brands]))
    if filters.price_min is not None:
        where.append(fields.price_cents >= filters.price_min)
    if filters.price_max is not None:
        where.append(fields.price_cents <= filters.price_max)
    if filters.in_stock is not None:
        where.append(STOCK > 0 if filters.in_stock else STOCK == 0)
    for condition in filters.attributes:
        where.append(_attribute(text, condition, fields.sku))
    for group in filters.any_of:
        where.append(any_condition(text, group, fields.sku))
    return where


def any_condition(
    text: TextBackend, group: tuple[AttributeCondition, ...], sku: Any = PRODUCTS.c.sku
) -> sa.ColumnElement[bool]:
    """Any one of the conditions holds."""
    conditions = [_attribute(text, c, sku) for c in group]
    return conditions[0] if len(conditions) == 1 else sa.or_(*conditions)


_OPS = {"gt": "__gt__", "gte": "__ge__", "lt": "__lt__", "lte": "__le__"}


def _attribute(text: TextBackend, c: AttributeCondition, sku: Any) -> sa.ColumnElement[bool]:
    value = c.value
    if isinstance(value, bool):
        return text.attribute_is(c.name, value)
    if isinstance(value, int | float):
        by_sku = text.attribute_number_skus(c.name, c.op, value)
        if by_sku is not None:
            return cast(sa.ColumnElement[bool], sku.in_(by_sku))
        number = text.attribute_number(c.name)
        if c.op != "eq":
            return cast(sa.ColumnElement[bool], getattr(number, _OPS[c.op])(value))
        as_text = number_text(value)
        either = text.attribute_equals_any(c.name, (value, as_text))
        if either is not None:  # the number, or the same digits as a string
            return either
        return sa.or_(number == value, text.attribute_text(c.name) == as_text)
    exact = text.lower(text.attribute_text(c.name)) == value.lower()
    candidates = text.attribute_text_candidates(c.name, value)
    if candidates is None:
        return exact
    return sa.and_(sku.in_(candidates), exact)  # the index first: most rows stop there


def number_text(value: int | float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
