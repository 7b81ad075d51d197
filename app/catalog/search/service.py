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
from dataclasses import replace
from typing import Any, Literal, cast

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.cursor import CursorCodec, Position, fingerprint
from app.catalog.search import repository as search_repo
from app.catalog.search.common import AttributeCondition, Boosts, Filters, Row, Spec
from app.catalog.search.engine import SearchEngine
from app.catalog.search.profile import catalog_profile, learned_values_changed
from app.catalog.search.repository import FacetCounts, sort_key
from app.catalog.search.schemas import (
    Category,
    CategoryList,
    Condition,
    Correction,
    Facets,
    FacetValue,
    Interpreted,
    InterpretedBoost,
    InterpretedFilter,
    Message,
    PaginationOut,
    PriceBand,
    SearchFilters,
    SearchProduct,
    SearchRequest,
    SearchResponse,
)
from app.catalog.search.text import ParsedQuery, attribute_facts, fold, parse, product_vocabulary
from app.catalog.search.understand import Reading, WordCondition, understand
from app.core.errors import AppError

RELEVANCE_CAP = 1000
RELAXED_CAP = 300  # a relaxed query (any word is enough) ranks and counts this many matches
FEW_RESULTS = 3  # below this many matches, unknown words get a `did_you_mean` suggestion
CORRECTED, RELAXED, DROPPED = 1, 2, 4
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
        matched_words=list(row.matched) if row.matched is not None else None,
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
        self._corrections: dict[str, str] = {}  # the spelling corrections the results used

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
        explicit = normalise_filters(request.filters)
        reading = understand(text, await catalog_profile(self.session)) if text else None
        # bound to the query, the filters and the sort as first read (an explicit sort equal to
        # the default is the same search); how the words were read (`mode`) is in the cursor,
        # and the sort each page uses follows from both (`_sort`)
        binding = binding_of(text, explicit, _sort(request, reading, 0))
        limit = request.pagination.limit
        position: Position | None = None
        if request.pagination.cursor:
            position = self.cursors.decode(
                request.pagination.cursor, binding, lambda mode: _sort(request, reading, mode)
            )
        mode = position.mode if position else 0
        read = _Read(reading, explicit, dropped=bool(mode & DROPPED))
        query = await self._query(read.text())
        sort = _sort(request, reading, mode)
        messages: list[Message] = []
        spec = Spec(query, read.filters(), sort, None, limit + 1, RELEVANCE_CAP, read.boosts())
        if position is None:
            spec, mode, total, capped, read = await self._first_page(request, spec, read, messages)
        else:
            total, capped = position.total, position.capped
            spec = await self._reread(spec, mode, read, messages)
            spec = replace(spec, after=position.key)
        rows = await self.engine.page(self.session, spec)
        page = rows[:limit]
        next_cursor = None
        if len(rows) > limit:
            key = tuple(sort_key(spec.sort, page[-1]))
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
            interpreted=read.interpreted(spec.query, mode, self._corrections),
        )

    async def _query(self, text: str) -> ParsedQuery | None:
        query = _parsed(text)
        if query is not None:
            query = await self.engine.settle(self.session, query)
        return query

    async def _first_page(
        self, request: SearchRequest, spec: Spec, read: _Read, messages: list[Message]
    ) -> tuple[Spec, int, int, bool, _Read]:
        """Count; when nothing matches, try in turn: the spelling corrected (conditions read
        from words kept), the conditions dropped (their words searched as text; corrected again
        if need be), then any word being enough, ranked by coverage."""
        total, capped = await self.engine.count(self.session, spec)
        mode = 0
        corrections = await self._suggest(spec.query, total)
        if total == 0 and corrections and spec.query is not None:
            candidate = replace(spec, query=spec.query.replaced(corrections))
            n, c = await self.engine.count(self.session, candidate)
            if n:
                spec, total, capped, mode = candidate, n, c, CORRECTED
        if total == 0 and read.has_conditions():
            read = _Read(read.reading, read.explicit, dropped=True)
            query = await self._query(read.text())
            sort = _sort(request, read.reading, DROPPED)
            spec = replace(spec, query=query, filters=read.filters(), sort=sort)
            total, capped = await self.engine.count(self.session, spec)
            mode = DROPPED
            messages.append(_dropped())
            corrections = await self._suggest(spec.query, total)
            if total == 0 and corrections and spec.query is not None:
                candidate = replace(spec, query=spec.query.replaced(corrections))
                n, c = await self.engine.count(self.session, candidate)
                if n:
                    spec, total, capped, mode = candidate, n, c, DROPPED | CORRECTED
        query = spec.query
        # still nothing: any word is enough (of the corrected query, when there is one; the cursor
        # then says both, so later pages read the query the same way), ranked by coverage
        if total == 0 and query is not None and len(query.clauses) > 1:
            current, used = (query.replaced(corrections), CORRECTED) if corrections else (query, 0)
            candidate = _relaxed_spec(spec, current)
            n, c = await self.engine.count(self.session, candidate)
            if n:
                spec, total, capped, mode = candidate, n, c, mode | used | RELAXED
        if corrections:
            shown = query.replaced(corrections) if query is not None else None
            if shown is not None:
                messages.append(_did_you_mean(shown))
                if mode & CORRECTED:
                    self._corrections = corrections
                    messages.append(_corrected(shown))
        if mode & RELAXED:
            messages.append(_relaxed())
        return spec, mode, total, capped, read

    async def _suggest(self, query: ParsedQuery | None, total: int) -> dict[str, str]:
        """Spelling corrections for a query with few results (none for a SKU-like token)."""
        if query is None or total >= FEW_RESULTS or _looks_like_code(query):
            return {}
        return await self.engine.corrections(self.session, query)

    async def _reread(self, spec: Spec, mode: int, read: _Read, messages: list[Message]) -> Spec:
        """A later page: read the query as the first page did."""
        if mode & DROPPED:
            messages.append(_dropped())
        query = spec.query
        if query is None:
            return spec
        if mode & CORRECTED:
            corrections = await self.engine.corrections(self.session, query)
            self._corrections = corrections
            query = query.replaced(corrections)
            messages.append(_corrected(query))
        if mode & RELAXED:
            messages.append(_relaxed())
            return _relaxed_spec(spec, query)
        return replace(spec, query=query)


