"""All search SQL, for PostgreSQL (tsvector, GIN, pg_trgm) and SQLite (FTS5).

The two backends differ only in how a parsed query becomes a match condition and a score
(`PostgresText`, `SqliteText`); filters, sorts, keyset pages, counts, facets and categories are
shared SQLAlchemy Core. Ranking is bounded on both: relevance is computed for a capped candidate
set (`Spec.candidates`), counts and facets stop at `COUNT_CAP` rows, and PostgreSQL statements
run under a statement timeout (`STATEMENT_TIMEOUT_MS`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from typing import Any, NamedTuple, cast
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import visitors

from app.catalog.search.text import ParsedQuery, Term, overlap, trigrams
from app.core.db import upsert_insert
from app.models import Inventory, Product

PRODUCTS: sa.Table = cast(Any, Product).__table__
INVENTORY: sa.Table = cast(Any, Inventory).__table__
BRAND = sa.literal_column("products.brand", sa.String)
GTIN = sa.literal_column("products.gtin", sa.String)
STOCK = sa.func.coalesce(INVENTORY.c.quantity, 0)
WORDS = sa.table("search_words", sa.column("word", sa.String), sa.column("ndoc", sa.Integer))
# SQLite: what a tier needs of each FTS match, beside its rowid (migration 0008)
FACTS = sa.table(
    "product_search_ids",
    sa.column("id", sa.Integer),
    sa.column("sku", sa.String),
    sa.column("price_cents", sa.Integer),
    sa.column("category", sa.String),
    sa.column("brand", sa.String),
    sa.column("name_length", sa.Integer),
    sa.column("created_at", sa.DateTime),
)
FTS = sa.table("products_fts", sa.column("rowid", sa.Integer))
ATTRIBUTE_VALUES = sa.table(
    "product_attribute_values",
    sa.column("name", sa.String),
    sa.column("value", sa.types.NullType),
    sa.column("sku", sa.String),
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
FACT_FIELDS = Fields(
    FACTS.c.sku,
    FACTS.c.category,
    FACTS.c.price_cents,
    FACTS.c.brand,
    FACTS.c.created_at,
    FACTS.c.name_length,
)

SEARCH_CONFIG = "am_search"
EXACT_SCORE = 1000.0  # an exact SKU or GTIN match ranks above every text match
# Counting stops here: a common word's first 1,000 matches are found by reading a few thousand
# rows in any order, where 10,000 would need its whole posting list (measured: bench/RESULTS.md).
COUNT_CAP = 1000
STATEMENT_TIMEOUT_MS = 3000
# A filtered tier ANDs two bitmaps (a common word's 112k postings with a category's price range at
# 1M products); at PostgreSQL's default 4MB they turn lossy and ~27k rows are re-checked, ~25 %
# of the statement (bench/RESULTS.md). Per search transaction, per bitmap or sort node.
SEARCH_WORK_MEM = "16MB"
STOCK_CHUNKS = 3  # ordered chunks a stock-filtered listing reads before one filtered statement
SIMILARITY_THRESHOLD = 0.3  # pg_trgm's default `%` threshold
PRICE_BANDS = (0, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000)  # cents
MAX_BRAND_FACETS = 20
_GTIN = re.compile(r"^(\d{8,14}|\d{9}X)$")  # GTIN-8/12/13/14, ISBN-10 (check digit X)
_PREPARED = "search_prepared"
_RANKING = "search_ranking"


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


@dataclass(frozen=True)
class Spec:
    """One search: what to match, how to filter and order, where to continue, how many."""

    query: ParsedQuery | None
    filters: Filters
    sort: str  # relevance, price_asc, price_desc, newest, sku
    after: tuple[Any, ...] | None = None  # the last row's sort key
    limit: int = 20
    candidates: int = 1000  # relevance: only this many best matches are ranked and paged


@dataclass(frozen=True)
class Row:
    product: dict[str, Any]
    stock: int
    score: float | None


def _sku_lookup(query: ParsedQuery) -> tuple[str, str | None]:
    """The whole query as a lowercase SKU, and as a GTIN/ISBN when it is one."""
    digits = re.sub(r"[\s-]", "", query.whole).upper()
    return query.whole.lower()[:64], digits if _GTIN.match(digits) else None


def _exact(query: ParsedQuery) -> sa.ColumnElement[bool]:
    sku, gtin = _sku_lookup(query)
    condition = sa.func.lower(PRODUCTS.c.sku) == sku
    return sa.or_(condition, GTIN == gtin) if gtin else condition


def _tier_columns(fields: Fields, sort: str) -> tuple[Any, ...]:
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
        (sku, base score, `_tier_columns`) without a LIMIT, built as they are read (a common
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


# Per-field documents (migration 0007), GIN-indexed: "all words in the name" / "in the brand and
# category" are answered from their own index (or a cheap scan), where the weighted `search_doc`
# made PostgreSQL re-read every row with the words anywhere to check their weights.
NAME_DOC: sa.ColumnElement[Any] = sa.literal_column("products.name_doc")
LABELS_DOC: sa.ColumnElement[Any] = sa.literal_column("products.labels_doc")
ATTRIBUTES_JSONB: sa.ColumnElement[Any] = sa.literal_column("(products.attributes::jsonb)")


class PostgresText(TextBackend):
    doc: sa.ColumnElement[Any] = sa.literal_column("products.search_doc")

    @staticmethod
    def tsquery_text(query: ParsedQuery, weight: str = "", *, positive: bool = False) -> str:
        """`to_tsquery` input: every word quoted (they are alphanumeric), never a syntax error.

        `weight` ("A", "AB", …) restricts the positive words to those fields; `positive` leaves
        the excluded words out (they are checked by the match itself)."""
        text = " & ".join(
            "(" + " | ".join(_weighted(t, weight) for t in c) + ")" for c in query.clauses
        )
        if not positive:
            for t in query.excluded:
                text += " & !" + _weighted(t, "")
        return text

    def _tsquery(
        self, query: ParsedQuery, weight: str = "", *, positive: bool = False
    ) -> sa.ColumnElement[Any]:
        return sa.func.to_tsquery(
            sa.literal_column(f"'{SEARCH_CONFIG}'::regconfig"),
            sa.bindparam(None, self.tsquery_text(query, weight, positive=positive), type_=sa.Text),
        )

    def tier_selects(
        self, query: ParsedQuery, filters: Filters, sort: str
    ) -> Iterator[sa.Select[Any]]:
        where = _filters(self, filters)
        columns = _tier_columns(PRODUCT_FIELDS, sort)
        for condition, base in self._tiers(query):
            yield (
                sa.select(PRODUCTS.c.sku, base, *columns)
                .select_from(_from(where))
                .where(condition, *where)
            )

    def _tiers(self, query: ParsedQuery) -> Iterator[tuple[sa.ColumnElement[bool], Any]]:
        # One condition per tier, each on one document, so the planner's estimate is the
        # word's own frequency (two conditions multiply as if independent: "laptop" in name and
        # labels was estimated at 1,455 rows of 73,004, and read through two 70k-row bitmaps
        # instead of a short scan). Every row gets its full score from its flags.
        positive = self._tsquery(query, positive=True)
        unwanted = [self.doc.op("@@")(self._tsquery(query))] if query.excluded else []
        in_name = NAME_DOC.op("@@")(positive)
        in_labels = LABELS_DOC.op("@@")(positive)

        def within(weights: str) -> sa.ColumnElement[Any]:
            return _flag(self.doc.op("@@")(self._tsquery(query, weights, positive=True)))

        score = 1 + 8 * _flag(in_name) + 4 * _flag(in_labels) + 2 * within("AB") + within("ABC")
        yield sa.and_(in_name, *unwanted), score
        yield sa.and_(in_labels, *unwanted), score
        yield self.doc.op("@@")(self._tsquery(query)), score

    def attribute_text(self, name: str) -> sa.ColumnElement[Any]:
        return PRODUCTS.c.attributes.op("->>")(sa.literal(name, sa.Text))

    def attribute_equals(self, name: str, value: Any) -> sa.ColumnElement[bool] | None:
        # containment on `ix_products_attributes` (jsonb_path_ops); jsonb compares numbers by
        # value, so {"size": 10} also finds 10.0
        return ATTRIBUTES_JSONB.op("@>")(
            sa.cast(sa.literal(json.dumps({name: value}), sa.Text), JSONB)
        )

    def attribute_number(self, name: str) -> sa.ColumnElement[Any]:
        value = PRODUCTS.c.attributes.op("->")(sa.literal(name, sa.Text))
        return sa.case(
            (
                sa.func.json_typeof(value) == "number",
                sa.cast(self.attribute_text(name), sa.Numeric),
            ),
            else_=sa.null(),
        )

    async def prepare(self, session: AsyncSession) -> None:
        """Once per transaction (the settings end with it): the statement timeout, memory for
        exact bitmaps, and scans that read a table from its start, so a tier's LIMIT takes the
        same rows on every page (a synchronized scan joins another one midway; parallel workers
        interleave rows)."""
        if session.in_transaction() and session.info.get(_PREPARED) is session.get_transaction():
            return
        await session.execute(
            sa.text(
                "SELECT set_config('statement_timeout', :timeout, true),"
                " set_config('work_mem', :work_mem, true),"
                " set_config('synchronize_seqscans', 'off', true),"
                " set_config('max_parallel_workers_per_gather', '0', true)"
            ),
            {"timeout": str(STATEMENT_TIMEOUT_MS), "work_mem": SEARCH_WORK_MEM},
        )
        session.info[_PREPARED] = session.get_transaction()

    async def similar_words(
        self, session: AsyncSession, words: Sequence[str]
    ) -> dict[str, list[tuple[str, float, int]]]:
        statement = sa.text(
            "SELECT q.w, s.word, similarity(s.word, q.w) AS sim, s.ndoc"
            " FROM unnest(CAST(:words AS text[])) AS q(w)"
            " CROSS JOIN LATERAL (SELECT word, ndoc FROM search_words"
            "   WHERE word % q.w ORDER BY similarity(word, q.w) DESC, ndoc DESC, word LIMIT 5) s"
        )
        found: dict[str, list[tuple[str, float, int]]] = {w: [] for w in words}
        for w, word, sim, ndoc in await session.execute(statement, {"words": list(words)}):
            found[w].append((word, float(sim), int(ndoc)))
        return found


def _weighted(term: Term, weight: str) -> str:
    last = len(term.words) - 1
    parts = []
    for i, w in enumerate(term.words):
        suffix = ("*" if term.prefix and i == last else "") + weight
        parts.append(f"'{w}'" + (":" + suffix if suffix else ""))
    return "(" + " <-> ".join(parts) + ")"


class SqliteText(TextBackend):
    disjoint_tiers = True

    @staticmethod
    def fts_query(
        query: ParsedQuery, columns: tuple[str, ...] = (), without: tuple[str, ...] = ()
    ) -> str:
        """An FTS5 expression with every word quoted, so no input is ever a syntax error.

        `columns` (("name",), ("name", "facets"), ("name facets",), …): every word must occur
        within each of these column sets; `without`: and not within any of these."""

        def term(t: Term) -> str:
            last = len(t.words) - 1
            return " + ".join(
                f'"{w}"' + ("*" if t.prefix and i == last else "") for i, w in enumerate(t.words)
            )

        words = " AND ".join("(" + " OR ".join(term(t) for t in c) + ")" for c in query.clauses)
        text = words
        if columns:
            text = " AND ".join("{" + group + "} : (" + words + ")" for group in columns)
        for group in without:
            text = f"({text}) NOT {{{group}}} : ({words})"
        for t in query.excluded:
            text = f"({text}) NOT ({term(t)})"
        return text

    def _match(
        self, query: ParsedQuery, columns: tuple[str, ...] = (), without: tuple[str, ...] = ()
    ) -> Any:
        """FTS matches of `query` (see `fts_query`)."""
        fts: sa.BindParameter[str] = sa.bindparam(
            "fts", self.fts_query(query, columns, without), unique=True
        )
        return sa.literal_column("products_fts").op("MATCH")(fts)

    def tier_selects(
        self, query: ParsedQuery, filters: Filters, sort: str
    ) -> Iterator[sa.Select[Any]]:
        # Column filters are answered from the FTS index; each tier is one MATCH that stops at
        # its LIMIT, reading the facts kept beside the rowids (`products` only for attribute
        # filters). The tiers are disjoint (each leaves out the stronger ones' matches, in the
        # index too), so together they read at most `limit` rows. The weaker flags of the last
        # tier are one more MATCH each.
        where = _filters(self, filters, FACT_FIELDS)
        source = FTS.join(FACTS, FACTS.c.id == FTS.c.rowid)
        if any(_uses_stock(w) for w in where):
            source = source.outerjoin(INVENTORY, INVENTORY.c.sku == FACTS.c.sku)
        if any(_uses(w, PRODUCTS) for w in where):
            source = source.join(PRODUCTS, PRODUCTS.c.sku == FACTS.c.sku)

        def within(columns: tuple[str, ...]) -> sa.ColumnElement[Any]:
            found = sa.select(FTS.c.rowid).where(self._match(query, columns)).correlate(None)
            return _flag(FACTS.c.id.in_(found))

        columns = _tier_columns(FACT_FIELDS, sort)
        tiers: list[tuple[tuple[str, ...], tuple[str, ...], int | None]] = [
            (("name", "facets"), (), 16),
            (("name",), ("facets",), 12),
            (("facets",), ("name",), 8),
            ((), ("name", "facets"), None),
        ]
        for match, without, fixed in tiers:
            base: Any = sa.literal(fixed)
            if fixed is None:  # the rest: scored by flags
                base = 1 + 2 * within(("name facets",)) + within(("name facets attrs",))
            yield (
                sa.select(FACTS.c.sku, base, *columns)
                .select_from(source)
                .where(self._match(query, match, without), *where)
            )

    def attribute_text(self, name: str) -> sa.ColumnElement[Any]:
        return sa.func.json_extract(PRODUCTS.c.attributes, f'$."{name}"')

    def attribute_number(self, name: str) -> sa.ColumnElement[Any]:
        kind = sa.func.json_type(PRODUCTS.c.attributes, f'$."{name}"')
        return sa.case((kind.in_(["integer", "real"]), self.attribute_text(name)), else_=sa.null())

    def attribute_is(self, name: str, value: bool) -> sa.ColumnElement[bool]:
        kind = sa.func.json_type(PRODUCTS.c.attributes, f'$."{name}"')
        return kind == ("true" if value else "false")

    def attribute_number_skus(self, name: str, op: str, value: int | float) -> Any:
        # `product_attribute_values` (migration 0008) holds numbers and texts untyped: SQLite
        # orders every number before every text, so '' (the least text) ends a number range
        found = ATTRIBUTE_VALUES.c.value
        conditions = {
            "eq": sa.or_(found == value, found == sa.literal(_number_text(value), sa.String)),
            "gt": sa.and_(found > value, found < ""),
            "gte": sa.and_(found >= value, found < ""),
            "lt": found < value,
            "lte": found <= value,
        }
        return sa.select(ATTRIBUTE_VALUES.c.sku).where(
            ATTRIBUTE_VALUES.c.name == name, conditions[op]
        )

    def attribute_text_candidates(self, name: str, value: str) -> Any:
        # NOCASE folds ASCII letters only, so it answers for ASCII values. The one other
        # character whose lowercase is ASCII is the Kelvin sign (K -> k): where `value` has a
        # k, every value from its text before the first k on (in NOCASE order) is a candidate,
        # which holds the Kelvin spellings too. A value beyond ASCII reads the JSON alone.
        wanted = value.lower()
        if not wanted.isascii():
            return None
        stored = ATTRIBUTE_VALUES.c.value.collate("NOCASE")
        if "k" not in wanted:
            matches = stored == sa.literal(wanted, sa.String)
        else:
            before = wanted[: wanted.index("k")]
            if not before:
                return None
            matches = sa.and_(
                stored >= sa.literal(before, sa.String),
                stored < sa.literal(before + "\U0010ffff", sa.String),
            )
        return sa.select(ATTRIBUTE_VALUES.c.sku).where(ATTRIBUTE_VALUES.c.name == name, matches)

    def lower(self, value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        # SQLite's own `lower` only knows ASCII: `am_lower` is registered on each connection by
        # app/core/db.py (queries only, never in the schema, so other tools can write the file)
        return sa.func.am_lower(value)

    async def similar_words(
        self, session: AsyncSession, words: Sequence[str]
    ) -> dict[str, list[tuple[str, float, int]]]:
        # SQLite picks the words sharing at least one trigram with a typed word (every word with
        # a similarity above 0 does) from `search_words_trgm` (migration 0008; without it, by
        # testing every word), and Python scores them with pg_trgm's own formula, so both
        # backends suggest the same words.
        shared = sorted({t for w in words for t in trigrams(w)})
        indexed = sa.text(
            "SELECT trim(word) FROM search_words_trgm WHERE search_words_trgm MATCH :trigrams"
        ).bindparams(trigrams=" OR ".join('"' + t.replace('"', '""') + '"' for t in shared))
        listed = indexed.columns(sa.column("word", sa.String))
        condition: sa.ColumnElement[bool] = WORDS.c.word.in_(listed)
        if not await _has_word_index(session):
            padded = "  " + WORDS.c.word + " "
            condition = sa.or_(*[sa.func.instr(padded, t) > 0 for t in shared])
        rows = (await session.execute(sa.select(WORDS.c.word, WORDS.c.ndoc).where(condition))).all()
        candidates = [(word, trigrams(word), int(ndoc)) for word, ndoc in rows]  # once each
        found: dict[str, list[tuple[str, float, int]]] = {}
        for w in words:
            typed = trigrams(w)
            scored = [(word, overlap(typed, grams), ndoc) for word, grams, ndoc in candidates]
            close = [s for s in scored if s[1] >= SIMILARITY_THRESHOLD]
            close.sort(key=lambda s: (-s[1], -s[2], s[0]))
            found[w] = close[:5]
        return found


# Per engine, asked once: the table comes with the migration the app runs at start-up.
_WORD_INDEX: WeakKeyDictionary[Any, bool] = WeakKeyDictionary()


async def _has_word_index(session: AsyncSession) -> bool:
    """The database has `search_words_trgm` (SQLite 3.34+ when migration 0008 ran)."""
    engine = session.get_bind()
    if engine not in _WORD_INDEX:
        found = await session.execute(
            sa.text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"),
            {"name": "search_words_trgm"},
        )
        _WORD_INDEX[engine] = found.first() is not None
    return _WORD_INDEX[engine]


def _flag(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
    return sa.case((condition, 1), else_=0)


def backend_for(session: AsyncSession) -> TextBackend:
    dialect = session.bind.dialect.name if session.bind else "postgresql"
    return SqliteText() if dialect == "sqlite" else PostgresText()


def _from(where: list[sa.ColumnElement[bool]] | None = None) -> Any:
    """Products, joined to their stock when it is selected or filtered on (`where` None: always)."""
    if where is not None and not any(_uses_stock(w) for w in where):
        return PRODUCTS
    return PRODUCTS.outerjoin(INVENTORY, INVENTORY.c.sku == PRODUCTS.c.sku)


def _uses_stock(condition: sa.ColumnElement[bool]) -> bool:
    return _uses(condition, INVENTORY)


def _uses(condition: sa.ColumnElement[bool], table: sa.Table) -> bool:
    return any(getattr(column, "table", None) is table for column in visitors.iterate(condition))


def _filters(
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
    return where


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
        as_text = _number_text(value)
        indexed = text.attribute_equals(c.name, value)
        if indexed is not None:  # the number, or the same digits as a string
            return sa.or_(indexed, cast(Any, text.attribute_equals(c.name, as_text)))
        return sa.or_(number == value, text.attribute_text(c.name) == as_text)
    exact = text.lower(text.attribute_text(c.name)) == value.lower()
    candidates = text.attribute_text_candidates(c.name, value)
    if candidates is None:
        return exact
    return sa.and_(sku.in_(candidates), exact)  # the index first: most rows stop there


def _number_text(value: int | float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@cache
def _product_columns() -> list[Any]:
    """A page's columns (built once). Stock is looked up per returned row (after the LIMIT),
    not joined: a join let the planner merge-join `inventory` from its first SKU
    (bench/RESULTS.md)."""
    stock = (
        sa.select(INVENTORY.c.quantity)
        .where(INVENTORY.c.sku == PRODUCTS.c.sku)
        .correlate(PRODUCTS)
        .scalar_subquery()
    )
    return [*PRODUCTS.c, BRAND.label("brand"), sa.func.coalesce(stock, 0).label("stock")]


def _keyset(sort: str, after: tuple[Any, ...]) -> sa.ColumnElement[bool]:
    """Rows after the cursor. Price and date orders break ties by SKU in their own direction, so
    the condition is one row comparison: an index range on (price, sku) / (created_at, sku)."""
    sku = PRODUCTS.c.sku
    if sort == "price_asc":
        return sa.tuple_(PRODUCTS.c.price_cents, sku) > sa.tuple_(*after)
    if sort == "price_desc":
        return sa.tuple_(PRODUCTS.c.price_cents, sku) < sa.tuple_(*after)
    if sort == "newest":
        created = sa.bindparam(None, after[0], type_=PRODUCTS.c.created_at.type)
        return sa.tuple_(PRODUCTS.c.created_at, sku) < sa.tuple_(created, after[1])
    return sku > after[0]


def _order(sort: str) -> list[Any]:
    sku = PRODUCTS.c.sku
    orders: dict[str, list[Any]] = {
        "price_asc": [PRODUCTS.c.price_cents, sku],
        "price_desc": [PRODUCTS.c.price_cents.desc(), sku.desc()],
        "newest": [PRODUCTS.c.created_at.desc(), sku.desc()],
    }
    return orders.get(sort, [sku])


def sort_key(sort: str, row: Row) -> list[Any]:
    """The values a cursor must carry to continue after `row`."""
    product = row.product
    if sort == "relevance":
        return [row.score, product["sku"]]
    if sort in ("price_asc", "price_desc"):
        return [product["price_cents"], product["sku"]]
    if sort == "newest":
        created: datetime = product["created_at"]
        return [created.isoformat(), product["sku"]]
    return [product["sku"]]


class Candidate(NamedTuple):
    """A ranked match, with what sorting and facets need (a tuple: a ranking builds 1,000s)."""

    sku: str
    score: float
    price_cents: int
    created_at: datetime | None  # only for the date sort (`_facts`)
    category: str
    brand: str | None


@dataclass(frozen=True)
class Ranking:
    """The ranked candidates of one query and filters, best first, and how many match."""

    candidates: list[Candidate]
    total: int  # distinct matches seen, exact when not `capped`
    capped: bool


def _facts(sort: str) -> tuple[Any, ...]:
    """The columns a candidate carries. `created_at` only for the date sort: turning a SQLite
    timestamp into an aware datetime is most of the Python time of a 1,000-row ranking."""
    return _tier_columns(PRODUCT_FIELDS, sort)[1:]


async def ranking(session: AsyncSession, spec: Spec) -> Ranking:
    """The `spec.candidates` best matches of the spec's query (filters applied), by score.

    One formula on every backend: an exact SKU/GTIN match scores EXACT_SCORE; a text match
    1 + 8·(every word in the name) + 4·(in the labels: brand and category) + 2·(in name and
    labels together) + 1·(in those or the attribute values) + 1 / (1 + length of the name)
    (within a tier, the words are more of a shorter name). The flags imply each other, so the
    matches fall into disjoint tiers: name and labels 16, name 12, labels 8, the rest 1–4.

    The tiers are read strongest first (PostgreSQL: every word in the name, in the labels, any
    match; SQLite, where column filters cost nothing extra: name and labels, name, labels, any),
    each stopping at COUNT_CAP + 1 rows (SQLite's tiers are disjoint, so each reads only what
    the stronger ones left of that): once a tier fills that, every weaker tier would only
    add lower scores, so it is not read; the cost is bounded
    however many products match, and a common word costs one short scan. A query whose tiers
    all end early has been read whole, and its count is exact. Rows are taken in the database's
    own order within a tier (deterministic: see `PostgresText.prepare`), so every page of one
    search ranks the same candidates. The result is kept for the transaction: the first page's
    count and page read the tiers once.
    """
    text = backend_for(session)
    await text.prepare(session)
    await session.connection()  # the transaction exists from here on: it is part of the key
    key = (spec.query, spec.filters, spec.sort, spec.candidates, session.get_transaction())
    cached = session.info.get(_RANKING)
    if cached is not None and cached[0] == key:
        return cast(Ranking, cached[1])
    assert spec.query is not None
    query, where = spec.query, _filters(text, spec.filters)
    limit = max(spec.candidates, COUNT_CAP) + 1
    found: dict[str, Candidate] = {}
    exact = sa.select(PRODUCTS.c.sku, *_facts(spec.sort)).select_from(_from(where))
    for sku, *values in await session.execute(exact.where(_exact(query), *where).limit(limit)):
        found[sku] = Candidate(sku, EXACT_SCORE, *values)
    capped = False
    tiers = iter(()) if query.empty else text.tier_selects(query, spec.filters, spec.sort)
    for statement in tiers:
        wanted = limit - len(found) if text.disjoint_tiers else limit
        if wanted <= 0:
            capped = True
            break
        rows = (await session.execute(statement.limit(wanted))).all()
        for sku, base, length, price, created, category, brand in rows:
            score = float(base) + 1.0 / (1 + int(length))
            seen = found.get(sku)
            if seen is None or score > seen.score:
                found[sku] = Candidate(sku, score, price, created, category, brand)
        if len(rows) == wanted:
            capped = True  # more match than the cap: every weaker tier scores lower
            break
    best = sorted(found.values(), key=lambda c: (-c.score, c.sku))[: spec.candidates]
    result = Ranking(best, len(found), capped or len(found) > COUNT_CAP)
    session.info[_RANKING] = (key, result)
    return result


async def page(session: AsyncSession, spec: Spec) -> list[Row]:
    """Up to `spec.limit` rows in the spec's order, after `spec.after`.

    With a query, every sort orders the ranked candidates (`ranking`): a price or date sort
    of a broad query would otherwise read every match (at 1M, "laptop" by price is 73,000 rows
    spread over half the table: 2.4 s), so it sorts the 1,000 best matches — all of them when
    fewer match. Without a query, sorts walk their index and have no cap."""
    text = backend_for(session)
    await text.prepare(session)
    if spec.query is not None:
        return await _ranked_page(session, spec)
    if spec.filters.in_stock is None:
        return await _listing(session, text, spec.filters, spec.sort, spec.after, spec.limit)
    return await _stock_listing(session, text, spec)


async def _listing(
    session: AsyncSession,
    text: TextBackend,
    filters: Filters,
    sort: str,
    after: tuple[Any, ...] | None,
    limit: int,
) -> list[Row]:
    where = _filters(text, filters)
    statement = sa.select(*_product_columns()).select_from(_from(where)).where(*where)
    if after is not None:
        statement = statement.where(_keyset(sort, after))
    statement = statement.order_by(*_order(sort)).limit(limit)
    return [_row(row, None) for row in (await session.execute(statement)).mappings()]


async def _stock_listing(session: AsyncSession, text: TextBackend, spec: Spec) -> list[Row]:
    """A listing filtered on stock: the other filters' matches in order, a chunk at a time, each
    row's stock looked up as it is read, until the page is full.

    In one statement the planner joins every match to `inventory` before sorting them: at 1M,
    `Running Shoes size=10 in stock` joined 5.7k rows to return 21 (45 ms of SQL; sorting first,
    26 ms). Products are mostly in stock, so the first chunk nearly always fills the page; after
    STOCK_CHUNKS chunks the rest is left to that one statement, so a rare stock state costs a few
    statements, not one per chunk."""
    wanted = spec.filters.in_stock
    others = replace(spec.filters, in_stock=None)
    rows: list[Row] = []
    after, chunk = spec.after, 2 * spec.limit + 10
    for _ in range(STOCK_CHUNKS):
        batch = await _listing(session, text, others, spec.sort, after, chunk)
        rows += [r for r in batch if (r.stock > 0) == wanted]
        if len(rows) >= spec.limit or len(batch) < chunk:
            return rows[: spec.limit]
        after, chunk = _continue_after(spec.sort, batch[-1]), chunk * 4
    rest = spec.limit - len(rows)
    return rows + await _listing(session, text, spec.filters, spec.sort, after, rest)


def _continue_after(sort: str, row: Row) -> tuple[Any, ...]:
    """`row`'s cursor key (`sort_key`) as `_keyset` takes it: a date as the datetime itself, as
    a decoded cursor gives it."""
    key = sort_key(sort, row)
    if sort == "newest":
        key[0] = row.product["created_at"]
    return tuple(key)


def _in_order(sort: str, candidates: list[Candidate]) -> list[Candidate]:
    """The candidates in the order of `sort` (as `_order` orders rows in SQL)."""
    if sort == "relevance":
        return candidates  # already by score, then SKU
    if sort == "price_asc":
        return sorted(candidates, key=lambda c: (c.price_cents, c.sku))
    if sort == "price_desc":
        return sorted(candidates, key=lambda c: (c.price_cents, c.sku), reverse=True)
    if sort == "newest":
        return sorted(candidates, key=lambda c: (_aware(c.created_at), c.sku), reverse=True)
    return sorted(candidates, key=lambda c: c.sku)


def _is_after(sort: str, c: Candidate, after: tuple[Any, ...]) -> bool:
    """`c` comes after the cursor's row (as `_keyset` says in SQL)."""
    if sort == "relevance":
        score, sku = float(after[0]), str(after[1])
        return c.score < score or (c.score == score and c.sku > sku)
    if sort == "price_asc":
        return (c.price_cents, c.sku) > (int(after[0]), str(after[1]))
    if sort == "price_desc":
        return (c.price_cents, c.sku) < (int(after[0]), str(after[1]))
    if sort == "newest":
        created = datetime.fromisoformat(str(after[0]))
        return (_aware(c.created_at), c.sku) < (_aware(created), str(after[1]))
    return c.sku > str(after[0])


