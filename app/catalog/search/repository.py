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
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import visitors

from app.catalog.search.text import ParsedQuery, Term, similarity, trigrams
from app.core.db import upsert_insert
from app.models import Inventory, Product

PRODUCTS: sa.Table = cast(Any, Product).__table__
INVENTORY: sa.Table = cast(Any, Inventory).__table__
BRAND = sa.literal_column("products.brand", sa.String)
GTIN = sa.literal_column("products.gtin", sa.String)
STOCK = sa.func.coalesce(INVENTORY.c.quantity, 0)
WORDS = sa.table("search_words", sa.column("word", sa.String), sa.column("ndoc", sa.Integer))

SEARCH_CONFIG = "am_search"
EXACT_SCORE = 1000.0  # an exact SKU or GTIN match ranks above every text match
# Counting stops here: a common word's first 1,000 matches are found by reading a few thousand
# rows in any order, where 10,000 would need its whole posting list (measured: bench/RESULTS.md).
COUNT_CAP = 1000
STATEMENT_TIMEOUT_MS = 3000
SIMILARITY_THRESHOLD = 0.3  # pg_trgm's default `%` threshold
PRICE_BANDS = (0, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000)  # cents
MAX_BRAND_FACETS = 20
_GTIN = re.compile(r"^(\d{8,14}|\d{9}X)$")  # GTIN-8/12/13/14, ISBN-10 (check digit X)
_PREPARED = "search_prepared"


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


