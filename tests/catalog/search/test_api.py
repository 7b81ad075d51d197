"""The HTTP contract of product search (issue 8), and every hostile input answered with a 4xx.

`POST /v1/products/search`, `GET /v1/products?q=…` and `GET /v1/categories` through the app on
PostgreSQL (the `client` fixture), each test with its own small, purpose-built products, so each
states exactly what it expects: the response shape, metering, validation, cursors bound to their
search, filters never violated, facet counts, exact SKU/GTIN matches, spelling help and the word
list. The same key cases run on the embedded SQLite backend at the end.

Ranking quality is judged elsewhere (tests/catalog/test_search_relevance.py); here only the
contract is: what is returned, in which order for the deterministic sorts, and that odd input is
never a 500.
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient, Response

from tests.catalog.search.support import (
    SEARCH,
    Body,
    post,
    search,
    skus_of,
    upsert,
)
from tests.support.factories import (
    key_headers,
    make_account,
    product,
    set_plan,
)

Product = dict[str, Any]


@pytest.fixture
async def key(client: AsyncClient) -> str:
    _, api_key = await make_account(client, plan="pro")
    return api_key


# --- helpers -------------------------------------------------------------------------------------


async def listing(client: AsyncClient, key: str, params: Any) -> Body:
    response = await client.get("/v1/products", params=params, headers=key_headers(key))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def walk(client: AsyncClient, key: str, body: Body, limit: int = 3) -> list[Product]:
    """Every product of a search, page by page; checks the pagination block on every page."""
    seen: list[Product] = []
    cursor: str | None = None
    total: int | None = None
    for _ in range(200):
        pagination: Body = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        page = await search(client, key, body | {"pagination": pagination})
        assert len(page["products"]) <= limit
        info = page["pagination"]
        if total is None:
            total = info["total_count"]
        assert info["total_count"] == total  # the first page's count, on every page
        assert info["has_next_page"] is (info["cursor"] is not None)
        seen += page["products"]
        cursor = info["cursor"]
        if cursor is None:
            break
        assert len(page["products"]) == limit  # only the last page may be short
    assert total == len(seen), (total, skus_of(seen))
    return seen


async def walk_get(
    client: AsyncClient, key: str, params: Body | list[tuple[str, Any]], limit: int = 3
) -> list[Product]:
    """Every product of a listing, page by page (`params` may repeat a name as pairs)."""
    pairs = list(params.items()) if isinstance(params, dict) else list(params)
    seen: list[Product] = []
    cursor: str | None = None
    for _ in range(200):
        extra = [("limit", limit)] + ([("cursor", cursor)] if cursor else [])
        page = await listing(client, key, [*pairs, *extra])
        seen += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the walk never ended")


def assert_error(response: Response, status: int, error: str | None = None) -> Body:
    """A SPEC error body: `{"error": snake_case, "message": sentence, ...}`, never a 500."""
    assert response.status_code == status, (response.status_code, response.text)
    body = dict(response.json())
    assert isinstance(body.get("error"), str) and body["error"]
    assert isinstance(body.get("message"), str) and body["message"]
    assert "detail" not in body
    if error is not None:
        assert body["error"] == error, body
    return body


async def used(client: AsyncClient, key: str) -> Body:
    return dict((await client.get("/v1/usage", headers=key_headers(key))).json())


# --- response shape, metering, gate --------------------------------------------------------------

PRODUCT_FIELDS = {
    "sku",
    "name",
    "description",
    "category",
    "brand",
    "price_cents",
    "currency",
    "attributes",
    "stock",
    "in_stock",
    "updated_at",
    "score",
}


async def test_search_response_shape_and_metering(client: AsyncClient, key: str) -> None:
    await upsert(
        client,
        [
            product(
                "KET-1",
                name="Copper Kettle",
                category="kitchen",
                price_cents=4500,
                attributes={"brand": "Hearth", "litres": 1.7},
                stock=4,
            ),
            product("KET-2", name="Steel Kettle", category="kitchen", attributes={}, stock=0),
            product("MUG-1", name="Stoneware Mug", category="kitchen"),
        ],
    )
    response = await post(client, key, {"query": "kettle"})
    assert response.status_code == 200, response.text
    for header in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert header in response.headers, header
    assert response.headers["X-RateLimit-Limit"] == "120"  # pro: 120 a minute
    body = response.json()
    assert set(body) == {"products", "pagination", "messages", "facets", "interpreted"}
    assert body["facets"] is None  # only when asked
    assert body["interpreted"]["text"] == "kettle"
    assert body["interpreted"]["match"] == "all"
    assert body["messages"] == []
    assert body["pagination"] == {
        "cursor": None,
        "has_next_page": False,
        "total_count": 2,
        "total_count_capped": False,
    }
    assert sorted(skus_of(body["products"])) == ["KET-1", "KET-2"]
    by_sku = {p["sku"]: p for p in body["products"]}
    for item in body["products"]:
        assert set(item) == PRODUCT_FIELDS | {"matched_words"}
        assert item["matched_words"] is None  # every word matched
        assert isinstance(item["score"], float) and math.isfinite(item["score"])
        assert item["score"] > 0
    copper = by_sku["KET-1"]
    assert copper["brand"] == "Hearth" and copper["attributes"] == {
        "brand": "Hearth",
        "litres": 1.7,
    }
    assert copper["price_cents"] == 4500 and copper["currency"] == "usd"
    assert copper["stock"] == 4 and copper["in_stock"] is True
    assert by_sku["KET-2"]["brand"] is None and by_sku["KET-2"]["in_stock"] is False

    # without a query: SKU order, no scores
    everything = await search(client, key, {})
    assert skus_of(everything["products"]) == ["KET-1", "KET-2", "MUG-1"]
    assert all(p["score"] is None for p in everything["products"])

    # metered as its own endpoint, beside the listing
    await listing(client, key, {"q": "kettle"})
    usage = await used(client, key)
    assert usage["used"] == 3
    assert usage["by_endpoint"] == {"products.search": 2, "products.list": 1}


async def test_search_needs_a_key_and_catalog_read(client: AsyncClient) -> None:
    assert_error(await client.post(SEARCH, json={"query": "x"}), 401, "missing_api_key")
    assert_error(
        await client.post(SEARCH, json={"query": "x"}, headers={"X-API-Key": "am_live_nope"}),
        401,
    )
    assert_error(await client.get("/v1/categories"), 401, "missing_api_key")
    _, key = await make_account(client)  # free: catalog.read included
    assert (await post(client, key, {"query": "x"})).status_code == 200
    await set_plan(client, "free", features=[])
    body = assert_error(await post(client, key, {"query": "x"}), 403, "feature_not_in_plan")
    assert "upgrade_url" in body
    forbidden = await client.get("/v1/categories", headers=key_headers(key))
    assert_error(forbidden, 403, "feature_not_in_plan")
    assert (await used(client, key))["by_endpoint"] == {"products.search": 1}


# --- bad input: a 4xx with the SPEC body, never a 500, never billed ------------------------------

BAD_BODIES: list[tuple[str, Any, str]] = [
    # (case, body, the field the error names; "" = don't check)
    ("unknown top-level field", {"query": "x", "q": "x"}, "q"),
    ("unknown filter", {"filters": {"colour": "red"}}, "filters.colour"),
    ("unknown pagination field", {"pagination": {"page": 2}}, "pagination.page"),
    ("unknown price field", {"filters": {"price": {"from": 1}}}, "filters.price.from"),
    ("unknown attribute field", {"filters": {"attributes": [{"name": "a", "v": 1}]}}, ""),
    ("query too long", {"query": "x" * 201}, "query"),
    ("NUL in query", {"query": "a\x00b"}, "query"),
    ("lone surrogate in query", {"query": "a\ud800b"}, "query"),
    ("NUL in a brand", {"filters": {"brands": ["a\x00"]}}, ""),
    ("query not a string", {"query": 42}, "query"),
    ("query a list", {"query": ["kettle"]}, "query"),
    ("too many categories", {"filters": {"categories": [f"c{i}" for i in range(21)]}}, ""),
    ("too many brands", {"filters": {"brands": [f"b{i}" for i in range(21)]}}, ""),
    ("empty category", {"filters": {"categories": [""]}}, ""),
    ("category too long", {"filters": {"categories": ["c" * 101]}}, ""),
    ("categories not a list", {"filters": {"categories": "books"}}, ""),
    (
        "too many attribute filters",
        {"filters": {"attributes": [{"name": f"a{i}", "value": i} for i in range(11)]}},
        "",
    ),
    ("attribute name with a space", {"filters": {"attributes": [{"name": "a b", "value": 1}]}}, ""),
    ("attribute name with a dot", {"filters": {"attributes": [{"name": "a.b", "value": 1}]}}, ""),
    ("attribute name with a quote", {"filters": {"attributes": [{"name": 'a"', "value": 1}]}}, ""),
    ("attribute name empty", {"filters": {"attributes": [{"name": "", "value": 1}]}}, ""),
    ("attribute name too long", {"filters": {"attributes": [{"name": "a" * 41, "value": 1}]}}, ""),
    ("attribute name unicode", {"filters": {"attributes": [{"name": "größe", "value": 1}]}}, ""),
    ("attribute without value", {"filters": {"attributes": [{"name": "size"}]}}, ""),
    (
        "gte with a string",
        {"filters": {"attributes": [{"name": "ram_gb", "op": "gte", "value": "16"}]}},
        "",
    ),
    (
        "lt with a boolean",
        {"filters": {"attributes": [{"name": "ram_gb", "op": "lt", "value": True}]}},
        "",
    ),
    ("unknown op", {"filters": {"attributes": [{"name": "a", "op": "ne", "value": 1}]}}, ""),
    ("value a list", {"filters": {"attributes": [{"name": "a", "value": [1]}]}}, ""),
    ("value an object", {"filters": {"attributes": [{"name": "a", "value": {"x": 1}}]}}, ""),
    ("value too long", {"filters": {"attributes": [{"name": "a", "value": "v" * 101}]}}, ""),
    ("price min above max", {"filters": {"price": {"min": 500, "max": 100}}}, "filters.price"),
    ("negative price", {"filters": {"price": {"min": -1}}}, "filters.price.min"),
    ("negative max price", {"filters": {"price": {"max": -5}}}, "filters.price.max"),
    ("price beyond range", {"filters": {"price": {"max": 10**12}}}, "filters.price.max"),
    ("price as text", {"filters": {"price": {"min": "cheap"}}}, "filters.price.min"),
    ("fractional price", {"filters": {"price": {"min": 10.5}}}, "filters.price.min"),
    ("in_stock not a boolean", {"filters": {"in_stock": "maybe"}}, "filters.in_stock"),
    ("limit 0", {"pagination": {"limit": 0}}, "pagination.limit"),
    ("limit 101", {"pagination": {"limit": 101}}, "pagination.limit"),
    ("limit negative", {"pagination": {"limit": -1}}, "pagination.limit"),
    ("limit as text", {"pagination": {"limit": "ten"}}, "pagination.limit"),
    ("empty cursor", {"pagination": {"cursor": ""}}, "pagination.cursor"),
    ("cursor a number", {"pagination": {"cursor": 5}}, "pagination.cursor"),
    ("unknown sort", {"sort": "cheapest"}, "sort"),
    ("sort wrong case", {"sort": "PRICE_ASC"}, "sort"),
    ("facets not a boolean", {"facets": "maybe"}, "facets"),
    ("filters a list", {"filters": []}, "filters"),
    ("body a list", [], ""),
    ("body a string", "kettle", ""),
    ("body null", None, ""),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
async def test_bad_search_bodies_are_422(
    client: AsyncClient, key: str, case: str, body: Any, field: str
) -> None:
    response = await post(client, key, body)
    error = assert_error(response, 422, "validation_error")
    assert error["fields"], error
    if field:
        assert error["fields"][0]["field"] == field, error
    assert (await used(client, key))["used"] == 0  # a rejected search is never billed


async def test_unreadable_search_bodies(client: AsyncClient, key: str) -> None:
    headers = key_headers(key) | {"Content-Type": "application/json"}
    for content in [b"{not json", b'{"query": "\xff"}', b"", b"[" * 5000 + b"]" * 5000]:
        response = await client.post(SEARCH, content=content, headers=headers)
        assert 400 <= response.status_code < 500, (content[:20], response.text)
        assert_error(response, response.status_code)
    response = await client.post(SEARCH, content=b"x" * 200_000, headers=headers)
    assert_error(response, 413, "payload_too_large")
    assert (await used(client, key))["used"] == 0


async def test_nan_and_huge_attribute_values_are_never_500(client: AsyncClient, key: str) -> None:
    await upsert(client, [product("NUM-1", name="Numbered", attributes={"ram_gb": 16})])
    headers = key_headers(key) | {"Content-Type": "application/json"}
    nan = b'{"filters": {"attributes": [{"name": "ram_gb", "value": NaN}]}}'
    assert_error(await client.post(SEARCH, content=nan, headers=headers), 422)
    failed: list[tuple[str, str, int]] = []
    values = ["Infinity", "-Infinity", "1e308", "9223372036854775807", "9223372036854775808"]
    values += ["-9223372036854775809", "100000000000000000000000000000", "1e-320"]
    for raw in values:
        for op in ("eq", "gte", "lt"):
            attribute = '{"name": "ram_gb", "op": "' + op + '", "value": ' + raw + "}"
            content = '{"filters": {"attributes": [' + attribute + "]}}"
            response = await client.post(SEARCH, content=content, headers=headers)
            if response.status_code >= 500:
                failed.append((raw, op, response.status_code))
    for expression in [
        "ram_gb=99999999999999999999999",
        "ram_gb>=9223372036854775808",
        "ram_gb>=1e400",
        "ram_gb<-1e300",
        "ram_gb=nan",
        "ram_gb=inf",
    ]:
        response = await client.get(
            "/v1/products", params={"attr": expression}, headers=key_headers(key)
        )
        if response.status_code >= 500:
            failed.append((expression, "GET", response.status_code))
    assert failed == [], "\n".join(map(str, failed))


BAD_PARAMS: list[tuple[str, Any, str]] = [
    ("q too long", {"q": "x" * 201}, "q"),
    ("q empty", {"q": ""}, "q"),
    ("NUL in q", {"q": "a\x00b"}, "q"),
    ("too many categories", [("category", f"c{i}") for i in range(21)], "category"),
    ("too many brands", [("brand", f"b{i}") for i in range(21)], "brand"),
    ("too many attr", [("attr", f"a{i}=1") for i in range(11)], "attr"),
    ("attr bad name", {"attr": "a.b=1"}, "attr"),
    ("attr no operator", {"attr": "ram_gb"}, "attr"),
    ("attr gte a string", {"attr": "ram_gb>=lots"}, "attr"),
    ("attr gt a boolean", {"attr": "wireless>true"}, "attr"),
    ("attr value too long", {"attr": "a=" + "v" * 101}, "attr"),
    ("price min above max", {"price_min": 500, "price_max": 100}, ""),
    ("negative price", {"price_min": -1}, "price_min"),
    ("price as text", {"price_max": "lots"}, "price_max"),
    ("limit 0", {"limit": 0}, "limit"),
    ("limit 101", {"limit": 101}, "limit"),
    ("unknown sort", {"sort": "cheapest"}, "sort"),
    ("in_stock not a boolean", {"in_stock": "maybe"}, "in_stock"),
    ("empty cursor", {"cursor": ""}, "cursor"),
]


@pytest.mark.parametrize(("case", "params", "field"), BAD_PARAMS, ids=[c[0] for c in BAD_PARAMS])
async def test_bad_listing_parameters_are_422(
    client: AsyncClient, key: str, case: str, params: Any, field: str
) -> None:
    response = await client.get("/v1/products", params=params, headers=key_headers(key))
    error = assert_error(response, 422, "validation_error")
    if field:
        assert error["fields"][0]["field"] == field, error
    assert (await used(client, key))["used"] == 0


# --- odd queries: 200 with sane results ----------------------------------------------------------

ODD_CATALOG = [
    product("ODD-XM5", name="Sonora WH-1000XM5 Wireless Headphones", category="headphones"),
    product("ODD-CPP", name="The C++ Programming Language", category="books"),
    product("ODD-HEB", name="מחברת שלום notebook", category="stationery"),
    product("ODD-CAF", name="Crème Brûlée Torch", category="kitchen"),
    product("ODD-PCT", name="Discount Voucher", description="Save 100% on shipping"),
]

# (query, SKUs that must be in the results, SKUs that must not; None = no expectation on membership)
ODD_QUERIES: list[tuple[str, set[str], set[str] | None]] = [
    ('"', set(), None),
    ('""', set(), None),
    ('"unterminated phrase', set(), None),
    ("(((", set(), None),
    (")))", set(), None),
    ("AND OR NOT", set(), None),
    ("or", set(), None),
    ("kettle or", set(), None),
    ("or kettle", set(), None),
    ("-", set(), None),
    ("--", set(), None),
    ("-headphones", set(), None),
    ("*", set(), None),
    ("headph*", {"ODD-XM5"}, None),
    ("!", set(), None),
    ("&|!<->:*", set(), None),
    ("headphones:*", {"ODD-XM5"}, None),
    ("'", set(), None),
    ("\\", set(), None),
    ("$1", set(), None),
    ("?", set(), None),
    ("%", set(), None),
    ("_", set(), {"ODD-XM5", "ODD-CPP", "ODD-HEB", "ODD-CAF", "ODD-PCT"}),
    ("wh-1000xm5", {"ODD-XM5"}, {"ODD-CPP", "ODD-HEB", "ODD-CAF", "ODD-PCT"}),
    ("WH-1000XM5", {"ODD-XM5"}, {"ODD-CPP", "ODD-HEB", "ODD-CAF", "ODD-PCT"}),
    ("C++", {"ODD-CPP"}, None),
    ("c++ programming", {"ODD-CPP"}, {"ODD-XM5", "ODD-HEB", "ODD-CAF", "ODD-PCT"}),
    ("'; DROP TABLE products; --", set(), None),
    ("1; SELECT pg_sleep(10)", set(), None),
    ("' OR '1'='1", set(), None),
    ("🦄", set(), {"ODD-XM5", "ODD-CPP", "ODD-HEB", "ODD-CAF", "ODD-PCT"}),
    ("🎧 headphones", set(), None),
    ("שלום", {"ODD-HEB"}, {"ODD-XM5", "ODD-CPP", "ODD-CAF", "ODD-PCT"}),
    ("\u202eenohp\u202c", set(), None),  # right-to-left override
    ("creme brulee", {"ODD-CAF"}, {"ODD-XM5", "ODD-CPP", "ODD-HEB", "ODD-PCT"}),
    ("CRÈME", {"ODD-CAF"}, None),
    ("the and", set(), None),
    ("the", set(), None),
    ("-" * 200, set(), None),
    ("a" * 200, set(), None),
    (" ".join(["headphones"] * 18)[:200], {"ODD-XM5"}, None),
    (" ".join(f"w{i}" for i in range(60))[:200], set(), None),
    ("-" + " -".join(["x"] * 60), set(), None),
    ('"' * 200, set(), None),
    ("(" * 200, set(), None),
    ("zero\u200bwidth", set(), None),
    ("e\u0301\u0301\u0301", set(), None),  # stacked combining accents
    ("ﬁ", set(), None),  # a ligature NFKD folds to two letters
    ("100%", {"ODD-PCT"}, None),
    ("headphones\t\n", {"ODD-XM5"}, None),
    ("   ", set(), None),
    ("0", set(), None),
    ("00000000", set(), None),  # GTIN-shaped
    ("978-0-306", set(), None),
]


def _check_odd(query: str, found: list[str], present: set[str], absent: set[str] | None) -> None:
    assert present <= set(found), (query, found)
    if absent is not None:
        assert not (absent & set(found)), (query, found)
    assert len(found) == len(set(found)), (query, found)


@pytest.mark.parametrize(
    ("query", "present", "absent"), ODD_QUERIES, ids=[repr(q[0])[:40] for q in ODD_QUERIES]
)
async def test_odd_queries_are_200_on_both_endpoints(
    client: AsyncClient, key: str, query: str, present: set[str], absent: set[str] | None
) -> None:
    await upsert(client, ODD_CATALOG)
    for sort in (None, "price_asc"):
        body: Body = {"query": query} | ({"sort": sort} if sort else {})
        for facets in (False, True):
            response = await post(client, key, body | {"facets": facets})
            assert response.status_code == 200, (query, response.text)
            page = response.json()
            _check_odd(query, skus_of(page["products"]), present, absent)
            assert page["pagination"]["total_count"] >= len(page["products"])
        params: Body = {"q": query} | ({"sort": sort} if sort else {})
        if query.strip():
            response = await client.get("/v1/products", params=params, headers=key_headers(key))
            assert response.status_code == 200, (query, response.text)
            _check_odd(query, skus_of(response.json()["data"]), present, absent)
    # the catalog is still there, whatever the query said
    assert len((await search(client, key, {}))["products"]) == len(ODD_CATALOG)


# --- cursors -------------------------------------------------------------------------------------


def lantern_catalog() -> list[list[Product]]:
    """20 products matching "lantern" in 3 upserts (so `newest` differs by batch), with tied
    names (tied scores) and tied prices, SKUs deliberately not in insertion order; 4 that don't
    match."""
    names = ["Lantern", "Brass Lantern Lamp", "Camping Lamp", "Lantern Hook Lantern"]
    order = [7, 3, 15, 0, 19, 11, 4, 8, 16, 1, 12, 5, 18, 9, 2, 14, 6, 17, 10, 13]
    matching = [
        product(
            f"LAN-{n:02d}",
            name=names[i % 4],
            description="Lights the way." if i % 4 != 2 else "A lantern for tents.",
            category="outdoor",
            price_cents=500 + (i % 5) * 1000,
            stock=i % 3,
            attributes={},
        )
        for i, n in enumerate(order)
    ]
    others = [
        product(f"OTH-{i}", name=f"Tea Cup {i}", category="kitchen", price_cents=500)
        for i in range(4)
    ]
    return [matching[:7] + others[:2], matching[7:14], matching[14:] + others[2:]]


async def load_lanterns(client: AsyncClient) -> dict[str, int]:
    """Upserts the lantern catalog; returns each matching SKU's batch number."""
    batches = lantern_catalog()
    for batch in batches:
        await upsert(client, batch)
    return {p["sku"]: i for i, batch in enumerate(batches) for p in batch if "LAN" in p["sku"]}


