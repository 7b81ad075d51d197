"""SQLite search: FTS5 on `products_fts`, attributes as JSON text, trigram spelling in Python.

`SqliteText` keeps the `TextBackend` contract (app/catalog/search/common.py). Its four tiers
(name and labels, name, labels, the rest) are disjoint FTS5 MATCH expressions, so together they
read at most the ranking's limit, and each reads the facts kept beside the FTS rowids
(`product_search_ids`, migration 0008) rather than `products`. Attribute filters go through
`product_attribute_values` where it can answer. Spelling suggestions score candidate words with
pg_trgm's own formula, so both backends suggest the same words.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, cast
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.search.common import (
    INVENTORY,
    PRODUCTS,
    WORDS,
    Fields,
    Filters,
    TextBackend,
    filter_conditions,
    flag,
    number_text,
    tier_columns,
    uses,
    uses_stock,
)
from app.catalog.search.text import ParsedQuery, Term, overlap, trigrams

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
FACT_FIELDS = Fields(
    FACTS.c.sku,
    FACTS.c.category,
    FACTS.c.price_cents,
    FACTS.c.brand,
    FACTS.c.created_at,
    FACTS.c.name_length,
)
SIMILARITY_THRESHOLD = 0.3  # pg_trgm's default `%` threshold


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
        where = filter_conditions(self, filters, FACT_FIELDS)
        source = FTS.join(FACTS, FACTS.c.id == FTS.c.rowid)
        if any(uses_stock(w) for w in where):
            source = source.outerjoin(INVENTORY, INVENTORY.c.sku == FACTS.c.sku)
        if any(uses(w, PRODUCTS) for w in where):
            source = source.join(PRODUCTS, PRODUCTS.c.sku == FACTS.c.sku)

        def within(columns: tuple[str, ...]) -> sa.ColumnElement[Any]:
            found = sa.select(FTS.c.rowid).where(self._match(query, columns)).correlate(None)
            return flag(FACTS.c.id.in_(found))

        columns = tier_columns(FACT_FIELDS, sort)
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
            "eq": sa.or_(found == value, found == sa.literal(number_text(value), sa.String)),
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

    def one_of(self, column: Any, values: Sequence[str]) -> sa.ColumnElement[bool]:
        listed = sa.bindparam(None, json.dumps(list(values)), type_=sa.Text)
        each: Any = sa.select(sa.column("value")).select_from(sa.func.json_each(listed))
        return cast(sa.ColumnElement[bool], column.in_(each))

    def term_match(self, term: Term) -> tuple[Any, sa.ColumnElement[bool]]:
        return FTS, self._match(ParsedQuery(((Term(term.words, term.prefix),),)))

    async def term_matches(
        self, session: AsyncSession, terms: Sequence[Term], skus: Sequence[str]
    ) -> dict[str, set[int]]:
        found: dict[str, set[int]] = {}
        for index, term in enumerate(terms):
            match = self._match(ParsedQuery(((Term(term.words, term.prefix),),)))
            statement = sa.select(FACTS.c.sku).where(
                FACTS.c.id.in_(sa.select(FTS.c.rowid).where(match)),
                self.one_of(FACTS.c.sku, skus),
            )
            for sku in await session.scalars(statement):
                found.setdefault(str(sku), set()).add(index)
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
