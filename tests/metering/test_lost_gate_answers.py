"""A gate call whose answer is lost (it ran in Redis; the reply timed out): the instance goes on
without it, so only the settlement by request id can say whether the call was counted. A failed
call (or one refused because the limiter fails closed) is recorded as a void that takes back what
Redis counted, before its admission bucket can be billed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from app.gate.scripts import GATE
from app.redis.port import RedisUnavailable
from tests.metering.paid import make_paid, now_s, wait_until_settled
from tests.metering.test_flush import FakeMeter
from tests.support.factories import key_headers, make_products, set_plan

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


async def test_a_failed_call_whose_gate_answer_was_lost_is_not_billed(
    app: FastAPI, client: AsyncClient, pg: asyncpg.Connection, stripe_meter: FakeMeter
) -> None:
    """The gate script ran in Redis (the call is counted there, in an admission bucket), but its
    answer arrived after REDIS_TIMEOUT_MS: the instance serves the call fail-open. The handler
    answers 404, so nothing may be billed for it. Today the degraded path neither records nor
    refunds a failed call, so the Redis admission settles and Stripe bills the 404."""
    (sku,) = await make_products(client, 1)
    await set_plan(client, "pro", included_calls=2)
    start = now_s() - timedelta(days=1)
    _, key, customer = await make_paid(client, pg, start=start, end=start + timedelta(days=30))
    headers = key_headers(key)
    for _ in range(3):  # 3 successful calls: true overage 1
        assert (await client.get(f"/v1/products/{sku}", headers=headers)).status_code == 200

    redis = app.state.services.gate.redis
    original = redis.run_script
    lost = {"done": False}

    async def lose_the_gate_answer(script: Any, keys: Any, args: Any) -> Any:
        reply = await original(script, keys, args)
        if script is GATE and not lost["done"]:
            lost["done"] = True
            raise RedisUnavailable("timed out reading the reply")  # it ran; the answer is lost
        return reply

    redis.run_script = lose_the_gate_answer
    try:
        failed = await client.get("/v1/products/NOPE-404", headers=headers)
    finally:
        redis.run_script = original
    assert failed.status_code == 404
    assert failed.headers.get("x-ratelimit-degraded") == "1"

    await wait_until_settled(client)
    assert stripe_meter.totals() == {customer: 1}  # before the void: 2 (the 404 was billed)
    usage = (await client.get("/v1/usage", headers=headers)).json()
    assert usage["used"] == 3


@pytest.mark.parametrize("mode", ["open", "closed"])
async def test_a_call_refused_or_failed_while_redis_answers_late_is_never_billed(
    app: FastAPI,
    client: AsyncClient,
    pg: asyncpg.Connection,
    stripe_meter: FakeMeter,
    mode: str,
) -> None:
    """Fail-closed: the client got 503, yet the script counted it. Fail-open with a lost answer
    and a success, then a gate call that never reached Redis and failed: each settles right."""
    (sku,) = await make_products(client, 1)
    await set_plan(client, "pro", included_calls=1)
    start = now_s() - timedelta(days=1)
    _, key, customer = await make_paid(client, pg, start=start, end=start + timedelta(days=30))
    headers = key_headers(key)
    services = app.state.services
    services.settings = services.settings.model_copy(update={"RATE_LIMIT_FAILURE_MODE": mode})
    services.gate.settings = services.settings
    for _ in range(2):
        assert (await client.get(f"/v1/products/{sku}", headers=headers)).status_code == 200

    redis = services.gate.redis
    original = redis.run_script
    plan = {"lose": 1, "refuse": 0}

    async def flaky(script: Any, keys: Any, args: Any) -> Any:
        if script is GATE and plan["refuse"]:
            plan["refuse"] -= 1
            raise RedisUnavailable("never reached Redis")
        reply = await original(script, keys, args)
        if script is GATE and plan["lose"]:
            plan["lose"] -= 1
            raise RedisUnavailable("timed out reading the reply")
        return reply

    redis.run_script = flaky
    try:
        lost = await client.get(f"/v1/products/{sku}", headers=headers)
        plan["refuse"] = 1
        never = await client.get("/v1/products/NOPE", headers=headers)
    finally:
        redis.run_script = original
    if mode == "closed":  # both refused: neither may be billed, though Redis counted the first
        assert lost.status_code == never.status_code == 503
        expected = 1
    else:  # the success is billed once (it was counted in Redis), the failure not at all
        assert (lost.status_code, never.status_code) == (200, 404)
        expected = 2
    await wait_until_settled(client)
    assert stripe_meter.totals() == {customer: expected}