class _Read:
    """A query's reading (app/catalog/search/understand.py) applied to a request's filters: an
    explicit filter always wins over one read from words."""

    def __init__(self, reading: Reading | None, explicit: Filters, *, dropped: bool) -> None:
        self.reading = reading
        self.explicit = explicit
        self.dropped = dropped  # the attribute conditions read from words are not applied

    def text(self) -> str:
        if self.reading is None:
            return ""
        return self.reading.fallback_text if self.dropped else self.reading.text

    def _price_applies(self) -> bool:
        return self.explicit.price_min is None and self.explicit.price_max is None

    def _condition_applies(self, condition: WordCondition) -> bool:
        named = {c.name for c in self.explicit.attributes}
        return not self.dropped and not any(c.name in named for c in condition.conditions)

    def has_conditions(self) -> bool:
        r = self.reading
        return r is not None and any(self._condition_applies(c) for c in r.attributes)

    def filters(self) -> Filters:
        r, f = self.reading, self.explicit
        if r is None:
            return f
        if self._price_applies():
            f = replace(f, price_min=r.price_min, price_max=r.price_max)
        if f.in_stock is None and r.in_stock is not None:
            f = replace(f, in_stock=r.in_stock)
        groups = tuple(c.conditions for c in r.attributes if self._condition_applies(c))
        return replace(f, any_of=groups) if groups else f

    def boosts(self) -> Boosts:
        r = self.reading
        if r is None:
            return Boosts()
        return Boosts(
            attributes=tuple(b.conditions for b in r.boosts),
            categories=tuple(slug for slug, _ in r.categories),
            price=r.intent,
        )

    def interpreted(
        self, query: ParsedQuery | None, mode: int, corrections: dict[str, str]
    ) -> Interpreted | None:
        r = self.reading
        if r is None:
            return None
        filters: list[InterpretedFilter] = []
        if r.price_source:
            filters.append(
                InterpretedFilter(
                    filter="price",
                    words=r.price_source,
                    applied=self._price_applies(),
                    min=r.price_min,
                    max=r.price_max,
                )
            )
        if r.in_stock is not None:
            applied = self.explicit.in_stock is None
            filters.append(
                InterpretedFilter(
                    filter="in_stock", words=r.in_stock_source, applied=applied, value=True
                )
            )
        for condition in r.attributes:
            filters.append(
                InterpretedFilter(
                    filter="attribute",
                    words=condition.source,
                    applied=self._condition_applies(condition),
                    conditions=_conditions(condition),
                )
            )
        boosts: list[InterpretedBoost] = []
        if r.intent:
            direction: Literal["low", "high"] = "low" if r.intent < 0 else "high"
            boosts.append(
                InterpretedBoost(boost="price", words=r.intent_source, direction=direction)
            )
        for slug, words in r.categories:
            boosts.append(InterpretedBoost(boost="category", words=words, value=slug))
        for boost in r.boosts:
            boosts.append(
                InterpretedBoost(
                    boost="attribute", words=boost.source, conditions=_conditions(boost)
                )
            )
        made = corrections if mode & CORRECTED else {}
        return Interpreted(
            text=query.text() if query is not None else "",
            filters=filters,
            boosts=boosts,
            ignored=list(r.ignored),
            corrections=[Correction(typed=t, corrected=c) for t, c in sorted(made.items())],
            match="relaxed" if mode & RELAXED else "corrected" if mode & CORRECTED else "all",
        )


