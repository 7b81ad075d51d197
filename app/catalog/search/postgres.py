"""PostgreSQL search: full text on tsvector documents (GIN), attributes as jsonb, pg_trgm spelling.

`PostgresText` keeps the `TextBackend` contract (app/catalog/search/common.py): a query becomes
three tiers, every word in the name (`name_doc`), in the labels (`labels_doc`), anywhere
(`search_doc`), each one `@@` condition so the planner estimates it from the word's own frequency,
every row scored from its flags. `prepare` sets, once per transaction, the statement timeout
(`STATEMENT_TIMEOUT_MS`), `work_mem` (`SEARCH_WORK_MEM`) and scans that return rows in one order
on every page.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.search.common import (
    PRODUCT_FIELDS,
    PRODUCTS,
    Filters,
    TextBackend,
    filter_conditions,
    flag,
    product_source,
    tier_columns,
)
from app.catalog.search.text import ParsedQuery, Term

SEARCH_CONFIG = "am_search"
STATEMENT_TIMEOUT_MS = 3000
# A filtered tier ANDs two bitmaps (a common word's 112k postings with a category's price range at
# 1M products); at PostgreSQL's default 4MB they turn lossy and ~27k rows are re-checked, ~25 %
# of the statement (bench/RESULTS.md). Per search transaction, per bitmap or sort node.
SEARCH_WORK_MEM = "16MB"
_PREPARED = "search_prepared"

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
        where = filter_conditions(self, filters)
        columns = tier_columns(PRODUCT_FIELDS, sort)
        for condition, base in self._tiers(query):
            yield (
                sa.select(PRODUCTS.c.sku, base, *columns)
                .select_from(product_source(where))
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
            return flag(self.doc.op("@@")(self._tsquery(query, weights, positive=True)))

        score = 1 + 8 * flag(in_name) + 4 * flag(in_labels) + 2 * within("AB") + within("ABC")
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

    def attribute_equals_any(
        self, name: str, values: tuple[Any, ...]
    ) -> sa.ColumnElement[bool] | None:
        # one containment against an array: the row's JSON is cast to jsonb once, not once per
        # value (an OR of two containments made a filtered tier twice as slow at 1M), and the
        # GIN index still answers it
        documents = [json.dumps({name: v}) for v in values]
        array = sa.bindparam(None, documents, type_=ARRAY(sa.Text))
        return ATTRIBUTES_JSONB.op("@>")(sa.func.any(sa.cast(array, ARRAY(JSONB))))

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

    def one_of(self, column: Any, values: Sequence[str]) -> sa.ColumnElement[bool]:
        array = sa.bindparam(None, list(values), type_=ARRAY(sa.Text))
        return cast(sa.ColumnElement[bool], column == sa.func.any(array))

    def term_match(self, term: Term) -> tuple[Any, sa.ColumnElement[bool]]:
        query = ParsedQuery(((Term(term.words, term.prefix),),))
        return PRODUCTS, self.doc.op("@@")(self._tsquery(query))

    async def term_matches(
        self, session: AsyncSession, terms: Sequence[Term], skus: Sequence[str]
    ) -> dict[str, set[int]]:
        flags = [
            flag(self.doc.op("@@")(self._tsquery(ParsedQuery(((Term(term.words, term.prefix),),)))))
            for term in terms
        ]
        statement = sa.select(PRODUCTS.c.sku, *flags).where(self.one_of(PRODUCTS.c.sku, skus))
        return {
            sku: {i for i, hit in enumerate(hits) if hit}
            for sku, *hits in await session.execute(statement)
        }


def _weighted(term: Term, weight: str) -> str:
    last = len(term.words) - 1
    parts = []
    for i, w in enumerate(term.words):
        suffix = ("*" if term.prefix and i == last else "") + weight
        parts.append(f"'{w}'" + (":" + suffix if suffix else ""))
    return "(" + " <-> ".join(parts) + ")"
