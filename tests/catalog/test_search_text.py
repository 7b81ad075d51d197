"""Query parsing and the spelling similarity: never an error, the same on both backends."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from httpx import AsyncClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.search.postgres import SEARCH_WORK_MEM, PostgresText
from app.catalog.search.service import rebuild_vocabulary
from app.catalog.search.sqlite import SqliteText
from app.catalog.search.text import Term, fold, parse, similarity, words
from tests.conftest import database_url
from tests.support.factories import key_headers, make_account, make_products


def test_words_fold_accents_case_and_drop_stop_words() -> None:
    assert words("The Crème Brûlée of SÃO Paulo") == ["creme", "brulee", "sao", "paulo"]
    # kept as SQLite's FTS5 indexes them (PostgreSQL's unaccent folds both sides anyway)
    assert words("Weißbier ﬁlter ½") == ["weißbier", "ﬁlter", "½"]


def test_parse_web_search_syntax() -> None:
    query = parse('wireless "noise cancelling" headphones or earbuds -wired -"ear cushion" headph')
    assert query.clauses == (
        (Term(("wireless",)),),
        (Term(("noise", "cancelling")),),
        (Term(("headphones",)), Term(("earbuds",))),
        (Term(("headph",), prefix=True),),
    )
    assert query.excluded == (Term(("wired",)), Term(("ear", "cushion")))


def test_a_hyphenated_token_is_a_phrase_and_the_last_word_a_prefix() -> None:
    assert parse("sony wh-1000xm5").clauses == (
        (Term(("sony",)),),
        (Term(("wh", "1000xm5"), prefix=True),),
    )
    assert parse('"laptop"').clauses == ((Term(("laptop",)),),)  # quoted: a whole word


@pytest.mark.parametrize(
    "text", ['"', "(((", "AND OR NOT", "-", "*", "C++", "'; DROP TABLE x; --", "or or", '-""']
)
def test_odd_input_parses_to_plain_words(text: str) -> None:
    query = parse(text)
    for clause in query.clauses:
        for term in clause:
            assert all(w.isalnum() for w in term.words)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.text(max_size=200))
def test_any_text_becomes_quoted_alphanumeric_queries(text: str) -> None:
    query = parse(text)
    assert len(query.all_words()) <= 16
    for clause in query.clauses:
        for term in clause:
            assert term.words and all(w.isalnum() and w == fold(w) for w in term.words)
    # both query languages get only quoted alphanumeric words: nothing to escape, no syntax
    PostgresText.tsquery_text(query)
    fts = SqliteText.fts_query(query) if not query.empty else ""
    assert fts.count('"') % 2 == 0


PAIRS = [
    ("hedphones", "headphones"),
    ("laptpo", "laptop"),
    ("lapto", "laptop"),
    ("keybord", "keyboard"),
    ("espreso", "espresso"),
    ("shoes", "shoe"),
    ("abc", "xyz"),
    ("a", "ab"),
]


async def test_similarity_is_pg_trgm_similarity(migrated_database: Any) -> None:
    """SQLite ranks suggestions in Python; it must agree with PostgreSQL's pg_trgm."""
    connection = await asyncpg.connect(database_url().replace("postgresql+asyncpg", "postgresql"))
    try:
        for a, b in PAIRS:
            expected = await connection.fetchval("SELECT similarity($1, $2)", a, b)
            assert similarity(a, b) == pytest.approx(expected, abs=1e-6), (a, b)
    finally:
        await connection.close()


async def test_a_statement_timeout_is_a_503_not_a_500(
    app: FastAPI, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A search PostgreSQL cancels at its statement timeout answers 503 `search_timeout`."""
    _, key = await make_account(client)
    await make_products(client, 3)

    async def slow(self: Any, session: AsyncSession) -> None:
        await session.execute(sa.text("SET LOCAL statement_timeout = 20"))
        await session.execute(sa.text("SELECT pg_sleep(1)"))

    monkeypatch.setattr(PostgresText, "prepare", slow)
    response = await client.post(
        "/v1/products/search", json={"query": "product"}, headers=key_headers(key)
    )
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "search_timeout"
    assert response.headers["Retry-After"] == "1"
    monkeypatch.undo()
    ok = await client.post("/v1/products/search", json={"query": "x"}, headers=key_headers(key))
    assert ok.status_code == 200


async def test_rebuilding_the_word_list_recounts_every_product(
    app: FastAPI, client: AsyncClient
) -> None:
    """After a load that bypassed the upsert path, the word list is rebuilt from the products."""
    await make_products(client, 4)
    db = app.state.services.db
    async with db.unit() as session:
        before = dict((await session.execute(sa.text("SELECT word, ndoc FROM search_words"))).all())
        await session.execute(sa.text("DELETE FROM search_words"))
        assert await rebuild_vocabulary(session) == len(before)
    async with db.unit() as session:
        after = dict((await session.execute(sa.text("SELECT word, ndoc FROM search_words"))).all())
    assert after == before and after  # the upsert path counted exactly what a rebuild counts


async def test_search_settings_last_for_its_transaction_only(app: FastAPI) -> None:
    """A search's timeout and bitmap memory (exact bitmaps at 1M products) are set for its own
    transaction; the pooled connection goes back with the server's defaults."""
    db = app.state.services.db
    show = sa.text("SELECT current_setting('work_mem'), current_setting('statement_timeout')")
    async with db.unit() as session:
        defaults = (await session.execute(show)).one()
    async with db.unit() as session:
        await PostgresText().prepare(session)
        assert tuple((await session.execute(show)).one()) == (SEARCH_WORK_MEM, "3s")
    async with db.unit() as session:
        assert (await session.execute(show)).one() == defaults
    assert defaults[0] != SEARCH_WORK_MEM
