"""Key resolution under key guessing: bounded Postgres work per address; real keys stay cached."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.context import KeyContext, PlanPolicy
from app.core.apikeys import KEY_PREFIX, hash_key
from app.core.config import Settings
from app.gate import keys as keys_module
from app.gate.cache import MISSING, KeyCache
from app.main import create_app
from tests.conftest import ADMIN_KEY, database_url, make_settings
from tests.support.factories import key_headers, make_account, make_products
from tests.support.settings import PATIENT_REDIS_TIMEOUT_MS
from tests.support.upstash_bridge import UpstashBridge

LIMIT = 5
ATTACKER = "198.51.100.66"
NEIGHBOUR = "192.0.2.10"


@pytest.fixture
def settings(
    backend: str, redis_prefix: str, bridge: UpstashBridge, raw_redis: aioredis.Redis
) -> Settings:
    """The shared app fixture, with a small allowance of failed lookups per address, and a Redis
    budget a loaded machine does not exceed: these tests count every refusal, and a call past
    the default 500 ms would put the port in its cooldown, where the limiter fails open."""
    return make_settings(
        backend,
        redis_prefix,
        bridge.url,
        INVALID_KEYS_PER_IP_PER_MINUTE=LIMIT,
        REDIS_TIMEOUT_MS=PATIENT_REDIS_TIMEOUT_MS,
    )


def random_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def sent_from(address: str, key: str) -> dict[str, str]:
    """Headers of a request from `address` (the test peer is a trusted proxy in the tests)."""
    return {"X-API-Key": key, "X-Forwarded-For": address}


async def statuses(client: AsyncClient, path: str, keys: list[str], address: str) -> list[int]:
    return [(await client.get(path, headers=sent_from(address, k))).status_code for k in keys]


async def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Let other tasks run until `condition` holds; fail (never hang) if it does not."""
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.001)


def context(key_id: str = "key_1", status: str = "active") -> KeyContext:
    plan = PlanPolicy("free", "Free", 1000, 10, frozenset({"catalog.read"}), True, 1)
    now = datetime.now(UTC)
    return KeyContext(key_id, status, "acct_1", "user", "none", None, None, 1, plan, now, 0)


async def test_random_keys_cost_at_most_the_allowance_in_queries(
    app: FastAPI, client: AsyncClient
) -> None:
    services = app.state.services
    before = services.db.queries.count
    first = await statuses(client, "/v1/products", [random_key() for _ in range(LIMIT)], ATTACKER)
    assert first == [401] * LIMIT
    assert services.db.queries.count - before == LIMIT  # one lookup per unknown key
    before = services.db.queries.count
    response = await client.get("/v1/products", headers=sent_from(ATTACKER, random_key()))
    assert response.status_code == 429
    body = response.json()
    assert body["error"] == "too_many_invalid_keys" and body["message"]
    assert 1 <= int(response.headers["retry-after"]) <= 60
    more = await statuses(client, "/v1/products", [random_key() for _ in range(20)], ATTACKER)
    assert more == [429] * 20
    assert services.db.queries.count == before  # refused before any query
    # another address has its own allowance
    assert await statuses(client, "/v1/products", [random_key()], NEIGHBOUR) == [401]


async def test_a_cached_key_keeps_working_from_a_flooding_address(
    app: FastAPI, client: AsyncClient
) -> None:
    (sku,) = await make_products(client, 1)
    _, key = await make_account(client)
    path = f"/v1/products/{sku}"
    assert await statuses(client, path, [key], ATTACKER) == [200]  # now cached
    await statuses(client, path, [random_key() for _ in range(LIMIT + 3)], ATTACKER)
    services = app.state.services
    redis_before, queries_before = services.redis.commands, services.db.queries.count
    assert await statuses(client, path, [key] * 5, ATTACKER) == [200] * 5
    assert services.redis.commands - redis_before == 5  # the gate script only
    assert services.db.queries.count - queries_before == 0  # key and product from the instance
    # a key this instance has not cached is refused from that address until the window ends
    _, cold = await make_account(client)
    assert await statuses(client, path, [cold], ATTACKER) == [429]
    assert await statuses(client, path, [cold], NEIGHBOUR) == [200]