def _conditions(condition: WordCondition) -> list[Condition]:
    return [Condition(name=c.name, op=cast(Any, c.op), value=c.value) for c in condition.conditions]


def _relaxed_spec(spec: Spec, query: ParsedQuery) -> Spec:
    """Any word of `query` is enough; ranked by coverage among RELAXED_CAP candidates."""
    boosts = replace(spec.boosts, coverage=True)
    return replace(spec, query=query.relaxed(), boosts=boosts, candidates=RELAXED_CAP)


def _parsed(text: str) -> ParsedQuery | None:
    query = parse(text) if text else None
    if query is not None and query.empty and not query.whole:
        return None  # nothing searchable (e.g. only combining marks): a plain listing
    return query


def _sort(request: SearchRequest, reading: Reading | None, mode: int) -> str:
    """The sort of a search whose words were read with `mode`: the request's, else relevance
    when there is text to rank by, else the listing's."""
    if request.sort:
        return request.sort
    if reading is None:
        return "sku"
    text = reading.fallback_text if mode & DROPPED else reading.text
    return "relevance" if _parsed(text) is not None else _listing_sort(reading)


def _listing_sort(reading: Reading | None) -> str:
    """Without text to rank by, price intent orders the listing (`cheap` alone: cheapest first)."""
    if reading is not None and reading.intent:
        return "price_asc" if reading.intent < 0 else "price_desc"
    return "sku"


def _dropped() -> Message:
    return Message(
        type="warning",
        code="conditions_dropped",
        content="No product matched the conditions read from the query's words; they were "
        "searched as words instead (see interpreted.filters).",
    )


def _looks_like_code(query: ParsedQuery) -> bool:
    """One token mixing letters and digits (a SKU, a model number): not a spelling mistake."""
    token = query.whole
    return " " not in token and any(c.isdigit() for c in token) and any(c.isalpha() for c in token)


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
    """Recount the spelling word list and the learned attribute values from every product (after
    a bulk load that bypassed the upsert path, e.g. COPY); returns the number of words."""
    counts: dict[str, int] = {}
    facts: dict[tuple[str, str, str], int] = {}
    async for name, category, attributes in search_repo.vocabulary_sources(session):
        for word in product_vocabulary(name, category, attributes):
            counts[word] = counts.get(word, 0) + 1
        for fact in attribute_facts(category, attributes):
            facts[fact] = facts.get(fact, 0) + 1
    await search_repo.rebuild_words(session, counts)
    await search_repo.rebuild_attribute_facts(session, facts)
    learned_values_changed()
    return len(counts)
