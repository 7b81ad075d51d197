"""Product search: parse, filter, rank, page, count, facet, and help with spelling.

The first page decides how the query is read and the cursor remembers it, so every later page of
one search continues the same result list:

1. the query as typed (all words must match);
2. no match → the words not in the catalog's word list are corrected ("hedphones" →
   "headphones"); if the corrected query matches, its results are served with a
   `corrected_query` message, and a `did_you_mean` message carries the suggestion either way;
3. still no match and several words → any one word is enough (`relaxed_match` message).

Relevance paging stops after `RELEVANCE_CAP` results (the deep-paging cap: page by price or SKU,
or narrow with filters, to go further); counts are exact up to `COUNT_CAP` and flagged beyond.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.cursor import CursorCodec, Position, fingerprint
from app.catalog.search import repository as search_repo
from app.catalog.search.common import AttributeCondition, Filters, Row, Spec
from app.catalog.search.engine import SearchEngine
from app.catalog.search.repository import FacetCounts, sort_key
from app.catalog.search.schemas import (
    Category,
    CategoryList,
    Facets,
    FacetValue,
    Message,
    PaginationOut,
    PriceBand,
    SearchFilters,
    SearchProduct,
    SearchRequest,
    SearchResponse,
)
from app.catalog.search.text import ParsedQuery, fold, parse, product_vocabulary
from app.core.errors import AppError

RELEVANCE_CAP = 1000
FEW_RESULTS = 3  # below this many matches, unknown words get a `did_you_mean` suggestion
CORRECTED, RELAXED = 1, 2
_SLUG_SEPARATORS = re.compile(r"[^a-z0-9]+")


def category_slug(value: str) -> str:
    """A category slug from a slug or a name: `Running Shoes` → `running-shoes`."""
    return _SLUG_SEPARATORS.sub("-", fold(value)).strip("-")


def category_name(slug: str) -> str:
    """The display name of a category slug: `running-shoes` → `Running Shoes`."""
    return " ".join(part[:1].upper() + part[1:] for part in slug.split("-"))


def normalise_filters(filters: SearchFilters) -> Filters:
    price = filters.price
    return Filters(
        categories=tuple(sorted({category_slug(c) for c in filters.categories})),
        brands=tuple(sorted({b.strip() for b in filters.brands})),
        price_min=price.min if price else None,
        price_max=price.max if price else None,
        in_stock=filters.in_stock,
        attributes=tuple(
            AttributeCondition(a.name, a.op, a.value)
            for a in sorted(filters.attributes, key=lambda a: (a.name, a.op, repr(a.value)))
        ),
    )


def binding_of(query: str, filters: Filters, sort: str) -> str:
    """What a cursor is bound to: the query as typed, the normalised filters and the sort."""
    return fingerprint(query, filters, sort)


def _product(row: Row) -> SearchProduct:
    p = row.product
    return SearchProduct(
        sku=p["sku"],
        name=p["name"],
        description=p["description"],
        category=p["category"],
        brand=p["brand"],
        price_cents=p["price_cents"],
        currency=p["currency"],
        attributes=p["attributes"],
        stock=row.stock,
        in_stock=row.stock > 0,
        updated_at=p["updated_at"],
        score=row.score,
    )


def _facets(counts: FacetCounts) -> Facets:
    return Facets(
        categories=[
            FacetValue(value=slug, name=category_name(slug), count=n)
            for slug, n in counts.categories
        ],
        # a brand is stored as it is shown (`attributes.brand`): its value is its name
        brands=[FacetValue(value=brand, name=brand, count=n) for brand, n in counts.brands],
        price=[PriceBand(min=low, max=high, count=n) for low, high, n in counts.price],
        capped=counts.capped,
    )


class SearchTimeout(AppError):
    status_code = 503
    code = "search_timeout"
    default_message = "The search took too long; narrow the query or add filters, then retry."


def _timed_out(exc: DBAPIError) -> bool:
    """PostgreSQL cancelled the statement at `statement_timeout` (SQLSTATE 57014)."""
    for error in (exc.orig, getattr(exc.orig, "__cause__", None)):
        if getattr(error, "sqlstate", None) == "57014" or getattr(error, "pgcode", None) == "57014":
            return True
    return False


class Search:
    """One search request against one engine."""

    def __init__(self, engine: SearchEngine, session: AsyncSession, cursors: CursorCodec) -> None:
        self.engine = engine
        self.session = session
        self.cursors = cursors

    async def run(self, request: SearchRequest) -> SearchResponse:
        """The response to one search request (503 `search_timeout` past the time budget)."""
        try:
            return await self._run(request)
        except DBAPIError as exc:
            if _timed_out(exc):
                raise SearchTimeout(headers={"Retry-After": "1"}) from exc
            raise

    async def _run(self, request: SearchRequest) -> SearchResponse:
        text = (request.query or "").strip()
        query = parse(text) if text else None
        if query is not None and query.empty and not query.whole:
            query = None  # nothing searchable (e.g. only combining marks): a plain listing
        if query is not None:
            query = await self.engine.settle(self.session, query)
        messages: list[Message] = []
        sort = request.sort or ("relevance" if query else "sku")
        if sort == "relevance" and query is None:
            sort = "sku"
        filters = normalise_filters(request.filters)
        binding = binding_of(text, filters, sort)
        limit = request.pagination.limit
        position: Position | None = None
        if request.pagination.cursor:
            position = self.cursors.decode(request.pagination.cursor, binding, sort)
        spec = Spec(query, filters, sort, limit=limit + 1, candidates=RELEVANCE_CAP)
        if position is None:
            spec, mode, total, capped = await self._first_page(spec, messages)
        else:
            mode, total, capped = position.mode, position.total, position.capped
            spec = await self._reread(spec, mode, messages)
            spec = Spec(spec.query, filters, sort, position.key, limit + 1, RELEVANCE_CAP)
        rows = await self.engine.page(self.session, spec)
        page = rows[:limit]
        next_cursor = None
        if len(rows) > limit:
            key = tuple(sort_key(sort, page[-1]))
            next_cursor = self.cursors.encode(Position(key, mode, total, capped), binding)
        facets = None
        if request.facets:
            facets = _facets(await self.engine.facets(self.session, spec))
        return SearchResponse(
            products=[_product(r) for r in page],
            pagination=PaginationOut(
                cursor=next_cursor,
                has_next_page=next_cursor is not None,
                total_count=total,
                total_count_capped=capped,
            ),
            messages=messages,
            facets=facets,
        )

    async def _first_page(self, spec: Spec, messages: list[Message]) -> tuple[Spec, int, int, bool]:
        """Count, and when nothing matches, try the corrected and then the relaxed query."""
        total, capped = await self.engine.count(self.session, spec)
        query, mode = spec.query, 0
        if query is None or total >= FEW_RESULTS or _looks_like_code(query):
            return spec, mode, total, capped
        corrections = await self.engine.corrections(self.session, query)
        if corrections:
            corrected = query.replaced(corrections)
            messages.append(_did_you_mean(corrected))
            if total == 0:
                candidate = _with(spec, corrected)
                n, c = await self.engine.count(self.session, candidate)
                if n:
                    spec, total, capped, mode = candidate, n, c, CORRECTED
                    messages.append(_corrected(corrected))
        # still nothing: any word is enough (of the corrected query, when there is one; the cursor
        # then says both, so later pages read the query the same way)
        if total == 0 and len(query.clauses) > 1:
            current, used = (query.replaced(corrections), CORRECTED) if corrections else (query, 0)
            candidate = _with(spec, current.relaxed())
            n, c = await self.engine.count(self.session, candidate)
            if n:
                spec, total, capped, mode = candidate, n, c, used | RELAXED
                if used:
                    messages.append(_corrected(current))
                messages.append(_relaxed())
        return spec, mode, total, capped

    async def _reread(self, spec: Spec, mode: int, messages: list[Message]) -> Spec:
        """A later page: read the query as the first page did."""
        query = spec.query
        if query is None:
            return spec
        if mode & CORRECTED:
            corrections = await self.engine.corrections(self.session, query)
            query = query.replaced(corrections)
            messages.append(_corrected(query))
        if mode & RELAXED:
            query = query.relaxed()
            messages.append(_relaxed())
        return _with(spec, query)


def _looks_like_code(query: ParsedQuery) -> bool:
    """One token mixing letters and digits (a SKU, a model number): not a spelling mistake."""
    token = query.whole
    return " " not in token and any(c.isdigit() for c in token) and any(c.isalpha() for c in token)


def _with(spec: Spec, query: ParsedQuery) -> Spec:
    return Spec(query, spec.filters, spec.sort, spec.after, spec.limit, spec.candidates)


def _did_you_mean(corrected: ParsedQuery) -> Message:
    suggestion = corrected.text()
    return Message(
        type="info",
        code="did_you_mean",
        content=f"Did you mean: {suggestion}?",
        suggestion=suggestion,
    )


def _corrected(corrected: ParsedQuery) -> Message:
    return Message(
        type="warning",
        code="corrected_query",
        content=f"No products matched the query as typed; showing results for: {corrected.text()}.",
        suggestion=corrected.text(),
    )


def _relaxed() -> Message:
    return Message(
        type="warning",
        code="relaxed_match",
        content="No product matched every word; showing products that match any of them.",
    )


async def list_categories(engine: SearchEngine, session: AsyncSession) -> CategoryList:
    return CategoryList(
        data=[
            Category(slug=slug, name=category_name(slug), count=n)
            for slug, n in await engine.categories(session)
        ]
    )


def attribute_expression(text: str) -> dict[str, Any]:
    """`ram_gb>=16` / `size=10` / `wireless=true` as an AttributeFilter's fields (ValueError)."""
    match = re.fullmatch(r"([A-Za-z0-9_]{1,40})\s*(>=|<=|>|<|=|:)\s*(.{1,100})", text.strip())
    if not match:
        raise ValueError(
            "expected name=value, name>=number, name<=number, name>number, name<number"
        )
    name, op, raw = match.groups()
    value: Any = raw.strip()
    lowered = value.lower()
    if lowered in ("true", "false"):
        value = lowered == "true"
    elif re.fullmatch(r"[+-]?\d{1,16}", value):
        value = int(value)  # out-of-range values fail the filter's bounds: a 422
    elif re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", value):
        value = float(value)
    ops = {">=": "gte", "<=": "lte", ">": "gt", "<": "lt", "=": "eq", ":": "eq"}
    return {"name": name, "op": ops[op], "value": value}


async def rebuild_vocabulary(session: AsyncSession) -> int:
    """Recount the spelling word list from every product (after a bulk load that bypassed the
    upsert path, e.g. COPY); returns the number of words."""
    counts: dict[str, int] = {}
    async for name, category, attributes in search_repo.vocabulary_sources(session):
        for word in product_vocabulary(name, category, attributes):
            counts[word] = counts.get(word, 0) + 1
    await search_repo.rebuild_words(session, counts)
    return len(counts)
