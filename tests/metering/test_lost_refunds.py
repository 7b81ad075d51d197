"""A failed call's refund that Redis did not confirm (it never arrived, or its answer was lost):
the instance records a void by request id, and the settlement asks Redis whether the refund ran,
so the failed call is never billed and never refunded twice."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from app.gate.scripts import REFUND
from app.redis.port import RedisUnavailable
from tests.metering.paid import make_paid, now_s, wait_until_settled
from tests.metering.test_flush import FakeMeter
from tests.support.factories import key_headers, make_products, set_plan

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


async def _three_calls_then_a_404(
    app: FastAPI, client: AsyncClient, pg: asyncpg.Connection, refund: Any
) -> tuple[str, str]:
    """Pro includes 2 calls; 3 successes (true overage 1), then a 404 whose REFUND goes through
    `refund(original, keys, args)` instead of the port. Returns (customer, key)."""
    (sku,) = await make_products(client, 1)
    await set_plan(client, "pro", included_calls=2)
    start = now_s() - timedelta(days=1)
    _, key, customer = await make_paid(client, pg, start=start, end=start + timedelta(days=30))
    headers = key_headers(key)
    for _ in range(3):
        assert (await client.get(f"/v1/products/{sku}", headers=headers)).status_code == 200
    redis = app.state.services.gate.redis
    original = redis.run_script

    async def route(script: Any, keys: Any, args: Any) -> Any:
        if script is REFUND:
            return await refund(original, keys, args)
        return await original(script, keys, args)

    redis.run_script = route
    try:
        failed = await client.get("/v1/products/NOPE-404", headers=headers)
    finally:
        redis.run_script = original
    assert failed.status_code == 404
    return customer, key


@pytest.mark.parametrize("ran", [False, True], ids=["never-ran", "answer-lost"])
async def test_a_failed_call_whose_refund_redis_did_not_confirm_is_billed_never(
    app: FastAPI,
    client: AsyncClient,
    pg: asyncpg.Connection,
    stripe_meter: FakeMeter,
    ran: bool,
) -> None:
    """never-ran: before the fix the 404 stayed counted in Redis and was billed (overage 2).
    answer-lost: the refund did run; the void must not take the call back a second time."""

    async def unconfirmed(original: Any, keys: Any, args: Any) -> Any:
        if ran:
            await original(REFUND, keys, args)
        raise RedisUnavailable("no answer from Redis")

    customer, key = await _three_calls_then_a_404(app, client, pg, unconfirmed)
    await wait_until_settled(client)
    assert stripe_meter.totals() == {customer: 1}
    usage = (await client.get("/v1/usage", headers=key_headers(key))).json()
    assert usage["used"] == 3  # answer-lost before the fix of the script: 2 (refunded twice)


async def test_a_refund_that_reaches_redis_after_the_settlement_changes_nothing(
    app: FastAPI, client: AsyncClient, pg: asyncpg.Connection, stripe_meter: FakeMeter
) -> None:
    """The refund was still on its way when the settlement took the call back in PostgreSQL:
    when it runs at last, Redis must not take it back again."""
    late: list[tuple[Any, Any, Any]] = []

    async def held_back(original: Any, keys: Any, args: Any) -> Any:
        late.append((original, keys, args))
        raise RedisUnavailable("timed out; the command is still queued")

    customer, key = await _three_calls_then_a_404(app, client, pg, held_back)
    await wait_until_settled(client)
    assert stripe_meter.totals() == {customer: 1}
    ((original, keys, args),) = late
    assert await original(REFUND, keys, args) == 3  # settled already: nothing done
    await wait_until_settled(client)
    assert stripe_meter.totals() == {customer: 1}