SORTS = ["relevance", "price_asc", "price_desc", "newest", "sku"]


def expected_order(sort: str, products: list[Product], batch: dict[str, int]) -> list[str] | None:
    # price and date orders break ties by SKU in their own direction (one index range)
    keys: dict[str, Callable[[Product], Any]] = {
        "price_asc": lambda p: (p["price_cents"], p["sku"]),
        "price_desc": lambda p: (p["price_cents"], p["sku"]),
        "newest": lambda p: (batch[p["sku"]], p["sku"]),
        "sku": lambda p: p["sku"],
    }
    if sort not in keys:
        return None
    descending = sort in ("price_desc", "newest")
    return [p["sku"] for p in sorted(products, key=keys[sort], reverse=descending)]


@pytest.mark.parametrize("sort", SORTS)
async def test_walking_pages_yields_each_product_once(
    client: AsyncClient, key: str, sort: str
) -> None:
    batch = await load_lanterns(client)
    matching = [p for b in lantern_catalog() for p in b if "LAN" in p["sku"]]
    seen = await walk(client, key, {"query": "lantern", "sort": sort}, limit=3)
    found = skus_of(seen)
    assert len(found) == len(set(found)) == 20
    assert set(found) == set(batch)
    expected = expected_order(sort, matching, batch)
    if expected is not None:
        assert found == expected
    else:
        scores = [p["score"] for p in seen]
        assert all(isinstance(s, float) for s in scores)
        # by score, ties by SKU; and the same order as one big page
        assert [(-s, sku) for s, sku in zip(scores, found, strict=True)] == sorted(
            (-s, sku) for s, sku in zip(scores, found, strict=True)
        )
        assert len(set(scores)) < len(scores)  # the catalog does have tied scores
        whole = await search(client, key, {"query": "lantern", "pagination": {"limit": 100}})
        assert skus_of(whole["products"]) == found
    # the GET listing walks the same list
    params: Body = {"q": "lantern", "sort": sort}
    assert skus_of(await walk_get(client, key, params, limit=3)) == found


