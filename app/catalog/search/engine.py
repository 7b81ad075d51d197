"""The one interface search sits behind, and the engine that runs it in the database.

`SearchEngine` is what the search service calls; `DatabaseSearch` implements it with the
application's own database (PostgreSQL full text, or SQLite FTS5 for the embedded default), so
there is no extra server to run. A dedicated engine (Typesense, Meilisearch, OpenSearch) would be
a second implementation fed from the change feed, chosen by `SEARCH_ENGINE`; the README says at
what catalog size and latency that is worth it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.search import repository as repo
from app.catalog.search.common import Row, Spec
from app.catalog.search.language import words_of_the_language
from app.catalog.search.repository import FacetCounts
from app.catalog.search.text import ParsedQuery


class SearchEngine(Protocol):
    """Matching, ranking, counting and spelling for the catalog."""

    async def page(self, session: AsyncSession, spec: Spec) -> list[Row]:
        """Up to `spec.limit` products in the spec's order, after `spec.after`."""
        ...

    async def count(self, session: AsyncSession, spec: Spec) -> tuple[int, bool]:
        """(matches, capped): exact up to a cap, `capped` when there are more."""
        ...

    async def facets(self, session: AsyncSession, spec: Spec) -> FacetCounts:
        """Counts per category, brand and price band for the spec's matches."""
        ...

    async def categories(self, session: AsyncSession) -> list[tuple[str, int]]:
        """Every category slug with its product count."""
        ...

    async def corrections(self, session: AsyncSession, query: ParsedQuery) -> dict[str, str]:
        """Likely spellings of the query's unknown words: {typed: suggested}."""
        ...

    async def settle(self, session: AsyncSession, query: ParsedQuery) -> ParsedQuery:
        """The query as it will be matched: a last word typed whole is not a prefix."""
        ...


MAX_CORRECTED_WORDS = 6


class DatabaseSearch:
    """Search in the application database (see app/catalog/search/repository.py)."""

    async def page(self, session: AsyncSession, spec: Spec) -> list[Row]:
        return await repo.page(session, spec)

    async def count(self, session: AsyncSession, spec: Spec) -> tuple[int, bool]:
        return await repo.count(session, spec)

    async def facets(self, session: AsyncSession, spec: Spec) -> FacetCounts:
        return await repo.facets(session, spec)

    async def categories(self, session: AsyncSession) -> list[tuple[str, int]]:
        return await repo.categories(session)

    async def corrections(self, session: AsyncSession, query: ParsedQuery) -> dict[str, str]:
        # Only a word that is neither in the catalog nor a word of the language is corrected
        # ("cheap" is never "chef"), into the most similar catalog word (ties: the one more
        # products have) that starts with the same letter: a misspelling seldom changes its
        # first letter, and "frother" is not "other".
        typed = _checkable(query.all_words())
        unknown = [w for w in typed if w not in await repo.known_words(session, typed)]
        unknown = [w for w in unknown if w not in await words_of_the_language(unknown)]
        similar = await repo.similar_words(session, unknown)
        found: dict[str, str] = {}
        for word, options in similar.items():
            same_start = [o for o in options if o[0][:1] == word[:1]]
            if same_start:
                found[word] = same_start[0][0]
        return found

    async def settle(self, session: AsyncSession, query: ParsedQuery) -> ParsedQuery:
        # A prefix costs a scan of every indexed word it starts (at 1M: "headphones" as a prefix
        # read 100k postings in 65 ms, as a word 5 ms), and a word the catalog has is what the
        # agent meant: "shoe" finds shoes, not shoelaces. A partial word stays a prefix.
        last = query.prefix_word()
        if last is None or not await repo.known_words(session, [last]):
            return query
        return query.without_prefix()


def _checkable(words: Sequence[str]) -> list[str]:
    """Words worth checking: alphabetic, 3+ letters, at most MAX_CORRECTED_WORDS of them."""
    unique = dict.fromkeys(w for w in words if len(w) >= 3 and w.isalpha())
    return list(unique)[:MAX_CORRECTED_WORDS]


def engine_for(name: str) -> SearchEngine:
    """The engine named by `SEARCH_ENGINE` (only `database` so far)."""
    if name != "database":
        raise ValueError(f"unknown SEARCH_ENGINE {name!r}")
    return DatabaseSearch()
