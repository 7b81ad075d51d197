"""Search understands how agents write (issue 18), through the HTTP API and the MCP tool.

Every test runs on PostgreSQL and on the embedded SQLite backend (the `shop` fixture), each with
its own few products made through the admin upsert path, so each states exactly what it expects:
prices read from words filter every result and an explicit filter wins; `cheap` / `premium`
order equally relevant products by price and are never spell-corrected; `size 10` is a
condition; a word condition that matches nothing is dropped (and stays dropped on later pages);
a relaxed match says which words each product matched; English words are not "corrected" into
catalog words; `GET /v1/products` and MCP `search_catalog` report `interpreted`; and the learned
values (`search_attributes`) follow every write and are rebuilt exactly by the CLI.

The reading itself, rule by rule, is unit-tested in test_understand.py.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from tests.catalog.search.support import Body, post, search, skus_of, sqlite_app, upsert
from tests.conftest import ROOT, database_url
from tests.mcp.conftest import mcp_client
from tests.support.factories import (
    key_headers,
    make_account,
    product,
)

Fact = tuple[str, str, str, int]


@dataclass
class Shop:
    """One app with a pro key, on one database backend."""

    name: str  # "postgres" or "sqlite"
    app: FastAPI
    client: AsyncClient
    key: str
    database_url: str

    async def facts(self) -> list[Fact]:
        """The rows of `search_attributes`, sorted."""
        sql = "SELECT name, kind, value, ndoc FROM search_attributes"
        if self.name == "sqlite":
            with sqlite3.connect(self._sqlite_file()) as db:
                rows = db.execute(sql).fetchall()
        else:
            conn = await asyncpg.connect(self.database_url)
            try:
                rows = [tuple(r) for r in await conn.fetch(sql)]
            finally:
                await conn.close()
        return sorted((str(n), str(k), str(v), int(c)) for n, k, v, c in rows)

    async def execute(self, sql: str) -> None:
        if self.name == "sqlite":
            with sqlite3.connect(self._sqlite_file()) as db:
                db.execute(sql)
        else:
            conn = await asyncpg.connect(self.database_url)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

    def _sqlite_file(self) -> str:
        return self.database_url.removeprefix("sqlite+aiosqlite:///")


@pytest.fixture
def backend() -> str:
    """The gate's Redis adapter (not parametrized here: `shop` asks for the app by name)."""
    return "redis"


@pytest.fixture
async def postgres_shop(app: FastAPI, client: AsyncClient) -> Shop:
    _, key = await make_account(client, plan="pro")
    return Shop("postgres", app, client, key, database_url())


@pytest.fixture
async def sqlite_shop(tmp_path: Path) -> AsyncIterator[Shop]:
    """An app on a fresh SQLite file (in-process Redis), with a pro key (as `sqlite_client`,
    keeping the app for the MCP test)."""
    database = tmp_path / "words.db"
    async with sqlite_app(database, "words") as (app, client, key):
        yield Shop("sqlite", app, client, key, f"sqlite+aiosqlite:///{database}")


@pytest.fixture(params=["postgres", "sqlite"])
def shop(request: pytest.FixtureRequest) -> Shop:
    """The same test on PostgreSQL and on SQLite."""
    return request.getfixturevalue(f"{request.param}_shop")  # type: ignore[no-any-return]


async def find(shop: Shop, query: str, **body: Any) -> Body:
    return await search(shop.client, shop.key, {"query": query, **body})


def codes(page: Body) -> list[str]:
    return [m["code"] for m in page["messages"]]


def boosts_of(page: Body, kind: str) -> list[Body]:
    return [b for b in page["interpreted"]["boosts"] if b["boost"] == kind]


# --- prices from words ------------------------------------------------------------------------