class TextBackend:
    """How a parsed query matches and scores products on one database."""

    def match(self, query: ParsedQuery) -> sa.ColumnElement[bool]:
        raise NotImplementedError

    def scored(self, query: ParsedQuery, where: list[sa.ColumnElement[bool]], cap: int) -> Any:
        """A capped select of (sku, score) of the matching products, exact matches included."""
        raise NotImplementedError

    def attribute_text(self, name: str) -> sa.ColumnElement[Any]:
        raise NotImplementedError

    def attribute_number(self, name: str) -> sa.ColumnElement[Any]:
        raise NotImplementedError

    def attribute_is(self, name: str, value: bool) -> sa.ColumnElement[bool]:
        """The attribute is the JSON boolean `value`."""
        return self.attribute_text(name) == ("true" if value else "false")

    def lower(self, value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """Lowercase in SQL as Python's `str.lower` does."""
        return sa.func.lower(value)

    async def prepare(self, session: AsyncSession) -> None:
        """Per-transaction settings (PostgreSQL: the statement timeout)."""

    async def similar_words(
        self, session: AsyncSession, words: Sequence[str]
    ) -> dict[str, list[tuple[str, float, int]]]:
        raise NotImplementedError


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

    def match(self, query: ParsedQuery) -> sa.ColumnElement[bool]:
        if query.empty:
            return _exact(query)
        return sa.or_(self.doc.op("@@")(self._tsquery(query)), _exact(query))

    def scored(self, query: ParsedQuery, where: list[sa.ColumnElement[bool]], cap: int) -> Any:
        # Candidates: exact SKU/GTIN matches, products with every word in the name, then any
        # match; each branch stops at `cap` rows and scores only those, so the cost is bounded
        # however many products match. A product in several branches keeps its best score.
        def within(weights: str) -> sa.ColumnElement[Any]:
            return _flag(self.doc.op("@@")(self._tsquery(query, weights, positive=True)))

        tiers = (within("A"), within("B"), within("AB"), within("ABC"))

        def branch(condition: sa.ColumnElement[bool], score: Any) -> Any:
            return (
                sa.select(PRODUCTS.c.sku.label("sku"), sa.cast(score, sa.Float).label("score"))
                .select_from(_from(where))
                .where(condition, *where)
                .limit(cap)
            )

        # One branch per strong tier (all words in the name; in brand and category), so however
        # many weaker matches there are, the strongest products are among the candidates.
        branches = [branch(_exact(query), sa.literal(EXACT_SCORE))]
        if not query.empty:
            score = _tier_score(*tiers)
            for weights in ("A", "B", ""):
                matches = self.doc.op("@@")(self._tsquery(query, weights))
                branches.append(branch(matches, score))
        return _best(sa.union_all(*branches).subquery("candidates"), cap)

    def attribute_text(self, name: str) -> sa.ColumnElement[Any]:
        return PRODUCTS.c.attributes.op("->>")(sa.literal(name, sa.Text))

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
        """The statement timeout, once per transaction (SET LOCAL ends with it)."""
        if session.in_transaction() and session.info.get(_PREPARED) is session.get_transaction():
            return
        await session.execute(sa.text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
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
    @staticmethod
    def fts_query(query: ParsedQuery, columns: str = "") -> str:
        """An FTS5 expression with every word quoted, so no input is ever a syntax error.

        `columns` ("name", "name facets", …) restricts the positive words to those columns and
        leaves the excluded words out (the match itself checks them)."""

        def term(t: Term) -> str:
            last = len(t.words) - 1
            return " + ".join(
                f'"{w}"' + ("*" if t.prefix and i == last else "") for i, w in enumerate(t.words)
            )

        text = " AND ".join("(" + " OR ".join(term(t) for t in c) + ")" for c in query.clauses)
        if columns:
            return "{" + columns + "} : (" + text + ")"
        for t in query.excluded:
            text = f"({text}) NOT ({term(t)})"
        return text

    def _fts(self, query: ParsedQuery, columns: str = "") -> Any:
        """The SKUs of the products matching `query` (within `columns`, if given)."""
        return (
            sa.text(
                "SELECT m.sku AS sku"
                " FROM products_fts JOIN product_search_ids AS m ON m.id = products_fts.rowid"
                " WHERE products_fts MATCH :fts"
            )
            .bindparams(sa.bindparam("fts", self.fts_query(query, columns), unique=True))
            .columns(sa.column("sku", sa.String))
        )

    def match(self, query: ParsedQuery) -> sa.ColumnElement[bool]:
        if query.empty:
            return _exact(query)
        fts = self._fts(query).subquery()
        return sa.or_(PRODUCTS.c.sku.in_(sa.select(fts.c.sku)), _exact(query))

    def scored(self, query: ParsedQuery, where: list[sa.ColumnElement[bool]], cap: int) -> Any:
        # Every text match is scored (an embedded catalog is small), plus the exact SKU/GTIN
        # matches; filters apply before the cap. The tiers are column-filtered FTS queries.
        exact = sa.select(
            PRODUCTS.c.sku.label("sku"), sa.cast(sa.literal(EXACT_SCORE), sa.Float).label("score")
        ).where(_exact(query))
        if query.empty:
            return _best(exact.subquery("candidates"), cap, where)

        def within(columns: str) -> sa.ColumnElement[Any]:
            found = self._fts(query, columns).subquery()
            return _flag(PRODUCTS.c.sku.in_(sa.select(found.c.sku)))

        fts = self._fts(query).subquery("fts")
        score = _tier_score(
            within("name"), within("facets"), within("name facets"), within("name facets attrs")
        )
        text = sa.select(
            PRODUCTS.c.sku.label("sku"), sa.cast(score, sa.Float).label("score")
        ).select_from(PRODUCTS.join(fts, fts.c.sku == PRODUCTS.c.sku))
        union = sa.union_all(text, exact).subquery("candidates")
        return _best(union, cap, where)

    def attribute_text(self, name: str) -> sa.ColumnElement[Any]:
        return sa.func.json_extract(PRODUCTS.c.attributes, f'$."{name}"')

    def attribute_number(self, name: str) -> sa.ColumnElement[Any]:
        kind = sa.func.json_type(PRODUCTS.c.attributes, f'$."{name}"')
        return sa.case((kind.in_(["integer", "real"]), self.attribute_text(name)), else_=sa.null())

    def attribute_is(self, name: str, value: bool) -> sa.ColumnElement[bool]:
        kind = sa.func.json_type(PRODUCTS.c.attributes, f'$."{name}"')
        return kind == ("true" if value else "false")

    def lower(self, value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        # SQLite's own `lower` only knows ASCII: `am_lower` is registered on each connection by
        # app/core/db.py (queries only, never in the schema, so other tools can write the file)
        return sa.func.am_lower(value)

    async def similar_words(
        self, session: AsyncSession, words: Sequence[str]
    ) -> dict[str, list[tuple[str, float, int]]]:
        # No trigram index here: SQLite picks the words sharing at least one trigram with a typed
        # word (every word with a similarity above 0 does), Python scores them with pg_trgm's own
        # formula, so both backends suggest the same words.
        padded = "  " + WORDS.c.word + " "
        shared = {t for w in words for t in trigrams(w)}
        rows = (
            await session.execute(
                sa.select(WORDS.c.word, WORDS.c.ndoc).where(
                    sa.or_(*[sa.func.instr(padded, t) > 0 for t in sorted(shared)])
                )
            )
        ).all()
        found: dict[str, list[tuple[str, float, int]]] = {}
        for w in words:
            scored = [(word, similarity(word, w), int(ndoc)) for word, ndoc in rows]
            close = [s for s in scored if s[1] >= SIMILARITY_THRESHOLD]
            close.sort(key=lambda s: (-s[1], -s[2], s[0]))
            found[w] = close[:5]
        return found


def _flag(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
    return sa.case((condition, 1), else_=0)


def _tier_score(
    in_name: sa.ColumnElement[Any],
    in_labels: sa.ColumnElement[Any],
    in_name_labels: sa.ColumnElement[Any],
    in_fields: sa.ColumnElement[Any],
) -> sa.ColumnElement[Any]:
    """The relevance of a text match, computed the same way on every backend.

    1, plus where all the query's words occur: in the name +8; in the brand and category +4 (the
    product is of the kind asked for); in name, brand and category together +2; in those or the
    attribute values +1 (a description-only match scores 1). Within a tier a shorter name ranks
    higher (the words are more of what the product is): + 1 / (1 + its length).
    """
    tier = 1 + 8 * in_name + 4 * in_labels + 2 * in_name_labels + in_fields
    brevity = sa.literal(1.0, sa.Float) / (1 + sa.func.length(PRODUCTS.c.name))
    return sa.cast(tier, sa.Float) + brevity


def _best(candidates: Any, cap: int, where: list[sa.ColumnElement[bool]] | None = None) -> Any:
    """The `cap` best (sku, score) of `candidates` (a product's best score), filtered."""
    best = sa.func.max(candidates.c.score).label("score")
    statement = sa.select(candidates.c.sku, best)
    if where:
        statement = statement.select_from(
            candidates.join(_from(where), PRODUCTS.c.sku == candidates.c.sku)
        ).where(*where)
    return statement.group_by(candidates.c.sku).order_by(best.desc(), candidates.c.sku).limit(cap)


def backend_for(session: AsyncSession) -> TextBackend:
    dialect = session.bind.dialect.name if session.bind else "postgresql"
    return SqliteText() if dialect == "sqlite" else PostgresText()


def _from(where: list[sa.ColumnElement[bool]] | None = None) -> Any:
    """Products, joined to their stock when it is selected or filtered on (`where` None: always)."""
    if where is not None and not any(_uses_stock(w) for w in where):
        return PRODUCTS
    return PRODUCTS.outerjoin(INVENTORY, INVENTORY.c.sku == PRODUCTS.c.sku)


def _uses_stock(condition: sa.ColumnElement[bool]) -> bool:
    return any(
        getattr(column, "table", None) is INVENTORY for column in visitors.iterate(condition)
    )


def _filters(text: TextBackend, filters: Filters) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if filters.categories:
        where.append(PRODUCTS.c.category.in_(filters.categories))
    if filters.brands:
        where.append(text.lower(BRAND).in_([b.lower() for b in filters.brands]))
    if filters.price_min is not None:
        where.append(PRODUCTS.c.price_cents >= filters.price_min)
    if filters.price_max is not None:
        where.append(PRODUCTS.c.price_cents <= filters.price_max)
    if filters.in_stock is not None:
        where.append(STOCK > 0 if filters.in_stock else STOCK == 0)
    for condition in filters.attributes:
        where.append(_attribute(text, condition))
    return where


_OPS = {"gt": "__gt__", "gte": "__ge__", "lt": "__lt__", "lte": "__le__"}


def _attribute(text: TextBackend, c: AttributeCondition) -> sa.ColumnElement[bool]:
    value = c.value
    if isinstance(value, bool):
        return text.attribute_is(c.name, value)
    if isinstance(value, int | float):
        number = text.attribute_number(c.name)
        if c.op != "eq":
            return cast(sa.ColumnElement[bool], getattr(number, _OPS[c.op])(value))
        as_text = _number_text(value)
        return sa.or_(number == value, text.attribute_text(c.name) == as_text)
    return text.lower(text.attribute_text(c.name)) == value.lower()


def _number_text(value: int | float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _product_columns() -> list[Any]:
    """A page's columns. Stock is looked up per returned row (after the LIMIT), not joined: a
    join let the planner merge-join `inventory` from its first SKU (bench/RESULTS.md)."""
    stock = (
        sa.select(INVENTORY.c.quantity)
        .where(INVENTORY.c.sku == PRODUCTS.c.sku)
        .correlate(PRODUCTS)
        .scalar_subquery()
    )
    return [*PRODUCTS.c, BRAND.label("brand"), sa.func.coalesce(stock, 0).label("stock")]


def _keyset(sort: str, after: tuple[Any, ...], score: Any) -> sa.ColumnElement[bool]:
    """Rows after the cursor. Price and date orders break ties by SKU in their own direction, so
    the condition is one row comparison: an index range on (price, sku) / (created_at, sku)."""
    sku = PRODUCTS.c.sku
    if sort == "relevance":
        return sa.or_(score < after[0], sa.and_(score == after[0], sku > after[1]))
    if sort == "price_asc":
        return sa.tuple_(PRODUCTS.c.price_cents, sku) > sa.tuple_(*after)
    if sort == "price_desc":
        return sa.tuple_(PRODUCTS.c.price_cents, sku) < sa.tuple_(*after)
    if sort == "newest":
        created = sa.bindparam(None, after[0], type_=PRODUCTS.c.created_at.type)
        return sa.tuple_(PRODUCTS.c.created_at, sku) < sa.tuple_(created, after[1])
    return sku > after[0]


def _order(sort: str, score: Any) -> list[Any]:
    sku = PRODUCTS.c.sku
    return {
        "relevance": [score.desc(), sku],
        "price_asc": [PRODUCTS.c.price_cents, sku],
        "price_desc": [PRODUCTS.c.price_cents.desc(), sku.desc()],
        "newest": [PRODUCTS.c.created_at.desc(), sku.desc()],
    }.get(sort, [sku])


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


async def page(session: AsyncSession, spec: Spec) -> list[Row]:
    """Up to `spec.limit` rows in the spec's order, after `spec.after`."""
    text = backend_for(session)
    await text.prepare(session)
    where = _filters(text, spec.filters)
    if spec.sort == "relevance" and spec.query is not None:
        ranked = text.scored(spec.query, where, spec.candidates).subquery("ranked")
        score = ranked.c.score
        statement = sa.select(*_product_columns(), score).select_from(
            PRODUCTS.join(ranked, ranked.c.sku == PRODUCTS.c.sku)
        )
    else:
        score = sa.null()
        if spec.query is not None:
            where.append(text.match(spec.query))
        statement = sa.select(*_product_columns(), sa.null().label("score"))
        statement = statement.select_from(_from(where)).where(*where)
    if spec.after is not None:
        statement = statement.where(_keyset(spec.sort, spec.after, score))
    statement = statement.order_by(*_order(spec.sort, score)).limit(spec.limit)
    rows = []
    for row in (await session.execute(statement)).mappings():
        product = {c.name: row[c.name] for c in PRODUCTS.c}
        product["brand"] = row["brand"]
        attributes = product["attributes"]
        if isinstance(attributes, str):
            product["attributes"] = json.loads(attributes)
        score_value = row["score"]
        rows.append(
            Row(product, int(row["stock"]), None if score_value is None else float(score_value))
        )
    return rows


def _matching(text: TextBackend, spec: Spec, cap: int) -> Any:
    """The matching products (filters applied), at most `cap` of them."""
    where = _filters(text, spec.filters)
    if spec.query is not None:
        where.append(text.match(spec.query))
    return (
        sa.select(PRODUCTS.c.sku, PRODUCTS.c.category, BRAND.label("brand"), PRODUCTS.c.price_cents)
        .select_from(_from(where))
        .where(*where)
        .limit(cap)
    )


async def count(session: AsyncSession, spec: Spec) -> tuple[int, bool]:
    """How many products match (exact up to COUNT_CAP), and whether the count was capped."""
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