def _aware(moment: datetime | None) -> datetime:
    assert moment is not None, "created_at is fetched for the date sort"
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _ranked_page(session: AsyncSession, spec: Spec) -> list[Row]:
    candidates = _in_order(spec.sort, (await ranking(session, spec)).candidates)
    if spec.after is not None:
        after = spec.after
        candidates = [c for c in candidates if _is_after(spec.sort, c, after)]
    chosen = candidates[: spec.limit]
    if not chosen:
        return []
    statement = sa.select(*_product_columns()).where(PRODUCTS.c.sku.in_([c.sku for c in chosen]))
    found = {row["sku"]: row for row in (await session.execute(statement)).mappings()}
    relevance = spec.sort == "relevance"
    return [_row(found[c.sku], c.score if relevance else None) for c in chosen if c.sku in found]


def _row(row: Any, score: float | None) -> Row:
    product = {c.name: row[c.name] for c in PRODUCTS.c}
    product["brand"] = row["brand"]
    if isinstance(product["attributes"], str):
        product["attributes"] = json.loads(product["attributes"])
    return Row(product, int(row["stock"]), score)


def _matching(text: TextBackend, spec: Spec, cap: int) -> Any:
    """The products a listing without a query holds (filters applied), at most `cap` of them
    (a query's matches are counted by its ranking)."""
    where = _filters(text, spec.filters)
    return (
        sa.select(PRODUCTS.c.sku, PRODUCTS.c.category, BRAND.label("brand"), PRODUCTS.c.price_cents)
        .select_from(_from(where))
        .where(*where)
        .limit(cap)
    )