# Four equally relevant knives (the same name), priced out of SKU order, and a board that
# mentions knives only in an attribute (less relevant, and the cheapest of all).
KNIVES = [
    product("KN-1", name="Chef Knife", category="kitchen", price_cents=5000),
    product("KN-2", name="Chef Knife", category="kitchen", price_cents=2000),
    product("KN-3", name="Chef Knife", category="kitchen", price_cents=8000),
    product("KN-4", name="Chef Knife", category="kitchen", price_cents=4999),
]


async def test_a_price_read_from_words_filters_every_result(shop: Shop) -> None:
    await upsert(shop.client, KNIVES)
    page = await find(shop, "knife under $50")
    assert sorted(skus_of(page["products"])) == ["KN-2", "KN-4"]  # 4999 in, 5000 out
    assert all(p["price_cents"] <= 4999 for p in page["products"])
    assert page["pagination"]["total_count"] == 2
    assert page["interpreted"]["filters"][0] == {
        "filter": "price",
        "words": "under $50",
        "applied": True,
        "min": None,
        "max": 4999,
        "value": None,
        "conditions": None,
    }
    assert page["interpreted"]["text"] == "knife"
    # a range, inclusive at both ends
    ranged = await find(shop, "knife between $49.99 and $80")
    assert sorted(skus_of(ranged["products"])) == ["KN-1", "KN-3", "KN-4"]
    assert ranged["interpreted"]["filters"][0]["min"] == 4999
    assert ranged["interpreted"]["filters"][0]["max"] == 8000


async def test_an_explicit_price_filter_wins_over_the_words(shop: Shop) -> None:
    await upsert(shop.client, KNIVES)
    page = await find(shop, "knife under $50", filters={"price": {"min": 5000}})
    assert sorted(skus_of(page["products"])) == ["KN-1", "KN-3"]
    read = page["interpreted"]["filters"][0]
    assert (read["filter"], read["words"], read["applied"]) == ("price", "under $50", False)
    assert read["max"] == 4999  # what the words said, reported but not applied


# --- price intent -----------------------------------------------------------------------------


async def test_cheap_and_premium_order_equally_relevant_products_by_price(shop: Shop) -> None:
    board = product(
        "KN-9", name="Cutting Board", price_cents=100, attributes={"pairs_with": "knife"}
    )
    await upsert(shop.client, [*KNIVES, board])
    plain = await find(shop, "knife")
    assert skus_of(plain["products"]) == ["KN-1", "KN-2", "KN-3", "KN-4", "KN-9"]  # ties: SKU
    cheap = await find(shop, "cheap knife")
    # the board is cheapest but less relevant: it stays last
    assert skus_of(cheap["products"]) == ["KN-2", "KN-4", "KN-1", "KN-3", "KN-9"]
    assert boosts_of(cheap, "price") == [
        {"boost": "price", "words": "cheap", "direction": "low", "value": None, "conditions": None}
    ]
    assert cheap["interpreted"]["text"] == "knife"
    premium = await find(shop, "premium knife")
    assert skus_of(premium["products"]) == ["KN-3", "KN-1", "KN-4", "KN-2", "KN-9"]
    assert boosts_of(premium, "price")[0]["direction"] == "high"
    # alone, it orders the whole listing by price
    alone = await find(shop, "cheap")
    assert skus_of(alone["products"]) == ["KN-9", "KN-2", "KN-4", "KN-1", "KN-3"]


async def test_cheap_is_never_corrected_into_a_catalog_word(shop: Shop) -> None:
    # two products (< 3 results: unknown words would get a suggestion), and "chef" is a
    # catalog word as similar to "cheap" as a typo would be
    await upsert(shop.client, KNIVES[:2])
    page = await find(shop, "cheap chef knife")
    assert skus_of(page["products"]) == ["KN-2", "KN-1"]
    assert page["messages"] == []
    assert page["interpreted"]["corrections"] == []
    # quoted, "cheap" is a text word and is spell-checked: still not corrected
    quoted = await find(shop, '"cheap" knife')
    assert "did_you_mean" not in codes(quoted), quoted["messages"]
    assert quoted["interpreted"]["corrections"] == []
    assert quoted["interpreted"]["match"] == "relaxed"
    # ... while a misspelling that is no English word is
    typo = await find(shop, '"chepa" knife')
    assert codes(typo)[0] == "did_you_mean"
    assert typo["messages"][0]["suggestion"] == "chef knife"


