"""All search SQL that is the same on both databases, and the choice of backend.

`backend_for` picks PostgreSQL (`app/catalog/search/postgres.py`: tsvector, GIN, pg_trgm) or
SQLite (`app/catalog/search/sqlite.py`: FTS5) by the session's dialect. The two differ only in how
a parsed query becomes a match condition and a score (`TextBackend`, app/catalog/search/common.py,
where the filters are built too); ranking, sorts, keyset pages, counts, facets, categories and the
word list are shared SQLAlchemy Core, here. Ranking is bounded on both: relevance is computed for
a capped candidate set (`Spec.candidates`), counts and facets stop at `COUNT_CAP` rows, and
PostgreSQL statements run under a statement timeout (`STATEMENT_TIMEOUT_MS`).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.search.common import (
    ATTRIBUTE_FACTS,
    BRAND,
    INVENTORY,
    PRODUCT_FIELDS,
    PRODUCTS,
    WORDS,
    Filters,
    Row,
    Spec,
    TextBackend,
    any_condition,
    filter_conditions,
    product_source,
    tier_columns,
)
from app.catalog.search.postgres import PostgresText
from app.catalog.search.sqlite import SqliteText
from app.catalog.search.text import ParsedQuery
from app.core.db import upsert_insert

GTIN = sa.literal_column("products.gtin", sa.String)
EXACT_SCORE = 1000.0  # an exact SKU or GTIN match ranks above every text match
# Counting stops here: a common word's first 1,000 matches are found by reading a few thousand
# rows in any order, where 10,000 would need its whole posting list (measured: bench/RESULTS.md).
COUNT_CAP = 1000
STOCK_CHUNKS = 3  # ordered chunks a stock-filtered listing reads before one filtered statement
PRICE_BANDS = (0, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000)  # cents
MAX_BRAND_FACETS = 20
_GTIN = re.compile(r"^(\d{8,14}|\d{9}X)$")  # GTIN-8/12/13/14, ISBN-10 (check digit X)
_RANKING = "search_ranking"


def _sku_lookup(query: ParsedQuery) -> tuple[str, str | None]:
    """The whole query as a lowercase SKU, and as a GTIN/ISBN when it is one."""
    digits = re.sub(r"[\s-]", "", query.whole).upper()
    return query.whole.lower()[:64], digits if _GTIN.match(digits) else None


def _exact(query: ParsedQuery) -> sa.ColumnElement[bool]:
    sku, gtin = _sku_lookup(query)
    condition = sa.func.lower(PRODUCTS.c.sku) == sku
    return sa.or_(condition, GTIN == gtin) if gtin else condition


def backend_for(session: AsyncSession) -> TextBackend:
    dialect = session.bind.dialect.name if session.bind else "postgresql"
    return SqliteText() if dialect == "sqlite" else PostgresText()


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
    matched: tuple[int, ...] | None = None  # relaxed: the indices of the terms it matched


@dataclass(frozen=True)
class Ranking:
    """The ranked candidates of one query and filters, best first, and how many match."""

    candidates: list[Candidate]
    total: int  # distinct matches seen, exact when not `capped`
    capped: bool


def _facts(sort: str) -> tuple[Any, ...]:
    """The columns a candidate carries. `created_at` only for the date sort: turning a SQLite
    timestamp into an aware datetime is most of the Python time of a 1,000-row ranking."""
    return tier_columns(PRODUCT_FIELDS, sort)[1:]


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
    query, where = spec.query, filter_conditions(text, spec.filters)
    # a relaxed query (any word) is read only as far as its candidates: its matches are many
    # and loosely ranked, so it is counted up to that cap too
    cap = spec.candidates if spec.boosts.coverage else max(spec.candidates, COUNT_CAP)
    limit = cap + 1
    found: dict[str, Candidate] = {}
    exact = sa.select(PRODUCTS.c.sku, *_facts(spec.sort)).select_from(product_source(where))
    for sku, *values in await session.execute(exact.where(_exact(query), *where).limit(limit)):
        found[sku] = Candidate(sku, EXACT_SCORE, *values)
    capped = False
    tiers = iter(()) if query.empty else text.tier_selects(query, spec.filters, spec.sort)
    for statement in tiers:
        wanted = limit - len(found) if text.disjoint_tiers else limit
        if wanted <= 0:
            capped = True
            break
        # PostgreSQL plans a tier by its LIMIT: below COUNT_CAP + 1 a rare word's tier was read
        # by a sequential scan (500 ms at 1M where the index takes 1 ms), so it always asks for
        # that many and keeps the first `wanted`, the same rows a smaller LIMIT returns
        asked = wanted if text.disjoint_tiers else max(wanted, COUNT_CAP + 1)
        rows = (await session.execute(statement.limit(asked))).all()[:wanted]
        for sku, base, length, price, created, category, brand in rows:
            score = float(base) + 1.0 / (1 + int(length))
            seen = found.get(sku)
            if seen is None or score > seen.score:
                found[sku] = Candidate(sku, score, price, created, category, brand)
        if len(rows) == wanted:
            capped = True  # more match than the cap: every weaker tier scores lower
            break
    if spec.boosts and found:
        found = await _boosted(session, text, spec, found)
    best = sorted(found.values(), key=lambda c: (-c.score, c.sku))[: spec.candidates]
    result = Ranking(best, min(len(found), cap), capped or len(found) > cap)
    session.info[_RANKING] = (key, result)
    return result


ATTRIBUTE_BOOST = 4.0  # per value named in words that the product has exactly
CATEGORY_BOOST = 2.0  # the product is in a category named in words
COVERAGE_SCALE = 1000.0  # relaxed: the share of the query matched outranks every text score
_ALL_DOCUMENTS = 1_000_000  # rarity: log(1 + N / (1 + products with the term))
RARE_CAP = 200  # an unlisted word is counted in the index up to this many products


async def _boosted(
    session: AsyncSession, text: TextBackend, spec: Spec, found: dict[str, Candidate]
) -> dict[str, Candidate]:
    """The candidates rescored by `spec.boosts` (the same on every backend).

    Values named in words add ATTRIBUTE_BOOST each (one statement over the candidates),
    categories CATEGORY_BOOST. Price intent replaces the name-brevity fraction of the score with
    the candidate's place in price order, so equally relevant products come cheapest (or
    dearest) first. A relaxed query ranks by coverage: the rarity-weighted share of its terms a
    product matches, then by that score; each candidate keeps the terms it matched."""
    boosts = spec.boosts
    skus = sorted(found)
    scores = {sku: c.score for sku, c in found.items()}
    if boosts.attributes:
        flags = [any_condition(text, group) for group in boosts.attributes]
        statement = sa.select(PRODUCTS.c.sku, *[sa.case((f, 1), else_=0) for f in flags]).where(
            text.one_of(PRODUCTS.c.sku, skus)
        )
        for sku, *hits in await session.execute(statement):
            if scores[sku] < EXACT_SCORE:  # an exact SKU/GTIN match is first as it is
                scores[sku] += ATTRIBUTE_BOOST * sum(int(h) for h in hits)
    if boosts.categories:
        for sku, c in found.items():
            if c.category in boosts.categories and c.score < EXACT_SCORE:
                scores[sku] += CATEGORY_BOOST
    if boosts.price:
        for sku, c in found.items():
            scores[sku] = float(int(scores[sku])) + _price_fraction(c.price_cents, boosts.price)
    matched: dict[str, tuple[int, ...]] = {}
    if boosts.coverage and spec.query is not None:
        terms = [t for clause in spec.query.clauses for t in clause]
        term_hits = await text.term_matches(session, terms, skus)
        weights = await _term_weights(session, text, terms)
        total = sum(weights) or 1.0
        for sku in skus:
            indices = tuple(sorted(term_hits.get(sku, ())))
            matched[sku] = indices
            share = sum(weights[i] for i in indices) / total
            scores[sku] += COVERAGE_SCALE * round(share, 4)
    return {
        sku: c._replace(score=round(scores[sku], 9), matched=matched.get(sku))
        for sku, c in found.items()
    }


def _price_fraction(price_cents: int, direction: int) -> float:
    """A fraction in [0, 1) that falls with the price (`direction` -1) or rises with it (1): a
    function of the price alone, so every backend and candidate set scores a product alike."""
    cheapness = 1.0 / (1.0 + math.log1p(max(price_cents, 0)))
    return 0.999 * (cheapness if direction < 0 else 1.0 - cheapness)


async def _term_weights(
    session: AsyncSession, text: TextBackend, terms: Sequence[Any]
) -> list[float]:
    """Each term's rarity, `log(1 + N / (1 + products with it))`, the same on every backend:
    the products are its rarest listed word's count in the word list, or, when no word of it is
    listed (a description word), counted in the index up to RARE_CAP (past that it is common
    enough), never taken from the candidates."""
    counts = await word_counts(session, sorted({w for t in terms for w in t.words}))
    listed = [[counts[w] for w in t.words if w in counts] for t in terms]
    unlisted = [t for t, found in zip(terms, listed, strict=True) if not found]
    counted = iter(await text.term_counts(session, unlisted, RARE_CAP) if unlisted else [])
    products = [min(found) if found else next(counted) for found in listed]
    return [math.log(1 + _ALL_DOCUMENTS / (1 + n)) for n in products]


async def word_counts(session: AsyncSession, words: Sequence[str]) -> dict[str, int]:
    """The product count of each of `words` that is in the word list."""
    if not words:
        return {}
    statement = sa.select(WORDS.c.word, WORDS.c.ndoc).where(WORDS.c.word.in_(list(words)))
    return {str(w): int(n) for w, n in await session.execute(statement)}


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
    where = filter_conditions(text, filters)
    statement = sa.select(*_product_columns()).select_from(product_source(where)).where(*where)
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
    terms = [t for clause in spec.query.clauses for t in clause] if spec.query else []
    return [
        _row(
            found[c.sku],
            c.score if relevance else None,
            None if c.matched is None else tuple(terms[i].label for i in c.matched),
        )
        for c in chosen
        if c.sku in found
    ]


def _row(row: Any, score: float | None, matched: tuple[str, ...] | None = None) -> Row:
    product = {c.name: row[c.name] for c in PRODUCTS.c}
    product["brand"] = row["brand"]
    if isinstance(product["attributes"], str):
        product["attributes"] = json.loads(product["attributes"])
    return Row(product, int(row["stock"]), score, matched)


def _matching(text: TextBackend, spec: Spec, cap: int) -> Any:
    """The products a listing without a query holds (filters applied), at most `cap` of them
    (a query's matches are counted by its ranking)."""
    where = filter_conditions(text, spec.filters)
    return (
        sa.select(PRODUCTS.c.sku, PRODUCTS.c.category, BRAND.label("brand"), PRODUCTS.c.price_cents)
        .select_from(product_source(where))
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
    await _count(session, WORDS, ("word",), {(w,): n for w, n in deltas.items()})


async def count_attribute_facts(
    session: AsyncSession, deltas: dict[tuple[str, str, str], int]
) -> None:
    """Add `deltas` to the (name, kind, value) product counts of `search_attributes`."""
    await _count(session, ATTRIBUTE_FACTS, ("name", "kind", "value"), deltas)


async def _count(
    session: AsyncSession, table: sa.TableClause, key: tuple[str, ...], deltas: dict[Any, int]
) -> None:
    """Add product counts (`ndoc`) by `key`; a row no product has any more leaves."""
    changed = {k: n for k, n in deltas.items() if n}
    if not changed:
        return
    stmt = upsert_insert(session, cast(sa.Table, table))
    stmt = stmt.on_conflict_do_update(
        index_elements=list(key), set_={"ndoc": table.c.ndoc + stmt.excluded.ndoc}
    )
    rows = [dict(zip(key, k, strict=True)) | {"ndoc": n} for k, n in sorted(changed.items())]
    await session.execute(stmt, rows)  # sorted: no deadlocks
    gone = [k for k, n in changed.items() if n < 0]
    if gone:
        keys = sa.tuple_(*[table.c[c] for c in key]) if len(key) > 1 else table.c[key[0]]
        values = gone if len(key) > 1 else [k[0] for k in gone]
        await session.execute(sa.delete(table).where(keys.in_(values), table.c.ndoc <= 0))


async def rebuild_words(session: AsyncSession, counts: dict[str, int]) -> None:
    """Replace the word list (after a bulk load that bypassed the upsert path)."""
    await session.execute(sa.delete(WORDS))
    await count_words(session, counts)


async def rebuild_attribute_facts(
    session: AsyncSession, counts: dict[tuple[str, str, str], int]
) -> None:
    """Replace the learned attribute values (after a bulk load that bypassed the upsert path)."""
    await session.execute(sa.delete(ATTRIBUTE_FACTS))
    await count_attribute_facts(session, counts)


async def attribute_facts(session: AsyncSession, limit: int) -> list[tuple[str, str, str, int]]:
    """The `limit` most common (name, kind, value, products) rows of the learned values."""
    statement = (
        sa.select(
            ATTRIBUTE_FACTS.c.name,
            ATTRIBUTE_FACTS.c.kind,
            ATTRIBUTE_FACTS.c.value,
            ATTRIBUTE_FACTS.c.ndoc,
        )
        .order_by(ATTRIBUTE_FACTS.c.ndoc.desc(), ATTRIBUTE_FACTS.c.name, ATTRIBUTE_FACTS.c.value)
        .limit(limit)
    )
    return [(str(n), str(k), str(v), int(c)) for n, k, v, c in await session.execute(statement)]


async def vocabulary_sources(session: AsyncSession) -> AsyncIterator[tuple[str, str, Any]]:
    """(name, category, attributes) of every product, streamed in batches."""
    statement = sa.select(PRODUCTS.c.name, PRODUCTS.c.category, PRODUCTS.c.attributes)
    result = await session.stream(statement.execution_options(yield_per=5000))
    async for name, category, attributes in result:
        yield name, category, attributes