async def test_a_valid_cold_key_does_not_spend_the_allowance(
    app: FastAPI, client: AsyncClient
) -> None:
    keys = [(await make_account(client))[1] for _ in range(LIMIT + 2)]
    assert await statuses(client, "/v1/products", keys, ATTACKER) == [200] * (LIMIT + 2)
    assert await statuses(client, "/v1/products", [random_key()], ATTACKER) == [401]


async def test_an_unknown_key_seen_before_is_refused_without_a_query(
    app: FastAPI, client: AsyncClient
) -> None:
    services = app.state.services
    key = random_key()
    assert await statuses(client, "/v1/products", [key], ATTACKER) == [401]
    before = services.db.queries.count
    repeats = await statuses(client, "/v1/products", [key] * (LIMIT + 1), ATTACKER)
    assert services.db.queries.count == before  # the negative cache answered
    assert repeats == [401] * (LIMIT - 1) + [429] * 2  # and every failure still counts


async def test_concurrent_requests_with_one_unknown_key_share_one_query(
    app: FastAPI, client: AsyncClient
) -> None:
    services = app.state.services
    key = random_key()
    before = services.db.queries.count
    responses = await asyncio.gather(
        *(client.get("/v1/products", headers=sent_from(ATTACKER, key)) for _ in range(3))
    )
    assert [r.status_code for r in responses] == [401] * 3
    assert services.db.queries.count - before == 1
    after = await statuses(client, "/v1/products", [random_key()] * 3, ATTACKER)
    assert after == [401, 401, 429]  # the 3 concurrent failures were all counted


async def test_random_keys_never_evict_a_real_key_from_the_cache(
    app: FastAPI, client: AsyncClient
) -> None:
    cache = KeyCache(60, max_entries=3, max_unknown=3)
    cache.put("real", context())
    for i in range(1000):
        cache.put(f"random-{i}", None)
    assert isinstance(cache.get("real"), KeyContext)
    assert cache.get("random-999") is None and cache.get("random-0") is MISSING
    cache.put("gone", context(status="revoked"))  # revoked keys are known-unusable
    assert cache.get("gone") is None and len(cache.known) == 1
    # the LRU end: the least recently used real key leaves first
    for name in ("a", "b"):
        cache.put(name, context(name))
    cache.get("real")
    cache.put("c", context("c"))
    assert cache.get("a") is MISSING and isinstance(cache.get("real"), KeyContext)
    # and the app's own cache, after a flood (the allowance is per address)
    _, key = await make_account(client)
    assert await statuses(client, "/v1/products", [key], NEIGHBOUR) == [200]
    for i in range(40):
        await statuses(client, "/v1/products", [random_key()], f"198.51.100.{i}")
    known = app.state.services.gate.cache.known
    assert hash_key(key) in known and len(known) == 1