@pytest.mark.parametrize("sort", ["price_asc", "price_desc", "newest", "sku"])
async def test_walking_without_a_query(client: AsyncClient, key: str, sort: str) -> None:
    batch = await load_lanterns(client)
    everything = [p for b in lantern_catalog() for p in b]
    batch |= {p["sku"]: i for i, b in enumerate(lantern_catalog()) for p in b}
    seen = skus_of(await walk(client, key, {"sort": sort}, limit=3))
    assert seen == expected_order(sort, everything, batch)
    assert skus_of(await walk_get(client, key, {"sort": sort}, limit=3)) == seen
    assert skus_of(await walk(client, key, {}, limit=4)) == sorted(batch)  # default: SKU


async def test_a_cursor_is_bound_to_query_filters_and_sort(client: AsyncClient, key: str) -> None:
    await load_lanterns(client)
    first = await search(client, key, {"query": "lantern", "pagination": {"limit": 3}})
    cursor = first["pagination"]["cursor"]
    assert cursor and first["pagination"]["has_next_page"]
    whole = skus_of(
        (await search(client, key, {"query": "lantern", "pagination": {"limit": 100}}))["products"]
    )

    def again(**changes: Any) -> Body:
        return {"query": "lantern", "pagination": {"cursor": cursor, "limit": 3}} | changes

    # the same search continues where the first page ended, whatever the limit or facets
    same = await search(client, key, again())
    assert skus_of(same["products"]) == whole[3:6]
    assert skus_of((await search(client, key, again(sort="relevance")))["products"]) == whole[3:6]
    assert (
        skus_of((await search(client, key, again(query="  lantern ")))["products"]) == (whole[3:6])
    )
    longer = await search(client, key, again(pagination={"cursor": cursor, "limit": 10}))
    assert skus_of(longer["products"]) == whole[3:13]
    assert (await search(client, key, again(facets=True)))["facets"] is not None

    # any other search refuses it
    for other in [
        again(query="lanterns"),
        again(query="lamp"),
        again(query=None),
        again(filters={"in_stock": True}),
        again(filters={"categories": ["outdoor"]}),
        again(filters={"price": {"min": 0}}),
        again(filters={"attributes": [{"name": "a", "value": 1}]}),
        again(sort="price_asc"),
        again(sort="sku"),
    ]:
        assert_error(await post(client, key, other), 400, "invalid_cursor")

    # filters are bound in their normalised form: a category's name is its slug
    base = {"query": "lantern", "filters": {"categories": ["outdoor"]}}
    page = await search(client, key, base | {"pagination": {"limit": 3}})
    by_name: Body = {"query": "lantern", "filters": {"categories": ["Outdoor"]}}
    by_name["pagination"] = {"cursor": page["pagination"]["cursor"], "limit": 3}
    assert skus_of((await search(client, key, by_name))["products"]) == whole[3:6]

    # a sort-only cursor: bound to its sort
    priced = await search(client, key, {"sort": "price_asc", "pagination": {"limit": 2}})
    moved = {"sort": "price_desc", "pagination": {"cursor": priced["pagination"]["cursor"]}}
    assert_error(await post(client, key, moved), 400, "invalid_cursor")
    with_query: Body = {"query": "lantern", "sort": "price_asc"}
    with_query["pagination"] = {"cursor": priced["pagination"]["cursor"]}
    assert_error(await post(client, key, with_query), 400, "invalid_cursor")


