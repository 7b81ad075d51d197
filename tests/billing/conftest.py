"""Billing fixtures: an API app and the webhook function's app configured for Stripe, a respx
mock standing in for Stripe's API (answers shaped from Stripe's own example objects), the
bootstrap's price ids, and webhook deliveries signed by Stripe's own signing code."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
import respx
import stripe
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response

from app.billing.webhook_app import create_webhook_app
from app.core.config import Settings
from tests.conftest import database_url, make_settings
from tests.support import stripe_objects as so
from tests.support.upstash_bridge import UpstashBridge

STRIPE_BASE = "https://stripe.test"
WEBHOOK_SECRET = "whsec_test_0123456789abcdef"
MONTHLY_PRICE = "price_agentmall_monthly"
METERED_PRICE = "price_agentmall_overage"
BUCKET_S, SETTLE_S = 1, 1  # usage settles seconds after a call, so a test can flush it
PERIOD_START = (int(time.time()) // 86_400 - 1) * 86_400  # a paid period that contains now


@pytest.fixture
def settings(
    backend: str, redis_prefix: str, bridge: UpstashBridge, raw_redis: aioredis.Redis
) -> Settings:
    return make_settings(
        backend,
        redis_prefix,
        bridge.url,
        STRIPE_SECRET_KEY="sk_test_agentmall0123456789",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=STRIPE_BASE,
        USAGE_BUCKET_SECONDS=BUCKET_S,
        USAGE_SETTLE_AFTER_SECONDS=SETTLE_S,
    )


@pytest.fixture
async def bootstrapped(clean_database: None) -> None:
    """The ids the bootstrap command stores."""
    conn = await asyncpg.connect(database_url())
    for key, value in {
        "pro_monthly_price_id": MONTHLY_PRICE,
        "pro_metered_price_id": METERED_PRICE,
        "pro_product_id": "agentmall_pro",
        "meter_id": "mtr_test",
        "meter_event_name": "agentmall_api_call",
    }.items():
        await conn.execute(
            "INSERT INTO billing_settings (key, value, updated_at) VALUES ($1, $2, now())",
            key,
            value,
        )
    await conn.close()


@pytest.fixture
def stripe_api() -> Iterator[respx.MockRouter]:
    """Stripe's API (only what a test routes answers; anything else fails the test)."""
    with respx.mock(assert_all_called=False) as mock:
        for host in ("127.0.0.1", "localhost"):  # Redis through the Upstash bridge is real
            mock.route(host=host).pass_through()
        yield mock


class FakeSubscriptions:
    """Subscriptions as Stripe holds them now: what `GET /v1/subscriptions/{id}` answers."""

    def __init__(self, mock: respx.MockRouter) -> None:
        self.current: dict[str, dict[str, Any]] = {}
        mock.get(url__regex=STRIPE_BASE + r"/v1/subscriptions/(?P<sid>[^/?]+)").mock(
            side_effect=self._get
        )
        mock.get(f"{STRIPE_BASE}/v1/subscriptions").mock(side_effect=self._list)

    def _get(self, request: Any, sid: str) -> Response:
        if sid not in self.current:
            body = {"error": {"type": "invalid_request_error", "code": "resource_missing"}}
            return Response(404, json=body)
        return Response(200, json=self.current[sid])

    def _list(self, request: Any) -> Response:
        customer = request.url.params.get("customer")
        data = [s for s in self.current.values() if s["customer"] == customer]
        return Response(200, json=so.listing(data, "/v1/subscriptions"))

    def put(
        self,
        *,
        customer: str,
        account_id: str,
        status: str = "active",
        start: int | None = None,
        end: int | None = None,
        sid: str | None = None,
    ) -> dict[str, Any]:
        """Set (or change) a Pro subscription's state (period: yesterday + 30 days by default)."""
        start = start or PERIOD_START
        end = end or start + 30 * 86_400
        sub = so.subscription(
            customer=customer,
            status=status,
            metadata={"account_id": account_id, "plan": "pro"},
        )
        if sid:
            sub["id"] = sid
        item = sub["items"]["data"][0]
        item["price"] = so.price(id=MONTHLY_PRICE, lookup_key="agentmall_pro_monthly")
        item["current_period_start"], item["current_period_end"] = start, end
        item["subscription"] = sub["id"]
        sub["items"]["data"] = [item]
        self.current[sub["id"]] = sub
        return sub


@pytest.fixture
def subscriptions(stripe_api: respx.MockRouter) -> FakeSubscriptions:
    return FakeSubscriptions(stripe_api)


@pytest.fixture
async def webhook_app(settings: Settings, clean_database: None) -> AsyncIterator[FastAPI]:
    app = create_webhook_app(settings)
    yield app
    await app.state.redis.close()
    await app.state.db.dispose()


@pytest.fixture
async def hooks(webhook_app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(transport=ASGITransport(webhook_app), base_url="http://hooks") as c:
        yield c


def signed(event: dict[str, Any], *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None):
    """(body, headers) of a delivery signed the way Stripe signs it."""
    body = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp)
    return body.encode(), {"Stripe-Signature": header, "Content-Type": "application/json"}


async def deliver(hooks: AsyncClient, event: dict[str, Any]) -> Any:
    body, headers = signed(event)
    return await hooks.post("/v1/stripe/webhook", content=body, headers=headers)