# --- attribute conditions ---------------------------------------------------------------------


async def test_size_10_is_a_condition_only_size_10_products_meet(shop: Shop) -> None:
    def shoe(sku: str, size: Any, name: str = "Trail Running Shoes") -> Body:
        return product(sku, name=name, category="running-shoes", attributes={"size": size})

    await upsert(
        shop.client,
        [
            shoe("RS-1", 9),
            shoe("RS-2", 10),
            shoe("RS-3", 10.5),
            shoe("RS-4", 10, "Road Running Shoes"),
            shoe("RS-5", "10"),  # the same digits as a string
            shoe("RS-6", 11),
        ],
    )
    page = await find(shop, "running shoes size 10")
    assert sorted(skus_of(page["products"])) == ["RS-2", "RS-4", "RS-5"]
    assert page["interpreted"]["filters"] == [
        {
            "filter": "attribute",
            "words": "size 10",
            "applied": True,
            "min": None,
            "max": None,
            "value": None,
            "conditions": [{"name": "size", "op": "eq", "value": 10}],
        }
    ]
    assert page["interpreted"]["text"] == "running shoes"
    half = await find(shop, "running shoes size 10.5")
    assert skus_of(half["products"]) == ["RS-3"]
    # an explicit filter on the same attribute wins
    explicit = await find(
        shop, "running shoes size 10", filters={"attributes": [{"name": "size", "value": 11}]}
    )
    assert skus_of(explicit["products"]) == ["RS-6"]
    assert explicit["interpreted"]["filters"][0]["applied"] is False


async def test_a_word_condition_matching_nothing_is_dropped_on_every_page(shop: Shop) -> None:
    # the catalog knows `wattage` (so `65w` is read as one), but no product has 65: the two
    # chargers that say 65W in their names carry no wattage attribute
    await upsert(
        shop.client,
        [
            product("CH-1", name="USB-C Charger", category="chargers", attributes={"wattage": 30}),
            product("CH-2", name="GaN Charger", category="chargers", attributes={"wattage": 45}),
            product("CH-3", name="65W Travel Charger", category="chargers", attributes={}),
            product("CH-4", name="65W Desk Charger", category="chargers", attributes={}),
        ],
    )
    expected_filter = {
        "filter": "attribute",
        "words": "65w",
        "applied": False,
        "min": None,
        "max": None,
        "value": None,
        "conditions": [{"name": "wattage", "op": "eq", "value": 65}],
    }
    first = await find(shop, "65w charger", pagination={"limit": 1})
    assert codes(first) == ["conditions_dropped"]
    assert first["messages"][0]["type"] == "warning"
    assert first["interpreted"]["filters"] == [expected_filter]
    assert first["interpreted"]["text"] == "65w charger"  # its words searched as text
    assert first["pagination"]["total_count"] == 2
    cursor = first["pagination"]["cursor"]
    assert cursor is not None
    second = await find(shop, "65w charger", pagination={"limit": 1, "cursor": cursor})
    assert codes(second) == ["conditions_dropped"]
    assert second["interpreted"] == first["interpreted"]
    assert second["pagination"]["cursor"] is None
    assert sorted(skus_of(first["products"] + second["products"])) == ["CH-3", "CH-4"]
    # a value some product has is applied
    applied = await find(shop, "45w charger")
    assert skus_of(applied["products"]) == ["CH-2"]
    assert applied["interpreted"]["filters"][0]["applied"] is True
    assert applied["messages"] == []