async def count(session: AsyncSession, spec: Spec) -> tuple[int, bool]:
    """How many products match (exact up to COUNT_CAP), and whether the count was capped."""
    if spec.query is not None:
        ranked = await ranking(session, spec)  # the page reads the same tiers
        return min(ranked.total, COUNT_CAP), ranked.capped
    text = backend_for(session)
    await text.prepare(session)
    matching = _matching(text, spec, COUNT_CAP + 1).subquery()  # one more tells it is capped
    total = int(await session.scalar(sa.select(sa.func.count()).select_from(matching)) or 0)
    return min(total, COUNT_CAP), total > COUNT_CAP


@dataclass(frozen=True)
class FacetCounts:
    categories: list[tuple[str, int]]
    brands: list[tuple[str, int]]
    price: list[tuple[int, int | None, int]]
    capped: bool


async def facets(session: AsyncSession, spec: Spec) -> FacetCounts:
    """Counts per category, brand and price band over the first COUNT_CAP matches."""
    if spec.query is not None:
        return _facets_of((await ranking(session, spec)).candidates[:COUNT_CAP])
    text = backend_for(session)
    await text.prepare(session)
    matching = _matching(text, spec, COUNT_CAP).cte("matching")
    band = sa.case(
        *[
            (matching.c.price_cents < high, low)
            for low, high in zip(PRICE_BANDS, PRICE_BANDS[1:], strict=False)
        ],
        else_=PRICE_BANDS[-1],
    )
    statement = sa.union_all(
        sa.select(sa.literal("c"), matching.c.category, sa.func.count()).group_by(
            matching.c.category
        ),
        sa.select(sa.literal("b"), matching.c.brand, sa.func.count())
        .where(matching.c.brand.is_not(None))
        .group_by(matching.c.brand),
        sa.select(sa.literal("p"), sa.cast(band, sa.String), sa.func.count()).group_by(band),
    )
    categories: list[tuple[str, int]] = []
    brands: list[tuple[str, int]] = []
    bands: dict[int, int] = {}
    for kind, value, n in await session.execute(statement):
        if kind == "c":
            categories.append((str(value), int(n)))
        elif kind == "b":
            brands.append((str(value), int(n)))
        else:
            bands[int(value)] = int(n)
    return _facet_counts(categories, brands, bands)