async def test_tampered_cursors_are_400(client: AsyncClient, key: str) -> None:
    await load_lanterns(client)
    first = await search(client, key, {"query": "lantern", "pagination": {"limit": 3}})
    cursor: str = first["pagination"]["cursor"]
    payload, mac = cursor.rsplit(".", 1)
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    tampered = [
        "garbage",
        ".",
        "a.b",
        flipped + "." + mac,
        payload + "." + mac[:-1],
        payload + "." + "0" * len(mac),
        cursor + "x",
        cursor[1:],
        cursor + "." + mac,
        "😀." + mac,
        "%00." + mac,
        cursor * 20,  # overlong
        "x" * 20_000,
    ]
    for bad in tampered:
        body = {"query": "lantern", "pagination": {"cursor": bad, "limit": 3}}
        assert_error(await post(client, key, body), 400, "invalid_cursor")
        response = await client.get(
            "/v1/products", params={"q": "lantern", "cursor": bad}, headers=key_headers(key)
        )
        assert response.status_code in (400, 414, 431), (bad[:40], response.text)
        if response.status_code == 400:
            assert_error(response, 400, "invalid_cursor")
    assert (await used(client, key))["used"] == 1


async def test_get_and_post_cursors_are_interchangeable(client: AsyncClient, key: str) -> None:
    """Both endpoints run one search (app/catalog/router.py builds a `SearchRequest` from the
    query parameters), so the binding — query as typed, normalised filters, resolved sort — is
    the same, and a cursor from one continues in the other."""
    await load_lanterns(client)
    body: Body = {
        "query": "lantern",
        "filters": {"categories": ["Outdoor"], "price": {"min": 500, "max": 3500}},
    }
    expected = skus_of(await walk(client, key, body, limit=100))
    assert len(expected) > 6
    params: Body = {"q": "lantern", "category": "outdoor", "price_min": 500, "price_max": 3500}

    got = await listing(client, key, params | {"limit": 3})
    assert skus_of(got["data"]) == expected[:3]
    continued = await search(
        client, key, body | {"pagination": {"cursor": got["next_cursor"], "limit": 3}}
    )
    assert skus_of(continued["products"]) == expected[3:6]

    back = await listing(
        client, key, params | {"limit": 3, "cursor": continued["pagination"]["cursor"]}
    )
    assert skus_of(back["data"]) == expected[6:9]

    # ... but only for the same search
    other = await client.get(
        "/v1/products",
        params=params | {"in_stock": "true", "cursor": continued["pagination"]["cursor"]},
        headers=key_headers(key),
    )
    assert_error(other, 400, "invalid_cursor")
    wrong = body | {"sort": "price_asc", "pagination": {"cursor": got["next_cursor"]}}
    assert_error(await post(client, key, wrong), 400, "invalid_cursor")


# --- filters -------------------------------------------------------------------------------------


def filter_catalog() -> list[Product]:
    def item(
        sku: str, category: str, brand: str | None, price: int, stock: int | None, **attrs: Any
    ) -> Product:
        attributes = attrs | ({"brand": brand} if brand is not None else {})
        return product(
            sku,
            name=f"Filter Widget {sku}",
            category=category,
            price_cents=price,
            stock=stock,
            attributes=attributes,
        )

    return [
        item(
            "F-01", "headphones", "Sonora", 999, 3,
            size=10, color="Black", wireless=True, ram_gb=8, weight_kg=1.5,
        ),
        item(
            "F-02", "headphones", "sonora", 1000, 0,
            size=10.0, color="black", wireless=False, ram_gb=16,
        ),
        item("F-03", "running-shoes", "Stride", 1500, 1, size="10", color="BLACK", ram_gb="16"),
        item(
            "F-04", "running-shoes", "Stride", 2000, None,
            size=11, color="white", ram_gb=32, weight_kg=1.51,
        ),
        item("F-05", "running-shoes", None, 2001, 7, size="ten", ram_gb="lots"),
        item("F-06", "books", None, 500, 2, ram_gb={"v": 16}, size=[10], isbn="9780306406157"),
        item(
            "F-07", "books", "Sonora Deluxe", 3000, 0,
            size=105, color="Blackish", ram_gb=16.0, weight_kg=1.49,
        ),
    ]  # fmt: skip


FILTER_CASES: list[tuple[str, Body, list[str]]] = [
    ("brand", {"brands": ["Sonora"]}, ["F-01", "F-02"]),
    ("brand upper case", {"brands": ["SONORA"]}, ["F-01", "F-02"]),
    ("brand exact, not prefix", {"brands": ["Sonora Deluxe"]}, ["F-07"]),
    ("brands any of", {"brands": ["stride", "sonora"]}, ["F-01", "F-02", "F-03", "F-04"]),
    ("brand unknown", {"brands": ["Nobody"]}, []),
    ("category slug", {"categories": ["running-shoes"]}, ["F-03", "F-04", "F-05"]),
    ("category name", {"categories": ["Running Shoes"]}, ["F-03", "F-04", "F-05"]),
    ("category name upper", {"categories": ["RUNNING SHOES"]}, ["F-03", "F-04", "F-05"]),
    (
        "categories any of",
        {"categories": ["Books", "headphones"]},
        ["F-01", "F-02", "F-06", "F-07"],
    ),
    ("category unknown", {"categories": ["garden"]}, []),
    (
        "price both bounds inclusive",
        {"price": {"min": 1000, "max": 2000}},
        ["F-02", "F-03", "F-04"],
    ),
    ("price min", {"price": {"min": 2000}}, ["F-04", "F-05", "F-07"]),
    ("price max", {"price": {"max": 999}}, ["F-01", "F-06"]),
    ("price exact", {"price": {"min": 1500, "max": 1500}}, ["F-03"]),
    ("price zero", {"price": {"min": 0, "max": 0}}, []),
    ("in stock", {"in_stock": True}, ["F-01", "F-03", "F-05", "F-06"]),
    ("out of stock", {"in_stock": False}, ["F-02", "F-04", "F-07"]),
    ("number eq int", {"attributes": [{"name": "size", "value": 10}]}, ["F-01", "F-02", "F-03"]),
    (
        "number eq float",
        {"attributes": [{"name": "size", "value": 10.0}]},
        ["F-01", "F-02", "F-03"],
    ),
    ("number eq other", {"attributes": [{"name": "size", "value": 11}]}, ["F-04"]),
    ("string eq", {"attributes": [{"name": "size", "value": "ten"}]}, ["F-05"]),
    ("string eq any case", {"attributes": [{"name": "size", "value": "TEN"}]}, ["F-05"]),
    (
        "string eq case-insensitive",
        {"attributes": [{"name": "color", "value": "black"}]},
        ["F-01", "F-02", "F-03"],
    ),
    ("boolean true", {"attributes": [{"name": "wireless", "value": True}]}, ["F-01"]),
    ("boolean false", {"attributes": [{"name": "wireless", "value": False}]}, ["F-02"]),
    (
        "gte",
        {"attributes": [{"name": "ram_gb", "op": "gte", "value": 16}]},
        ["F-02", "F-04", "F-07"],
    ),
    ("gt", {"attributes": [{"name": "ram_gb", "op": "gt", "value": 16}]}, ["F-04"]),
    ("lt", {"attributes": [{"name": "ram_gb", "op": "lt", "value": 16}]}, ["F-01"]),
    (
        "lte",
        {"attributes": [{"name": "ram_gb", "op": "lte", "value": 16}]},
        ["F-01", "F-02", "F-07"],
    ),
    (
        "eq number matches the string too",
        {"attributes": [{"name": "ram_gb", "value": 16}]},
        ["F-02", "F-03", "F-07"],
    ),
    (
        "lte fractional, inclusive",
        {"attributes": [{"name": "weight_kg", "op": "lte", "value": 1.5}]},
        ["F-01", "F-07"],
    ),
    ("gt fractional", {"attributes": [{"name": "weight_kg", "op": "gt", "value": 1.5}]}, ["F-04"]),
    ("attribute nobody has", {"attributes": [{"name": "nope", "value": 1}]}, []),
    (
        "attribute nobody has, ranged",
        {"attributes": [{"name": "nope", "op": "gt", "value": 1}]},
        [],
    ),
    (
        "two attributes: both",
        {
            "attributes": [
                {"name": "ram_gb", "op": "gte", "value": 8},
                {"name": "ram_gb", "op": "lte", "value": 16},
            ]
        },
        ["F-01", "F-02", "F-07"],
    ),
    ("brand and stock", {"brands": ["Sonora"], "in_stock": True}, ["F-01"]),
    (
        "everything at once",
        {
            "categories": ["Running Shoes"],
            "price": {"max": 2000},
            "attributes": [{"name": "ram_gb", "op": "gte", "value": 16}],
        },
        ["F-04"],
    ),
]