async def test_a_huge_number_read_from_words_is_never_a_500(shop: Shop) -> None:
    """Review: numbers read from words were not bounded like explicit attribute filters (|value|
    <= 1e15): beyond 2**63 SQLite raised OverflowError and asyncpg `value out of int64 range`."""
    tent = product("HN-1", name="Trail Tent", attributes={"size": 10, "weight_kg": 2})
    await upsert(shop.client, [tent])
    for query in ["tent size 9223372036854775807", "tent under 9223372036854775807 kg"]:
        response = await post(shop.client, shop.key, {"query": query})
        assert response.status_code == 200, (query, response.text)
        assert response.json()["interpreted"]["text"].startswith("tent")


# --- relaxed matches --------------------------------------------------------------------------


async def test_a_relaxed_match_says_which_words_each_product_matched(shop: Shop) -> None:
    await upsert(
        shop.client,
        [
            product("VG-1", name="Velvet Granite Lamp", category="decor"),
            product("VG-2", name="Velvet Cushion", category="decor"),
            product("VG-3", name="Granite Bowl", category="decor"),
            product("VG-4", name="Teak Tray", category="decor"),
            product("VG-5", name="Velvet Throw", category="decor"),
        ],
    )
    page = await find(shop, "velvet granite teak")
    assert page["interpreted"]["match"] == "relaxed"
    assert codes(page) == ["relaxed_match"]
    matched = {p["sku"]: p["matched_words"] for p in page["products"]}
    assert matched == {
        "VG-1": ["velvet", "granite"],
        "VG-2": ["velvet"],
        "VG-3": ["granite"],
        "VG-4": ["teak"],
        "VG-5": ["velvet"],
    }
    # more words first; among one-word matches the rarer word first (teak: 1 product,
    # granite: 2, velvet: 3), then the shorter name
    assert skus_of(page["products"]) == ["VG-1", "VG-4", "VG-3", "VG-5", "VG-2"]
    # every word matched: no matched_words
    whole = await find(shop, "velvet granite")
    assert whole["interpreted"]["match"] == "all"
    assert skus_of(whole["products"]) == ["VG-1"]
    assert whole["products"][0]["matched_words"] is None


# --- spelling ---------------------------------------------------------------------------------


async def test_a_misspelling_is_corrected_but_an_english_word_is_not(shop: Shop) -> None:
    await upsert(
        shop.client,
        [
            product("SP-1", name="Studio Headphones", category="audio"),
            product("SP-2", name="Record Changer", category="audio"),  # "changer" ~ "charger"
        ],
    )
    typo = await find(shop, "hedphones")
    assert skus_of(typo["products"]) == ["SP-1"]
    assert typo["interpreted"]["corrections"] == [{"typed": "hedphones", "corrected": "headphones"}]
    assert typo["interpreted"]["match"] == "corrected"
    assert codes(typo) == ["did_you_mean", "corrected_query"]
    english = await find(shop, "charger")
    assert english["products"] == []
    assert english["messages"] == []
    assert english["interpreted"]["corrections"] == []
    assert english["interpreted"]["match"] == "all"


# --- other entry points -----------------------------------------------------------------------