def _facets_of(candidates: list[Candidate]) -> FacetCounts:
    """Facets of the ranked candidates (the best COUNT_CAP matches of a query)."""
    categories = Counter(c.category for c in candidates)
    brands = Counter(c.brand for c in candidates if c.brand is not None)
    bands = Counter(_band(c.price_cents) for c in candidates)
    return _facet_counts(list(categories.items()), list(brands.items()), dict(bands))


def _band(price: int) -> int:
    return max(low for low in PRICE_BANDS if low <= price) if price >= 0 else PRICE_BANDS[0]


def _facet_counts(
    categories: list[tuple[str, int]], brands: list[tuple[str, int]], bands: dict[int, int]
) -> FacetCounts:
    total = sum(n for _, n in categories)
    categories.sort(key=lambda item: (-item[1], item[0]))
    brands.sort(key=lambda item: (-item[1], item[0]))
    highs: list[int | None] = [*PRICE_BANDS[1:], None]
    price = [
        (low, high, bands[low])
        for low, high in zip(PRICE_BANDS, highs, strict=True)
        if low in bands
    ]
    # counted over the first COUNT_CAP matches; reaching it means there may be more
    return FacetCounts(categories, brands[:MAX_BRAND_FACETS], price, total >= COUNT_CAP)


async def categories(session: AsyncSession) -> list[tuple[str, int]]:
    """Every category slug with its product count, by slug."""
    await backend_for(session).prepare(session)
    statement = (
        sa.select(PRODUCTS.c.category, sa.func.count())
        .group_by(PRODUCTS.c.category)
        .order_by(PRODUCTS.c.category)
    )
    return [(str(c), int(n)) for c, n in await session.execute(statement)]