async def test_a_key_created_through_this_instance_drops_a_negative_entry(
    app: FastAPI, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody can present a key before it exists (256 random bits); if someone did, the insert
    still clears the negative entry, so the new key works at once."""
    from app.accounts import service as accounts_service

    _, owner = await make_account(client)
    upcoming = random_key()
    assert await statuses(client, "/v1/products", [upcoming], NEIGHBOUR) == [401]
    assert app.state.services.gate.cache.get(hash_key(upcoming)) is None
    monkeypatch.setattr(accounts_service, "generate_key", lambda: upcoming)
    created = await client.post("/v1/keys", headers=key_headers(owner))
    assert created.status_code == 201 and created.json()["api_key"] == upcoming
    assert await statuses(client, "/v1/products", [upcoming], NEIGHBOUR) == [200]


async def test_the_control_plane_limits_unknown_keys_and_admin_guesses(
    app: FastAPI, client: AsyncClient
) -> None:
    services = app.state.services
    _, key = await make_account(client)
    before = services.db.queries.count
    account = await statuses(client, "/v1/account", [random_key() for _ in range(LIMIT)], ATTACKER)
    assert account == [401] * LIMIT and services.db.queries.count - before == LIMIT
    before = services.db.queries.count
    response = await client.get("/v1/account", headers=sent_from(ATTACKER, random_key()))
    assert response.status_code == 429 and response.json()["error"] == "too_many_invalid_keys"
    assert services.db.queries.count == before
    # a real key the instance has cached still works from there; the admin key is guessed
    # within the same kind of allowance, per address
    assert await statuses(client, "/v1/products", [key], NEIGHBOUR) == [200]
    assert await statuses(client, "/v1/account", [key], ATTACKER) == [200]
    guesses = [f"guess-{i}-0123456789abcdef" for i in range(LIMIT + 1)]
    guessed = await statuses(client, "/v1/admin/usage/top", guesses, "192.0.2.99")
    assert guessed == [401] * LIMIT + [429]
    assert await statuses(client, "/v1/admin/usage/top", [ADMIN_KEY], "192.0.2.99") == [429]
    assert await statuses(client, "/v1/admin/usage/top", [ADMIN_KEY], NEIGHBOUR) == [200]


async def test_reload_never_joins_a_load_that_had_started(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ordinary miss may share a load in flight; a reload (after STALE) must read afresh."""
    resolver = app.state.services.gate.resolver
    calls: list[asyncio.Event] = []
    versions = iter(range(1, 100))

    async def load(_: Any, *, key_hash: str, now: datetime) -> KeyContext:
        gate = asyncio.Event()
        calls.append(gate)
        version = next(versions)
        await gate.wait()
        return context(f"key_v{version}")

    monkeypatch.setattr(keys_module.accounts_repo, "load_key_context", load)
    key = random_key()
    miss = asyncio.create_task(resolver.resolve(None, key, NEIGHBOUR))
    joined = asyncio.create_task(resolver.resolve(None, key, NEIGHBOUR))
    await eventually(lambda: bool(calls))
    assert len(calls) == 1  # two misses, one load (it has started: it awaits Postgres now)
    reloads = [asyncio.create_task(resolver.reload(None, hash_key(key))) for _ in range(3)]
    await eventually(lambda: len(calls) >= 2)
    await asyncio.sleep(0.01)
    assert len(calls) == 2  # the reloads did not join it, and shared one load of their own
    late_miss = asyncio.create_task(resolver.resolve(None, key, NEIGHBOUR))
    await asyncio.sleep(0.01)
    assert len(calls) == 2  # a later miss joins the newest load
    for gate in calls:
        gate.set()
    assert (await miss)[1].key_id == (await joined)[1].key_id == "key_v1"
    assert {(await r).key_id for r in reloads} == {"key_v2"}  # type: ignore[union-attr]
    assert (await late_miss)[1].key_id == "key_v2"
    assert resolver.cache.get(hash_key(key)).key_id == "key_v2"  # the older load never wins


async def _idle_in_transaction() -> list[str]:
    """The test database's connections left idle inside a transaction (their last query)."""
    conn = await asyncpg.connect(database_url())
    try:
        rows = await conn.fetch(
            "SELECT query FROM pg_stat_activity WHERE datname = current_database()"
            " AND state = 'idle in transaction' AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return [str(row["query"]) for row in rows]


class _Requests:
    """Requests that resolve one key, each in its own unit of work (`Database.session`), paused
    inside the shared load between its two queries until `resume` is set."""

    def __init__(self, app: FastAPI, monkeypatch: pytest.MonkeyPatch, raw_key: str) -> None:
        self.services = app.state.services
        self.resolver = self.services.gate.resolver
        self.raw_key = raw_key
        self.sessions: list[AsyncSession] = []
        self.paused = 0
        self.resume = asyncio.Event()
        real = keys_module.accounts_repo.rolled_up_total

        async def rolled_up_total(session: AsyncSession, **kwargs: Any) -> int:
            self.paused += 1
            await self.resume.wait()
            return await real(session, **kwargs)

        # the key's second query: the first one (key, account, plan) has run on the session
        monkeypatch.setattr(keys_module.accounts_repo, "rolled_up_total", rolled_up_total)

    def start(self, path: str) -> asyncio.Task[KeyContext | None]:
        async def request() -> KeyContext | None:
            async with self.services.db.unit() as session:  # as a request's unit of work
                self.sessions.append(session)
                found = await self._resolve(path, session)
            return found

        return asyncio.create_task(request())

    def _resolve(self, path: str, session: AsyncSession) -> Awaitable[KeyContext | None]:
        if path == "reload":
            return self.resolver.reload(session, hash_key(self.raw_key))

        async def miss() -> KeyContext:
            return (await self.resolver.resolve(session, self.raw_key, NEIGHBOUR))[1]

        return miss()

    async def close(self) -> None:
        for session in self.sessions:  # a failed test must not leave a transaction behind
            await session.close()


@pytest.mark.parametrize("path", ["miss", "reload"])
async def test_a_cancelled_leader_takes_its_shared_load_with_it(
    app: FastAPI, client: AsyncClient, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """A load shared by concurrent requests runs on the session of the request that started it.
    When that request is cancelled mid-load, the load must not go on with the session after the
    request's unit of work has ended: its next query (the rolled-up usage) would open a connection
    nothing closes, idle in transaction, and the next TRUNCATE would wait for it forever. The
    request that joined the load still gets the key, from a load of its own."""
    _, key = await make_account(client)
    requests = _Requests(app, monkeypatch, key)
    try:
        leader, joiner = requests.start(path), requests.start(path)
        await eventually(lambda: requests.paused == 1)
        assert len(requests.resolver._flights) == 1  # one load: the joiner waits for it
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        leader_session = requests.sessions[0]
        assert not leader_session.in_transaction()  # its unit of work ended (rolled back)
        requests.resume.set()
        await asyncio.wait([joiner])
        assert not leader_session.in_transaction()  # nothing used the session afterwards
        assert await _idle_in_transaction() == []
        joined = joiner.result()  # not an error: it loaded the key for itself
        assert joined is not None and joined.key_status == "active"
        assert requests.paused == 2
    finally:
        requests.resume.set()
        await requests.close()


async def test_a_cancelled_joiner_leaves_the_shared_load_to_the_others(
    app: FastAPI, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, key = await make_account(client)
    requests = _Requests(app, monkeypatch, key)
    try:
        leader, quitter, joiner = (requests.start("miss") for _ in range(3))
        await eventually(lambda: requests.paused == 1)
        quitter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await quitter
        requests.resume.set()
        first, second = await leader, await joiner
        assert first is second is not None  # one load, shared
        assert requests.paused == 1
        assert await _idle_in_transaction() == []
    finally:
        requests.resume.set()
        await requests.close()


@pytest.fixture
async def redis_down_app(
    request: pytest.FixtureRequest, redis_prefix: str, clean_database: None
) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        "redis",
        redis_prefix,
        REDIS_URL="redis://127.0.0.1:1/0",
        RATE_LIMIT_FAILURE_MODE=request.param,
        INVALID_KEYS_PER_IP_PER_MINUTE=1,
    )
    app = create_app(settings)
    yield app
    await app.state.services.close()


@pytest.mark.parametrize(
    ("redis_down_app", "expected"), [("open", 401), ("closed", 503)], indirect=["redis_down_app"]
)
async def test_redis_down_applies_the_failure_mode(redis_down_app: FastAPI, expected: int) -> None:
    transport = ASGITransport(app=redis_down_app, client=("203.0.113.7", 50000))
    async with AsyncClient(transport=transport, base_url="http://t") as client:
        got = await statuses(client, "/v1/products", [random_key() for _ in range(3)], ATTACKER)
    assert got == [expected] * 3