async def test_the_listing_reports_how_q_was_read(shop: Shop) -> None:
    await upsert(shop.client, KNIVES)
    response = await shop.client.get(
        "/v1/products", params={"q": "cheap knife under $50"}, headers=key_headers(shop.key)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [p["sku"] for p in body["data"]] == ["KN-2", "KN-4"]  # cheapest first
    interpreted = body["interpreted"]
    assert interpreted["text"] == "knife"
    assert interpreted["filters"][0]["max"] == 4999
    assert interpreted["filters"][0]["applied"] is True
    assert [b["direction"] for b in interpreted["boosts"] if b["boost"] == "price"] == ["low"]
    # no q: nothing was read
    plain = await shop.client.get("/v1/products", headers=key_headers(shop.key))
    assert plain.json()["interpreted"] is None


async def test_the_mcp_search_tool_reports_interpreted(shop: Shop) -> None:
    await upsert(shop.client, KNIVES)
    transport = httpx2.ASGITransport(app=shop.app)
    async with mcp_client("http://localhost/mcp", key=shop.key, transport=transport) as mcp:
        result = await mcp.call_tool("search_catalog", {"query": "show me a chef knife under $50"})
    assert not result.is_error, result.content
    content = result.structured_content
    assert content is not None
    assert sorted(p["sku"] for p in content["products"]) == ["KN-2", "KN-4"]
    interpreted = content["interpreted"]
    assert interpreted["text"] == "chef knife"
    assert interpreted["ignored"] == ["show", "me", "a"]
    assert interpreted["filters"][0]["filter"] == "price"
    assert interpreted["filters"][0]["words"] == "under $50"
    assert interpreted["filters"][0]["max"] == 4999
    assert interpreted["match"] == "all"


# --- the learned values follow writes ---------------------------------------------------------


def kettle(sku: str, **attributes: Any) -> Body:
    return product(sku, name="Steel Kettle", category="kitchen", attributes=attributes)


async def test_learned_values_follow_an_upsert(shop: Shop) -> None:
    await upsert(shop.client, [kettle("KT-1", color="red")])
    assert await shop.facts() == [
        (":category", "t", "kitchen", 1),
        ("color", "t", "red", 1),
    ]
    red = await find(shop, "red kettle")
    assert boosts_of(red, "attribute") == [
        {
            "boost": "attribute",
            "words": "red",
            "direction": None,
            "value": None,
            "conditions": [{"name": "color", "op": "eq", "value": "red"}],
        }
    ]
    assert skus_of(red["products"]) == ["KT-1"]

    await upsert(shop.client, [kettle("KT-1", color="blue")])
    assert await shop.facts() == [
        (":category", "t", "kitchen", 1),
        ("color", "t", "blue", 1),
    ]
    assert boosts_of(await find(shop, "red kettle"), "attribute") == []
    blue = await find(shop, "blue kettle")
    assert [b["conditions"] for b in boosts_of(blue, "attribute")] == [
        [{"name": "color", "op": "eq", "value": "blue"}]
    ]
    assert skus_of(blue["products"]) == ["KT-1"]


async def test_rebuild_recounts_the_learned_values_exactly(shop: Shop) -> None:
    shoes = {"size": 10, "gtin": "0123456789012", "color": "blue"}  # a GTIN is never learned
    await upsert(
        shop.client,
        [
            kettle("RB-1", color="red", capacity_l=1.7, cordless=True),
            kettle("RB-2", color="Red", capacity_l=1.5, cordless=False),
            product("RB-3", name="Road Shoes", category="running-shoes", attributes=shoes),
        ],
    )
    # RB-2 changes: what it had is uncounted, what it has counted
    await upsert(shop.client, [kettle("RB-2", color="blue", capacity_l=1.7)])
    kept = await shop.facts()
    assert kept == [
        (":category", "t", "kitchen", 2),
        (":category", "t", "running-shoes", 1),
        ("capacity_l", "n", "1.7", 2),
        ("color", "t", "blue", 2),
        ("color", "t", "red", 1),
        ("cordless", "b", "true", 1),
        ("size", "n", "10", 1),
    ]
    # the table goes wrong (a bulk load that bypassed the upsert path), then is rebuilt
    await shop.execute("DELETE FROM search_attributes WHERE name = 'color'")
    await shop.execute(
        "INSERT INTO search_attributes (name, kind, value, ndoc) VALUES ('color', 't', 'green', 7)"
    )
    assert await shop.facts() != kept
    command = [sys.executable, "-m", "app.catalog.search", "rebuild-words"]
    env = {**os.environ, "DATABASE_URL": shop.database_url}
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert "search word list rebuilt" in out.decode()
    assert await shop.facts() == kept
