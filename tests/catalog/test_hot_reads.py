"""Hot product reads (app/catalog/reads.py, versions.py, cache.py): a warm read is the gate's one
Redis command and no SQL, and a change is seen on the next request on every instance — through
every write path, with concurrent writers, after a writer died between COMMIT and settle, and
after Redis lost the versions. Both production Redis adapters (Redis URL and Upstash REST)."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.catalog import versions
from app.catalog.cache import ProductCache
from app.catalog.importer import import_rows
from app.core.config import Settings
from app.main import create_app
from app.redis.port import RedisUnavailable
from tests.support.factories import ADMIN, key_headers, make_account, product

SYNC = "/v1/admin/inventory/sync"
UPSERT = "/v1/admin/products"


class Counted:
    """Redis commands the app sends (each script call is one) and SQL statements it runs."""

    def __init__(self, app: FastAPI) -> None:
        self.services = app.state.services
        self.redis_calls = 0
        port = self.services.redis
        call = port._call

        async def counting(fn: Any, *args: Any) -> Any:
            self.redis_calls += 1
            return await call(fn, *args)

        port._call = counting

    @asynccontextmanager
    async def delta(self) -> AsyncIterator[dict[str, int]]:
        seen: dict[str, int] = {}
        redis_before, sql_before = self.redis_calls, self.services.db.queries.count
        yield seen
        seen["redis"] = self.redis_calls - redis_before
        seen["sql"] = self.services.db.queries.count - sql_before


@asynccontextmanager
async def instance(settings: Settings) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """Another app instance on the same PostgreSQL and Redis (a second serverless instance)."""
    app = create_app(settings)
    transport = ASGITransport(app=app, client=("203.0.113.9", 50000))
    try:
        async with AsyncClient(transport=transport, base_url="http://test") as client:
            yield app, client
    finally:
        await app.state.services.close()


@pytest.fixture
async def key(client: AsyncClient) -> str:
    _, api_key = await make_account(client, plan="pro")
    return api_key


async def upsert(client: AsyncClient, *items: dict[str, Any]) -> None:
    response = await client.put(UPSERT, json={"products": list(items)}, headers=ADMIN)
    assert response.status_code == 200, response.text


async def read(client: AsyncClient, key: str, sku: str) -> dict[str, Any]:
    response = await client.get(f"/v1/products/{sku}", headers=key_headers(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def bulk(client: AsyncClient, key: str, skus: list[str]) -> dict[str, Any]:
    response = await client.post("/v1/products/bulk", json={"skus": skus}, headers=key_headers(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- warm reads: one command, no SQL -----------------------------------------------------------


async def test_a_warm_read_is_the_gates_one_command_and_no_sql(
    app: FastAPI, client: AsyncClient, key: str
) -> None:
    await upsert(client, product("HOT-1", price_cents=1234, stock=5))
    counted = Counted(app)
    first = await read(client, key, "HOT-1")  # cold: PostgreSQL once (and the field seeded)
    for _ in range(3):
        async with counted.delta() as cost:
            again = await read(client, key, "HOT-1")
        assert again == first
        assert cost == {"redis": 1, "sql": 0}
    assert first["price_cents"] == 1234 and first["stock"] == 5


async def test_a_bulk_read_of_100_skus_is_one_command_and_no_sql_when_warm(
    app: FastAPI, client: AsyncClient, key: str
) -> None:
    skus = [f"BULK-{i:03d}" for i in range(100)]
    await upsert(client, *(product(sku, price_cents=100 + i) for i, sku in enumerate(skus)))
    counted = Counted(app)
    wanted = [*skus[:99], "NO-SUCH-SKU"]
    first = await bulk(client, key, wanted)
    assert [p["sku"] for p in first["data"]] == skus[:99] and first["not_found"] == ["NO-SUCH-SKU"]
    async with counted.delta() as cost:
        again = await bulk(client, key, wanted)
    assert again == first
    assert cost == {"redis": 1, "sql": 0}


async def test_the_cached_answers_are_the_bytes_postgresql_would_give(
    settings: Settings, client: AsyncClient, key: str
) -> None:
    """A copy is the same JSON an instance with no copies answers, for one SKU and a bulk."""
    await upsert(client, product("SAME-1", attributes={"color": "red", "n": 1.5}, stock=3))
    await read(client, key, "SAME-1")
    cached = await client.get("/v1/products/SAME-1", headers=key_headers(key))
    cached_bulk = await client.post(
        "/v1/products/bulk", json={"skus": ["SAME-1", "NOPE"]}, headers=key_headers(key)
    )
    cold = settings.model_copy(update={"PRODUCT_CACHE_MAX_ENTRIES": 0})
    async with instance(cold) as (_, other):
        fresh = await other.get("/v1/products/SAME-1", headers=key_headers(key))
        fresh_bulk = await other.post(
            "/v1/products/bulk", json={"skus": ["SAME-1", "NOPE"]}, headers=key_headers(key)
        )
    assert cached.content == fresh.content
    assert cached_bulk.content == fresh_bulk.content


# --- never stale -------------------------------------------------------------------------------


async def _write_paths(
    client: AsyncClient, app: FastAPI
) -> list[tuple[str, Callable[[int], Awaitable[None]]]]:
    async def admin_upsert(price: int) -> None:
        await upsert(client, product("PATH-1", price_cents=price, stock=price))

    async def inventory_sync(price: int) -> None:
        body = {"items": [{"sku": "PATH-1", "stock": price, "price_cents": price}]}
        response = await client.post(SYNC, json=body, headers=ADMIN)
        assert response.status_code == 200, response.text

    async def importer(price: int) -> None:
        row = product("PATH-1", price_cents=price, stock=price)
        report = await import_rows(app.state.services.db, [(1, row)], progress=False)
        assert report.imported == 1, report

    return [
        ("admin upsert", admin_upsert),
        ("inventory sync", inventory_sync),
        ("importer", importer),
    ]


async def test_every_write_path_is_seen_by_every_instance_on_its_next_request(
    settings: Settings, app: FastAPI, client: AsyncClient, key: str
) -> None:
    await upsert(client, product("PATH-1", price_cents=1, stock=1))
    price = 1
    async with instance(settings) as (_, other):
        for name, write in await _write_paths(client, app):
            for _ in range(2):
                # both instances hold a copy of the current state ...
                assert (await read(client, key, "PATH-1"))["price_cents"] == price
                assert (await read(other, key, "PATH-1"))["price_cents"] == price
                price += 1
                await write(price)  # ... then one writes through this path
                for reader in (other, client):
                    seen = await read(reader, key, "PATH-1")
                    assert (seen["price_cents"], seen["stock"]) == (price, price), name


async def test_a_product_created_after_a_miss_is_read_by_the_next_request(
    client: AsyncClient, key: str
) -> None:
    """A SKU with no product is kept too (as not found): creating it changes its version."""
    assert (await client.get("/v1/products/LATE-1", headers=key_headers(key))).status_code == 404
    assert (await client.get("/v1/products/LATE-1", headers=key_headers(key))).status_code == 404
    assert (await bulk(client, key, ["LATE-1"]))["not_found"] == ["LATE-1"]
    await upsert(client, product("LATE-1", price_cents=77))
    assert (await read(client, key, "LATE-1"))["price_cents"] == 77
    assert [p["sku"] for p in (await bulk(client, key, ["LATE-1"]))["data"]] == ["LATE-1"]


async def test_a_write_to_another_spelling_of_the_sku_changes_the_case_insensitive_read(
    client: AsyncClient, key: str
) -> None:
    await upsert(client, product("case-1", price_cents=10))
    assert (await read(client, key, "CASE-1"))["sku"] == "case-1"
    await upsert(client, product("CASE-1", price_cents=20))  # an exact-case match now exists
    seen = await read(client, key, "CASE-1")
    assert (seen["sku"], seen["price_cents"]) == ("CASE-1", 20)


async def test_concurrent_writers_and_two_alternating_instances_never_read_stale(
    settings: Settings, client: AsyncClient, key: str
) -> None:
    """Writers on two SKUs run at once; after each write returns, both instances must answer it
    (a read may see a newer write of another writer, never an older value)."""
    skus = ["RACE-A", "RACE-B"]
    await upsert(client, *(product(sku, price_cents=0) for sku in skus))
    async with instance(settings) as (_, other):
        readers = [client, other]

        async def writer(sku: str) -> None:
            for price in range(1, 16):
                await upsert(client, product(sku, price_cents=price))
                for turn in range(2):
                    seen = await read(readers[(price + turn) % 2], key, sku)
                    assert seen["price_cents"] == price, (sku, price, seen["price_cents"])

        async def background_reader() -> None:
            for i in range(60):
                await read(readers[i % 2], key, skus[i % 2])

        await asyncio.gather(writer("RACE-A"), writer("RACE-B"), background_reader())


async def test_a_writer_that_died_between_commit_and_settle_leaves_no_stale_copy(
    settings: Settings,
    app: FastAPI,
    client: AsyncClient,
    key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await upsert(client, product("CRASH-1", price_cents=1))
    counted = Counted(app)
    async with instance(settings) as (_, other):
        for reader in (client, other):
            assert (await read(reader, key, "CRASH-1"))["price_cents"] == 1

        async def died(*_: Any) -> None:
            raise RedisUnavailable("the writer's process ended here")

        monkeypatch.setattr(versions.ProductVersions, "settle", died)
        await upsert(client, product("CRASH-1", price_cents=2))  # committed, never settled
        monkeypatch.undo()
        for reader in (client, other, client):  # the pending mark: PostgreSQL, not copies
            assert (await read(reader, key, "CRASH-1"))["price_cents"] == 2
        async with counted.delta() as cost:
            await read(client, key, "CRASH-1")
        assert cost["sql"] == 1  # not cached while the mark may still be a live writer's

        monkeypatch.setattr(versions, "PENDING_TTL_MS", 0)  # the mark has expired
        assert (await read(client, key, "CRASH-1"))["price_cents"] == 2  # repairs the field
        async with counted.delta() as cost:
            assert (await read(client, key, "CRASH-1"))["price_cents"] == 2
        assert cost == {"redis": 1, "sql": 0}
        assert (await read(other, key, "CRASH-1"))["price_cents"] == 2


async def test_a_write_that_cannot_mark_its_products_is_refused_and_writes_nothing(
    client: AsyncClient, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await upsert(client, product("MARK-1", price_cents=1))
    assert (await read(client, key, "MARK-1"))["price_cents"] == 1

    async def away(*_: Any) -> str:
        raise RedisUnavailable("Redis is away")

    monkeypatch.setattr(versions.ProductVersions, "mark", away)
    response = await client.put(
        UPSERT, json={"products": [product("MARK-1", price_cents=2)]}, headers=ADMIN
    )
    assert response.status_code == 503
    assert response.json()["error"] == "catalog_write_unavailable"
    monkeypatch.undo()
    assert (await read(client, key, "MARK-1"))["price_cents"] == 1


async def test_versions_lost_by_redis_are_read_from_postgresql_and_seeded_again(
    app: FastAPI,
    client: AsyncClient,
    key: str,
    raw_redis: aioredis.Redis,
    settings: Settings,
) -> None:
    await upsert(client, product("LOST-1", price_cents=1))
    counted = Counted(app)
    await read(client, key, "LOST-1")
    hash_key = app.state.services.keys.product_versions
    await raw_redis.delete(hash_key)  # Redis lost the versions (a flush, an eviction)
    async with counted.delta() as cost:
        assert (await read(client, key, "LOST-1"))["price_cents"] == 1
    assert cost["sql"] == 1 and cost["redis"] == 2  # the gate's command, then the seed
    async with counted.delta() as cost:
        assert (await read(client, key, "LOST-1"))["price_cents"] == 1
    assert cost == {"redis": 1, "sql": 0}
    # a copy kept before the loss is never served under a version seeded after it
    await raw_redis.delete(hash_key)
    async with instance(settings) as (_, other):
        await upsert(other, product("LOST-1", price_cents=2))
    assert (await read(client, key, "LOST-1"))["price_cents"] == 2


async def test_a_reader_that_saw_nothing_does_not_seed_over_a_newer_write() -> None:
    """The seed is conditional: it fails when the field or the epoch changed since the read."""
    seen = versions.Seen(epoch="e1", values={"x-1": None}, now_ms=1)
    assert seen.repairable("X-1") == (True, "")
    assert seen.version("X-1") is None
    pending = versions.Seen(epoch="e1", values={"x-1": "p:1000:w"}, now_ms=1000 + 5)
    assert pending.repairable("X-1") == (False, "p:1000:w")
    expired = versions.Seen(
        epoch="e1", values={"x-1": "p:1000:w"}, now_ms=1000 + versions.PENDING_TTL_MS
    )
    assert expired.repairable("X-1") == (True, "p:1000:w")
    settled = versions.Seen(epoch="e1", values={"x-1": "t:abc"}, now_ms=1)
    assert settled.version("x-1") == "t:abc" and settled.repairable("X-1") == (False, "t:abc")


async def test_the_seed_script_takes_only_what_the_reader_saw(
    app: FastAPI, raw_redis: aioredis.Redis
) -> None:
    product_versions = app.state.services.product_versions
    hash_key = app.state.services.keys.product_versions
    await raw_redis.hset(hash_key, mapping={"@epoch": "e1", "b": "t:newer"})
    seen = versions.Seen(epoch="e1", values={"a": None, "b": None}, now_ms=0)
    seeded = await product_versions.seed(seen, [("a", ""), ("b", "")])
    assert set(seeded) == {"a"}  # "b" was written meanwhile: left alone
    assert await raw_redis.hget(hash_key, "b") == "t:newer"
    other_epoch = versions.Seen(epoch="e0", values={"c": None}, now_ms=0)
    assert await product_versions.seed(other_epoch, [("c", "")]) == {}
    assert await raw_redis.hget(hash_key, "c") is None


# --- the bound ---------------------------------------------------------------------------------


def test_the_cache_is_bounded_in_entries_and_bytes_least_recently_used_first() -> None:
    cache = ProductCache(max_entries=3, max_bytes=10_000)
    for sku in ("a", "b", "c"):
        cache.put(sku, "t:1", b"x" * 10)
    assert cache.get("a", "t:1") == b"x" * 10  # a is now the most recent
    cache.put("d", "t:1", b"y")
    assert len(cache) == 3 and cache.get("b", "t:1") is None  # b was the least recent
    assert cache.get("a", "t:2") is None  # another version is a miss

    small = ProductCache(max_entries=100, max_bytes=3 * ProductCache.size("k0", b"z" * 100))
    for i in range(10):
        small.put(f"k{i}", "t:1", b"z" * 100)
    assert len(small) == 3 and small.bytes <= small.max_bytes
    assert [small.get(f"k{i}", "t:1") is not None for i in (7, 8, 9)] == [True] * 3
    small.put("huge", "t:1", b"h" * 10_000)  # larger than the whole cache: not kept
    assert small.get("huge", "t:1") is None and len(small) == 3
    small.put("k9", "t:2", b"w")  # a newer version replaces the entry and its bytes
    assert small.get("k9", "t:1") is None and small.get("k9", "t:2") == b"w"
    assert small.bytes == sum(ProductCache.size(k, b) for k, (_, b) in small._entries.items())


async def test_a_disabled_cache_reads_postgresql_every_time(settings: Settings, key: str) -> None:
    off = settings.model_copy(update={"PRODUCT_CACHE_MAX_ENTRIES": 0})
    async with instance(off) as (app, client):
        await upsert(client, product("OFF-1", price_cents=5))
        counted = Counted(app)
        await read(client, key, "OFF-1")
        async with counted.delta() as cost:
            await read(client, key, "OFF-1")
        assert cost == {"redis": 1, "sql": 1}


async def test_a_settle_leaves_another_writers_live_mark_alone(
    app: FastAPI, raw_redis: aioredis.Redis
) -> None:
    """A writer that settles after another writer marked the same SKU must not hide that mark:
    if the other writer then died after its COMMIT, a version set here would be served with
    data from before that COMMIT. An expired mark (its writer long gone) is replaced."""
    product_versions = app.state.services.product_versions
    hash_key = app.state.services.keys.product_versions
    seconds, micros = await raw_redis.time()
    now_ms = seconds * 1000 + micros // 1000
    live, expired = f"p:{now_ms}:other", f"p:{now_ms - versions.PENDING_TTL_MS - 1}:other"
    mine = await product_versions.mark(["live", "expired", "mine"])
    await raw_redis.hset(hash_key, mapping={"live": live, "expired": expired})
    await product_versions.settle(mine, ["live", "expired", "mine"])
    assert await raw_redis.hget(hash_key, "live") == live
    for name in ("expired", "mine"):
        assert (await raw_redis.hget(hash_key, name) or "").startswith(versions.VERSION_PREFIX)