async def known_words(session: AsyncSession, words: Sequence[str]) -> set[str]:
    """The words that are in the word list."""
    if not words:
        return set()
    statement = sa.select(WORDS.c.word).where(WORDS.c.word.in_(list(words)))
    return {str(w) for w in await session.scalars(statement)}


async def similar_words(
    session: AsyncSession, words: Sequence[str]
) -> dict[str, list[tuple[str, float, int]]]:
    """Up to five listed words like each of `words`: (word, similarity, products), best first."""
    if not words:
        return {}
    return await backend_for(session).similar_words(session, words)


async def count_words(session: AsyncSession, deltas: dict[str, int]) -> None:
    """Add `deltas` to the words' product counts; a word no product has any more leaves."""
    changed = {w: n for w, n in deltas.items() if n}
    if not changed:
        return
    stmt = upsert_insert(session, cast(sa.Table, WORDS))
    stmt = stmt.on_conflict_do_update(
        index_elements=["word"], set_={"ndoc": WORDS.c.ndoc + stmt.excluded.ndoc}
    )
    rows = [{"word": w, "ndoc": n} for w, n in sorted(changed.items())]  # sorted: no deadlocks
    await session.execute(stmt, rows)
    if any(n < 0 for n in changed.values()):
        gone = [w for w, n in changed.items() if n < 0]
        await session.execute(sa.delete(WORDS).where(WORDS.c.word.in_(gone), WORDS.c.ndoc <= 0))


async def rebuild_words(session: AsyncSession, counts: dict[str, int]) -> None:
    """Replace the word list (after a bulk load that bypassed the upsert path)."""
    await session.execute(sa.delete(WORDS))
    await count_words(session, counts)


async def vocabulary_sources(session: AsyncSession) -> AsyncIterator[tuple[str, str, Any]]:
    """(name, category, attributes) of every product, streamed in batches."""
    statement = sa.select(PRODUCTS.c.name, PRODUCTS.c.category, PRODUCTS.c.attributes)
    result = await session.stream(statement.execution_options(yield_per=5000))
    async for name, category, attributes in result:
        yield name, category, attributes