@pytest.mark.parametrize(
    ("case", "filters", "expected"), FILTER_CASES, ids=[c[0] for c in FILTER_CASES]
)
async def test_filters_are_never_violated(
    client: AsyncClient, key: str, case: str, filters: Body, expected: list[str]
) -> None:
    await upsert(client, filter_catalog())
    listed = await walk(client, key, {"filters": filters}, limit=2)
    assert skus_of(listed) == expected
    # the same filters under a query (the ranked path), and under a price sort
    ranked = await walk(client, key, {"query": "widget", "filters": filters}, limit=2)
    assert sorted(skus_of(ranked)) == expected
    priced = await walk(client, key, {"query": "filter", "filters": filters, "sort": "price_desc"})
    assert sorted(skus_of(priced)) == expected


GET_FILTER_CASES: list[tuple[Any, list[str]]] = [
    ({"brand": "sonora"}, ["F-01", "F-02"]),
    ([("brand", "Stride"), ("brand", "SONORA")], ["F-01", "F-02", "F-03", "F-04"]),
    ({"category": "Running Shoes"}, ["F-03", "F-04", "F-05"]),
    ([("category", "books"), ("category", "Headphones")], ["F-01", "F-02", "F-06", "F-07"]),
    ({"price_min": 1000, "price_max": 2000}, ["F-02", "F-03", "F-04"]),
    ({"in_stock": "true"}, ["F-01", "F-03", "F-05", "F-06"]),
    ({"in_stock": "false"}, ["F-02", "F-04", "F-07"]),
    ({"attr": "size=10"}, ["F-01", "F-02", "F-03"]),
    ({"attr": "size=10.0"}, ["F-01", "F-02", "F-03"]),
    ({"attr": "size:ten"}, ["F-05"]),
    ({"attr": "color=BLACK"}, ["F-01", "F-02", "F-03"]),
    ({"attr": "wireless=true"}, ["F-01"]),
    ({"attr": "wireless=false"}, ["F-02"]),
    ({"attr": "ram_gb>=16"}, ["F-02", "F-04", "F-07"]),
    ({"attr": "ram_gb > 16"}, ["F-04"]),
    ({"attr": "ram_gb<16"}, ["F-01"]),
    ({"attr": "weight_kg<=1.5"}, ["F-01", "F-07"]),
    ([("attr", "ram_gb>=8"), ("attr", "ram_gb<=16")], ["F-01", "F-02", "F-07"]),
]


@pytest.mark.parametrize(("params", "expected"), GET_FILTER_CASES)
async def test_listing_filters(
    client: AsyncClient, key: str, params: Any, expected: list[str]
) -> None:
    await upsert(client, filter_catalog())
    pairs = list(params.items()) if isinstance(params, dict) else list(params)
    assert skus_of(await walk_get(client, key, pairs, limit=2)) == expected
    response = await client.get(
        "/v1/products", params=[*pairs, ("limit", 100)], headers=key_headers(key)
    )
    assert response.status_code == 200, response.text
    assert skus_of(response.json()["data"]) == expected
    ranked = await client.get(
        "/v1/products", params=[*pairs, ("q", "widget")], headers=key_headers(key)
    )
    assert ranked.status_code == 200, ranked.text
    assert sorted(skus_of(ranked.json()["data"])) == expected


# --- facets --------------------------------------------------------------------------------------

BAND_EDGES = [0, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000]


def facet_catalog() -> list[Product]:
    prices = [0, 2499, 2500, 4999, 5000, 9999, 10_000, 24_999, 25_000, 49_999, 50_000, 99_999]
    prices += [100_000, 249_999, 250_000, 2_000_000_000, 2500, 2500]
    categories = ["running-shoes", "headphones", "books"]
    brands = ["Sonora", "Stride", None, "Sonora"]
    items = [
        product(
            f"FAC-{i:02d}",
            name="Facet Gizmo" if i % 2 else "Facet Gizmo Deluxe",
            category=categories[i % 3],
            price_cents=price,
            attributes={"brand": brands[i % 4]} if brands[i % 4] else {},
            stock=i % 2,
        )
        for i, price in enumerate(prices)
    ]
    items.append(product("NOT-1", name="Teapot", category="kitchen", price_cents=100))
    items.append(product("NOT-2", name="Teapot", category="books", attributes={"brand": "Stride"}))
    return items


def expected_facets(products: list[Product]) -> Body:
    categories = Counter(p["category"] for p in products)
    brands = Counter(p["attributes"]["brand"] for p in products if p["attributes"].get("brand"))
    bands: Counter[int] = Counter()
    for p in products:
        bands[max(edge for edge in BAND_EDGES if edge <= p["price_cents"])] += 1
    highs: list[int | None] = [*BAND_EDGES[1:], None]
    return {
        "categories": [
            {"value": slug, "name": slug.replace("-", " ").title(), "count": n}
            for slug, n in sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "brands": [
            {"value": brand, "name": brand, "count": n}
            for brand, n in sorted(brands.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "price": [
            {"min": low, "max": high, "count": bands[low]}
            for low, high in zip(BAND_EDGES, highs, strict=True)
            if bands[low]
        ],
        "capped": False,
    }


@pytest.mark.parametrize(
    "body",
    [
        {"query": "gizmo"},
        {"query": "gizmo deluxe"},
        {"query": "facet", "filters": {"brands": ["sonora"]}},
        {"query": "gizmo", "filters": {"price": {"min": 2500, "max": 99_999}}, "sort": "price_asc"},
        {"filters": {"categories": ["Books"]}},
        {"filters": {"in_stock": True}},
        {},
    ],
)
async def test_facet_counts_are_the_real_counts(client: AsyncClient, key: str, body: Body) -> None:
    catalog = facet_catalog()
    await upsert(client, catalog)
    matching = await walk(client, key, body, limit=100)
    assert matching
    by_sku = {p["sku"]: p for p in catalog}
    expected = expected_facets([by_sku[p["sku"]] for p in matching])
    first = await search(client, key, body | {"facets": True, "pagination": {"limit": 2}})
    assert first["facets"] == expected
    assert first["pagination"]["total_count"] == len(matching)
    # a later page reports the same facets (they describe the search, not the page)
    cursor = first["pagination"]["cursor"]
    if cursor:
        later = body | {"facets": True, "pagination": {"limit": 2, "cursor": cursor}}
        assert (await search(client, key, later))["facets"] == expected


async def test_facets_of_nothing(client: AsyncClient, key: str) -> None:
    await upsert(client, facet_catalog())
    found = await search(
        client, key, {"query": "gizmo", "filters": {"brands": ["x"]}, "facets": True}
    )
    assert found["products"] == []
    assert found["facets"] == {"categories": [], "brands": [], "price": [], "capped": False}


# --- categories and product detail ---------------------------------------------------------------


async def test_categories_list_slug_name_count(client: AsyncClient, key: str) -> None:
    assert (await client.get("/v1/categories", headers=key_headers(key))).json() == {"data": []}
    await upsert(
        client,
        [
            product("C-1", category="running-shoes"),
            product("C-2", category="running-shoes"),
            product("C-3", category="books"),
            product("C-4", category="tv-audio-2"),
            product("C-5", category="a"),
        ],
    )
    response = await client.get("/v1/categories", headers=key_headers(key))
    assert response.status_code == 200
    assert "X-RateLimit-Remaining" in response.headers
    assert response.json() == {
        "data": [
            {"slug": "a", "name": "A", "count": 1},
            {"slug": "books", "name": "Books", "count": 1},
            {"slug": "running-shoes", "name": "Running Shoes", "count": 2},
            {"slug": "tv-audio-2", "name": "Tv Audio 2", "count": 1},
        ]
    }
    # every slug works as a filter, and so does every name
    for entry in response.json()["data"]:
        for value in (entry["slug"], entry["name"]):
            page = await search(client, key, {"filters": {"categories": [value]}})
            assert page["pagination"]["total_count"] == entry["count"], value
    usage = await used(client, key)
    assert usage["by_endpoint"]["categories.list"] == 2


async def test_product_detail_is_case_insensitive(client: AsyncClient, key: str) -> None:
    await upsert(client, [product("LAP-00042", name="Laptop"), product("ab-1"), product("AB-2")])
    for path, sku in [
        ("LAP-00042", "LAP-00042"),
        ("lap-00042", "LAP-00042"),
        ("Lap-00042", "LAP-00042"),
        ("ab-1", "ab-1"),
        ("AB-1", "ab-1"),
        ("ab-2", "AB-2"),
    ]:
        response = await client.get(f"/v1/products/{path}", headers=key_headers(key))
        assert response.status_code == 200, (path, response.text)
        assert response.json()["sku"] == sku
    assert_error(await client.get("/v1/products/lap-0004", headers=key_headers(key)), 404)


# --- exact SKU and GTIN/ISBN ---------------------------------------------------------------------


async def test_exact_sku_ranks_first_with_score_1000(client: AsyncClient, key: str) -> None:
    await upsert(
        client,
        [
            product("KTL-200", name="Plain Kettle", category="kitchen"),
            # products whose text is full of the query's words
            product("KTL-201", name="KTL 200 KTL-200 kettle ktl-200", description="ktl-200 ktl"),
            product("KTL-2000", name="KTL-200 Kettle Deluxe", description="ktl-200 spare parts"),
        ],
    )
    for query in ["KTL-200", "ktl-200", "Ktl-200", " ktl-200 "]:
        page = await search(client, key, {"query": query})
        assert page["products"][0]["sku"] == "KTL-200", query
        assert page["products"][0]["score"] == 1000.0
        assert all(p["score"] < 1000.0 for p in page["products"][1:]), query
        assert page["messages"] == [], query  # a SKU is not a spelling mistake
        listed = await listing(client, key, {"q": query})
        assert listed["data"][0]["sku"] == "KTL-200"
    # an exact SKU that matches no text at all still matches (and is the only one)
    await upsert(client, [product("ZQX-9", name="Bolt", description="")])
    only = await search(client, key, {"query": "zqx-9"})
    assert skus_of(only["products"]) == ["ZQX-9"] and only["products"][0]["score"] == 1000.0
    # filters still apply to it
    filtered = await search(client, key, {"query": "zqx-9", "filters": {"categories": ["books"]}})
    assert filtered["products"] == []


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("isbn", "9780306406157"),
        ("gtin", "9780306406157"),
        ("isbn", "978-0-306-40615-7"),
        ("gtin", "978-0-306-40615-7"),
    ],
)
@pytest.mark.parametrize("query", ["9780306406157", "978-0-306-40615-7", "978 0306406157"])
async def test_exact_gtin_or_isbn_ranks_first(
    client: AsyncClient, key: str, name: str, stored: str, query: str
) -> None:
    await upsert(
        client,
        [
            product(
                "BOOK-1", name="Signals and Noise", category="books", attributes={name: stored}
            ),
            # another product that mentions the number in its text
            product(
                "BOOK-2",
                name="Signals 9780306406157",
                category="books",
                description="Companion to 978-0-306-40615-7 and 9780306406157.",
                attributes={"isbn": "9781111111111"},
            ),
        ],
    )
    page = await search(client, key, {"query": query})
    assert page["products"], (name, stored, query)
    top = page["products"][0]
    assert (top["sku"], top["score"]) == ("BOOK-1", 1000.0), (name, stored, query, page["products"])
    listed = await listing(client, key, {"q": query})
    assert listed["data"][0]["sku"] == "BOOK-1"


# --- spelling help, relaxed matches, the word list -----------------------------------------------


async def test_typo_gives_did_you_mean_and_corrected_results(client: AsyncClient, key: str) -> None:
    await upsert(
        client,
        [
            product("QX-1", name="Quixotic Headphones", category="headphones"),
            product("QX-2", name="Quixotic Speaker", category="audio"),
            product("QX-3", name="Plain Speaker", category="audio"),
        ],
    )
    page = await search(client, key, {"query": "quixotik"})
    codes = [m["code"] for m in page["messages"]]
    assert codes == ["did_you_mean", "corrected_query"], page["messages"]
    did_you_mean, corrected = page["messages"]
    assert did_you_mean["suggestion"] == "quixotic" and did_you_mean["type"] == "info"
    assert "quixotic" in did_you_mean["content"]
    assert corrected["type"] == "warning" and "quixotic" in corrected["content"]
    assert sorted(skus_of(page["products"])) == ["QX-1", "QX-2"]
    assert page["pagination"]["total_count"] == 2

    # two words, one misspelt: the suggestion keeps the other
    page = await search(client, key, {"query": "quixotik speaker"})
    assert page["messages"][0]["code"] == "did_you_mean"
    assert page["messages"][0]["suggestion"] == "quixotic speaker"
    assert skus_of(page["products"]) == ["QX-2"]

    # the corrected results page on, and the later pages say so too
    first = await search(client, key, {"query": "quixotik", "pagination": {"limit": 1}})
    later = await search(
        client,
        key,
        {"query": "quixotik", "pagination": {"limit": 1, "cursor": first["pagination"]["cursor"]}},
    )
    assert sorted(skus_of(first["products"] + later["products"])) == ["QX-1", "QX-2"]
    assert "corrected_query" in [m["code"] for m in later["messages"]]
    assert later["pagination"]["cursor"] is None

    # GET runs the same search (the listing has no messages, but serves the corrected results)
    listed = await listing(client, key, {"q": "quixotik"})
    assert sorted(skus_of(listed["data"])) == ["QX-1", "QX-2"]

    # a word correctly spelt gets no suggestion
    assert (await search(client, key, {"query": "quixotic"}))["messages"] == []


async def test_few_results_with_an_unknown_word_suggest_without_correcting(
    client: AsyncClient, key: str
) -> None:
    """README: fewer than 3 results also get a `did_you_mean` when a word is unknown; the results
    stay those of the query as typed (nothing is corrected while something matches)."""
    await upsert(
        client,
        [
            product("FW-1", name="Copper Kettle", category="kitchen"),
            product("FW-2", name="Zanzibar Teapot", category="kitchen"),
        ],
    )
    page = await search(client, key, {"query": "kettle or zanzibr"})
    assert skus_of(page["products"]) == ["FW-1"]
    assert [m["code"] for m in page["messages"]] == ["did_you_mean"]
    assert page["messages"][0]["suggestion"] == "kettle or zanzibar"
    # three results or more: no suggestion even with the same unknown word
    await upsert(client, [product(f"FW-K{i}", name="Iron Kettle") for i in range(3)])
    assert (await search(client, key, {"query": "kettle or zanzibr"}))["messages"] == []


async def test_typo_with_no_corrected_results_still_suggests(client: AsyncClient, key: str) -> None:
    await upsert(
        client,
        [
            product("PL-1", name="Periwinkle Scarf", category="apparel"),
            product("PL-2", name="Woollen Mittens", category="apparel"),
        ],
    )
    # the corrected query ("periwinkle mittens") still matches nothing as a whole
    page = await search(client, key, {"query": "periwinkel mittens"})
    codes = [m["code"] for m in page["messages"]]
    assert codes[0] == "did_you_mean", page["messages"]
    assert page["messages"][0]["suggestion"] == "periwinkle mittens"
    # ... so no product has every word, and it is relaxed to any word of the corrected query
    assert codes == ["did_you_mean", "corrected_query", "relaxed_match"]
    assert sorted(skus_of(page["products"])) == ["PL-1", "PL-2"]


async def test_relaxed_match_when_no_product_has_every_word(client: AsyncClient, key: str) -> None:
    await upsert(
        client,
        [
            product("RX-1", name="Velvet Toaster", category="kitchen"),
            product("RX-2", name="Granite Mortar", category="kitchen"),
            product("RX-3", name="Teak Bowl", category="kitchen"),
        ],
    )
    page = await search(client, key, {"query": "velvet mortar"})
    assert [m["code"] for m in page["messages"]] == ["relaxed_match"]
    assert page["messages"][0]["type"] == "warning"
    assert sorted(skus_of(page["products"])) == ["RX-1", "RX-2"]
    assert page["pagination"]["total_count"] == 2
    # walking a relaxed search keeps it relaxed
    walked = await walk(client, key, {"query": "velvet mortar"}, limit=1)
    assert sorted(skus_of(walked)) == ["RX-1", "RX-2"]
    # one word matching everything: nothing to relax, no messages
    assert (await search(client, key, {"query": "velvet toaster"}))["messages"] == []
    # a phrase is one term: not relaxed into its words
    phrase = await search(client, key, {"query": '"mortar velvet"'})
    assert phrase["products"] == [] and phrase["messages"] == []


@pytest.mark.parametrize("query", ["LANTRN-4410", "lantrn-4410", "lantrn4410", "PORTBLE-00001"])
async def test_a_sku_like_token_gets_no_did_you_mean(
    client: AsyncClient, key: str, query: str
) -> None:
    await upsert(
        client,
        [
            product("LANT-00042", name="Brass Lantern", category="outdoor"),
            product("PORT-1", name="Portable Lantern", category="outdoor"),
        ],
    )
    page = await search(client, key, {"query": query})
    assert "did_you_mean" not in [m["code"] for m in page["messages"]], page["messages"]
    assert "corrected_query" not in [m["code"] for m in page["messages"]], page["messages"]


async def test_an_existing_sku_gets_no_did_you_mean(client: AsyncClient, key: str) -> None:
    await upsert(client, [product("LANTRN-4410", name="Brass Lantern", category="outdoor")])
    for query in ["LANTRN-4410", "lantrn-4410"]:
        page = await search(client, key, {"query": query})
        assert skus_of(page["products"]) == ["LANTRN-4410"]
        assert page["messages"] == [], page["messages"]


async def test_new_products_add_their_words_to_suggestions(client: AsyncClient, key: str) -> None:
    await upsert(client, [product("ZK-0", name="Plain Kettle", category="kitchen")])
    before = await search(client, key, {"query": "zanzibr"})
    assert before["products"] == []
    await upsert(client, [product("ZK-1", name="Zanzibar Kettle", category="kitchen")])
    page = await search(client, key, {"query": "zanzibr"})
    assert page["messages"][0]["code"] == "did_you_mean"
    assert page["messages"][0]["suggestion"] == "zanzibar"
    assert skus_of(page["products"]) == ["ZK-1"]
    # an update's new words count too; words from brand and text attributes as well
    await upsert(
        client,
        [
            product(
                "ZK-0",
                name="Plain Kettle Marrakesh",
                category="kitchen",
                attributes={"brand": "Okavango", "finish": "Verdigris"},
            )
        ],
    )
    for typo, word, sku in [
        ("marrakeh", "marrakesh", "ZK-0"),
        ("okavnago", "okavango", "ZK-0"),
        ("verdigrs", "verdigris", "ZK-0"),
    ]:
        page = await search(client, key, {"query": typo})
        assert page["messages"] and page["messages"][0]["suggestion"] == word, (typo, page)
        assert skus_of(page["products"]) == [sku], typo


# --- the embedded SQLite backend -----------------------------------------------------------------


async def test_sqlite_odd_queries_filters_cursors_and_typos(
    sqlite_client: tuple[AsyncClient, str],
) -> None:
    client, key = sqlite_client
    await upsert(client, ODD_CATALOG)
    await upsert(client, filter_catalog())
    for lanterns in lantern_catalog():
        await upsert(client, lanterns)
    await upsert(client, [product("QX-1", name="Quixotic Headphones", category="headphones")])

    # odd queries: never a 500, sane results
    for query, present, absent in ODD_QUERIES:
        for sort in ("relevance", "price_asc"):
            response = await post(client, key, {"query": query, "sort": sort, "facets": True})
            assert response.status_code == 200, (query, response.text)
            _check_odd(query, skus_of(response.json()["products"]), present, absent)
        if query.strip():
            got = await client.get("/v1/products", params={"q": query}, headers=key_headers(key))
            assert got.status_code == 200, (query, got.text)
            _check_odd(query, skus_of(got.json()["data"]), present, absent)
    for _case, body, _field in BAD_BODIES:
        assert_error(await post(client, key, body), 422, "validation_error")

    # filters
    for case, filters, expected in FILTER_CASES:  # (other products share this database)
        listed = await walk(client, key, {"query": "widget", "filters": filters, "sort": "sku"}, 2)
        assert skus_of(listed) == expected, case
        ranked = await walk(client, key, {"query": "widget", "filters": filters}, limit=2)
        assert sorted(skus_of(ranked)) == expected, case
    for params, expected in GET_FILTER_CASES:
        pairs = list(params.items()) if isinstance(params, dict) else list(params)
        extra = [("limit", 100), ("q", "widget"), ("sort", "sku")]
        response = await client.get("/v1/products", params=pairs + extra, headers=key_headers(key))
        assert skus_of(response.json()["data"]) == expected, params

    # cursor walks, every sort, and bound cursors
    batch = {p["sku"]: i for i, b in enumerate(lantern_catalog()) for p in b if "LAN" in p["sku"]}
    matching = [p for b in lantern_catalog() for p in b if "LAN" in p["sku"]]
    for sort in SORTS:
        seen = await walk(client, key, {"query": "lantern", "sort": sort}, limit=3)
        found = skus_of(seen)
        assert len(found) == len(set(found)) == 20 and set(found) == set(batch), sort
        order = expected_order(sort, matching, batch)
        if order is not None:
            assert found == order, sort
        else:
            pairs_ = [(-p["score"], p["sku"]) for p in seen]
            assert pairs_ == sorted(pairs_)
        assert skus_of(await walk_get(client, key, {"q": "lantern", "sort": sort})) == found
    first = await search(client, key, {"query": "lantern", "pagination": {"limit": 3}})
    cursor = first["pagination"]["cursor"]
    for other in [{"query": "lamp"}, {"query": "lantern", "sort": "sku"}]:
        body = other | {"pagination": {"cursor": cursor}}
        assert_error(await post(client, key, body), 400, "invalid_cursor")
    tampered = {"query": "lantern", "pagination": {"cursor": cursor[:-2] + "xx"}}
    assert_error(await post(client, key, tampered), 400, "invalid_cursor")

    # facets
    page = await search(client, key, {"filters": {"brands": ["sonora"]}, "facets": True})
    by_sku = {p["sku"]: p for p in filter_catalog()}
    assert page["facets"]["categories"] == [
        {"value": "headphones", "name": "Headphones", "count": 2}
    ]
    assert sum(b["count"] for b in page["facets"]["brands"]) == 2
    assert [by_sku[s]["sku"] for s in skus_of(page["products"])] == ["F-01", "F-02"]

    # exact SKU, typo suggestion, a word added by an upsert after start-up
    exact = await search(client, key, {"query": "lan-07"})
    assert exact["products"][0]["sku"] == "LAN-07" and exact["products"][0]["score"] == 1000.0
    isbn = await search(client, key, {"query": "978-0-306-40615-7"})
    assert isbn["products"][0]["sku"] == "F-06" and isbn["products"][0]["score"] == 1000.0
    typo = await search(client, key, {"query": "quixotik"})
    assert [m["code"] for m in typo["messages"]] == ["did_you_mean", "corrected_query"]
    assert typo["messages"][0]["suggestion"] == "quixotic"
    assert skus_of(typo["products"]) == ["QX-1"]
    await upsert(client, [product("ZK-1", name="Zanzibar Kettle", category="kitchen")])
    page = await search(client, key, {"query": "zanzibr"})
    assert page["messages"][0]["suggestion"] == "zanzibar"
    assert skus_of(page["products"]) == ["ZK-1"]
    categories = (await client.get("/v1/categories", headers=key_headers(key))).json()["data"]
    slugs = [c["slug"] for c in categories]
    assert slugs == sorted(slugs) and "running-shoes" in slugs

    # last, collected: a SKU-like token gets no suggestion; huge numbers are never a 500
    problems: list[str] = []
    sku_like = await search(client, key, {"query": "lantrn-4410"})
    if "did_you_mean" in [m["code"] for m in sku_like["messages"]]:
        problems.append(f"did_you_mean for a SKU-like token: {sku_like['messages']}")
    for value in [10**29, -(10**29), 2**63]:
        for op in ("eq", "gte"):
            filters = {"attributes": [{"name": "ram_gb", "op": op, "value": value}]}
            response = await post(client, key, {"filters": filters})
            if response.status_code >= 500:
                problems.append(f"{op} {value}: {response.status_code}")
    assert problems == [], "\n".join(problems)


# --- a last word typed whole is a word, a partial one a prefix ----------------------------------


PREFIX_CATALOG = [
    product("SHO-1", name="Trail Shoe", category="shoes"),
    product("SHO-2", name="Waxed Shoelace Pair", category="accessories"),
    product("SHO-3", name="Leather Shoes", category="shoes"),
]


async def _check_whole_word_and_prefix(client: AsyncClient, key: str) -> None:
    await upsert(client, PREFIX_CATALOG)
    # "shoe" is a word the catalog has: it finds shoes (stemmed), not shoelaces
    whole = await search(client, key, {"query": "shoe", "sort": "sku"})
    assert skus_of(whole["products"]) == ["SHO-1", "SHO-3"], whole["products"]
    # a partial word is still completed: "sho" and "shoel"
    partial = await search(client, key, {"query": "sho", "sort": "sku"})
    assert skus_of(partial["products"]) == ["SHO-1", "SHO-2", "SHO-3"]
    shoel = await search(client, key, {"query": "shoel"})
    assert skus_of(shoel["products"]) == ["SHO-2"]
    # only the last bare word is ever a prefix; a whole earlier word matches as a word
    both = await search(client, key, {"query": "leather sho"})
    assert skus_of(both["products"]) == ["SHO-3"]


async def test_a_whole_last_word_is_not_a_prefix(client: AsyncClient, key: str) -> None:
    await _check_whole_word_and_prefix(client, key)


async def test_sqlite_a_whole_last_word_is_not_a_prefix(
    sqlite_client: tuple[AsyncClient, str],
) -> None:
    await _check_whole_word_and_prefix(*sqlite_client)


# --- a sorted query past the cap sorts its 1,000 best matches ------------------------------------


async def _check_capped_price_sort(client: AsyncClient, key: str) -> None:
    """1,001 products mention "gadget" only in their description and cost little; one is a
    "Gadget" by name and costs the most. By price, the query's 1,000 best matches are sorted:
    the named one is among them (last by price_asc, first by price_desc), pages never repeat,
    and the count is the capped 1,000."""
    filler = [
        product(
            f"GD-{i:05d}",
            name=f"Desk Tray {i}",
            description="Holds a gadget.",
            category="office",
            price_cents=100 + i,
            attributes={},
        )
        for i in range(1001)
    ]
    await upsert(client, filler)
    await upsert(
        client, [product("GD-NAMED", name="Gadget", category="office", price_cents=99_999)]
    )
    for sort, position in (("price_asc", -1), ("price_desc", 0)):
        found = await walk(client, key, {"query": "gadget", "sort": sort}, limit=100)
        skus = skus_of(found)
        assert len(skus) == len(set(skus)) == 1000, (sort, len(skus))
        assert skus[position] == "GD-NAMED", sort
        prices = [(p["price_cents"], p["sku"]) for p in found]
        assert prices == sorted(prices, reverse=sort == "price_desc"), sort
    page = await search(client, key, {"query": "gadget", "sort": "price_asc"})
    assert page["pagination"]["total_count_capped"] is True


async def test_a_capped_query_sorted_by_price_sorts_its_best_matches(
    client: AsyncClient, key: str
) -> None:
    await _check_capped_price_sort(client, key)


async def test_sqlite_a_capped_query_sorted_by_price_sorts_its_best_matches(
    sqlite_client: tuple[AsyncClient, str],
) -> None:
    await _check_capped_price_sort(*sqlite_client)


# --- edits reach what the tiers filter and rank on ---------------------------------------------


async def _check_edits_reach_search(client: AsyncClient, key: str) -> None:
    """A price, brand, category or name change is what the next search filters, scores and
    facets on (SQLite reads these from the facts its triggers keep beside the FTS rowids)."""
    await upsert(
        client,
        [
            product("ED-1", name="Walnut Kettle", category="kitchen", price_cents=3000,
                    attributes={"brand": "Oakhouse"}),
            product("ED-2", name="Walnut Kettle Deluxe Edition", category="kitchen",
                    price_cents=5000, attributes={"brand": "Oakhouse"}),
        ],
    )  # fmt: skip

    async def found(**filters: Any) -> list[str]:
        body = {"query": "walnut kettle", "filters": filters, "facets": True}
        return skus_of((await search(client, key, body))["products"])

    assert await found(price={"max": 4000}) == ["ED-1"]
    # the shorter name ranks first among equals
    assert await found() == ["ED-1", "ED-2"]
    await upsert(
        client,
        [
            product("ED-1", name="Walnut Kettle With A Much Longer Name Now", category="tea",
                    price_cents=9000, attributes={"brand": "Birchwood"}),
        ],
    )  # fmt: skip
    assert await found(price={"max": 4000}) == []
    assert await found(price={"min": 8000}) == ["ED-1"]
    assert await found(brands=["birchwood"]) == ["ED-1"]
    assert await found(brands=["oakhouse"]) == ["ED-2"]
    assert await found(categories=["tea"]) == ["ED-1"]
    assert await found() == ["ED-2", "ED-1"]
    facets = (await search(client, key, {"query": "walnut kettle", "facets": True}))["facets"]
    assert {f["value"]: f["count"] for f in facets["categories"]} == {"kitchen": 1, "tea": 1}
    assert {f["value"] for f in facets["brands"]} == {"Birchwood", "Oakhouse"}
    # a price change alone (the FTS index is not rewritten for it)
    await upsert(client, [product("ED-2", name="Walnut Kettle Deluxe Edition",
                                  category="kitchen", price_cents=100,
                                  attributes={"brand": "Oakhouse"})])  # fmt: skip
    assert await found(price={"max": 200}) == ["ED-2"]
    by_price = await search(client, key, {"query": "walnut kettle", "sort": "price_asc"})
    assert skus_of(by_price["products"]) == ["ED-2", "ED-1"]


async def test_edits_reach_search(client: AsyncClient, key: str) -> None:
    await _check_edits_reach_search(client, key)


async def test_sqlite_edits_reach_search(sqlite_client: tuple[AsyncClient, str]) -> None:
    await _check_edits_reach_search(*sqlite_client)


async def test_sqlite_text_attribute_filter_matches_every_spelling_python_lowers(
    sqlite_client: tuple[AsyncClient, str],
) -> None:
    """SQLite finds a text filter's candidates by an ASCII-case-insensitive index; a value is
    still matched whenever Python's `lower` makes it equal, including the Kelvin sign (its one
    non-ASCII character that lowers to ASCII) and a k at the start, where the index can't help."""
    client, key = sqlite_client
    colours = {"K-1": "BLACK", "K-2": "blac\u212a", "K-3": "\u212aeen", "K-4": "Blackish",
               "K-5": "Éclat", "K-6": "kEEN"}  # fmt: skip
    await upsert(
        client,
        [product(sku, name="Colour Probe", attributes={"color": c}) for sku, c in colours.items()],
    )

    async def matching(value: str) -> list[str]:
        body = {
            "query": "colour probe",
            "filters": {"attributes": [{"name": "color", "value": value}]},
        }
        return sorted(skus_of((await search(client, key, body))["products"]))

    assert await matching("black") == ["K-1", "K-2"]
    assert await matching("Keen") == ["K-3", "K-6"]
    assert await matching("éCLAT") == ["K-5"]
    assert await matching("blac") == []


async def test_sqlite_suggests_without_the_trigram_index(
    sqlite_client: tuple[AsyncClient, str], tmp_path: Path
) -> None:
    """Where SQLite has no trigram tokenizer (before 3.34) migration 0008 skips the word index;
    spelling suggestions then test every listed word, and say the same."""
    client, key = sqlite_client
    with sqlite3.connect(tmp_path / "search.db") as db:  # as that migration leaves it
        db.execute("DROP TRIGGER search_words_trgm_ai")
        db.execute("DROP TRIGGER search_words_trgm_ad")
        db.execute("DROP TABLE search_words_trgm")
    await upsert(client, [product("TY-1", name="Wireless Headphones", category="audio")])
    found = await search(client, key, {"query": "hedphones"})
    assert skus_of(found["products"]) == ["TY-1"]
    assert [m["code"] for m in found["messages"]] == ["did_you_mean", "corrected_query"]
    assert found["messages"][0]["suggestion"] == "headphones"
