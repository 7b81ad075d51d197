"""The Stripe bootstrap command against a stateful fake Stripe (respx) and the real database."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import respx

from app.billing import repository
from app.billing.bootstrap import (
    METER_EVENT_NAME,
    MONTHLY_LOOKUP_KEY,
    OVERAGE_LOOKUP_KEY,
    PRODUCT_ID,
    WEBHOOK_EVENTS,
    run,
)
from app.core.config import Settings
from tests.conftest import ROOT, database_url, make_settings
from tests.support import stripe_objects
from tests.support.fake_stripe import FakeStripe

STRIPE_BASE = "https://stripe.test"
STRIPE_KEY = "sk_test_bootstrap_0123456789abcdef"
WEBHOOK_URL = "https://api.agentmall.test/v1/stripe/webhook"

pytestmark = pytest.mark.usefixtures("clean_database")


@pytest.fixture
def fake(respx_mock: respx.MockRouter) -> FakeStripe:
    stripe = FakeStripe()
    stripe.install(respx_mock, STRIPE_BASE)
    return stripe


def bootstrap_settings(**extra: Any) -> Settings:
    values = {"STRIPE_SECRET_KEY": STRIPE_KEY, "STRIPE_API_BASE": STRIPE_BASE, **extra}
    return make_settings("embedded", "t:bootstrap:", **values)


async def bootstrap(settings: Settings | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await run(settings or bootstrap_settings(), out, err)
    return code, out.getvalue(), err.getvalue()


async def sql(query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url())
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def stored_ids() -> dict[str, str]:
    return {r["key"]: r["value"] for r in await sql("SELECT key, value FROM billing_settings")}


def by_lookup_key(fake: FakeStripe, lookup_key: str) -> dict[str, Any]:
    (price,) = [p for p in fake.prices.values() if p["lookup_key"] == lookup_key]
    return price


async def test_first_run_creates_product_prices_and_meter_and_stores_their_ids(
    fake: FakeStripe,
) -> None:
    code, out, err = await bootstrap()

    assert (code, err) == (0, "")
    assert fake.products[PRODUCT_ID]["name"] == "AgentMall Pro"
    (meter,) = fake.meters.values()
    assert meter["event_name"] == METER_EVENT_NAME
    assert meter["default_aggregation"] == {"formula": "sum"}
    assert meter["customer_mapping"] == {"type": "by_id", "event_payload_key": "stripe_customer_id"}
    assert meter["value_settings"] == {"event_payload_key": "value"}
    monthly = by_lookup_key(fake, MONTHLY_LOOKUP_KEY)
    assert (monthly["unit_amount"], monthly["currency"], monthly["product"]) == (
        4900,
        "usd",
        PRODUCT_ID,
    )
    assert monthly["recurring"]["usage_type"] == "licensed"
    overage = by_lookup_key(fake, OVERAGE_LOOKUP_KEY)
    assert overage["unit_amount_decimal"] == "0.2"  # 200 cents per 1,000 calls
    assert overage["recurring"]["usage_type"] == "metered"
    assert overage["recurring"]["meter"] == meter["id"]
    assert await stored_ids() == {
        repository.PRODUCT_ID: PRODUCT_ID,
        repository.MONTHLY_PRICE_ID: monthly["id"],
        repository.METERED_PRICE_ID: overage["id"],
        repository.METER_ID: meter["id"],
        repository.METER_EVENT_NAME: METER_EVENT_NAME,
    }
    assert out.count(" created ") == 4
    for text in (PRODUCT_ID, meter["id"], monthly["id"], overage["id"], WEBHOOK_URL):
        assert text in out
    assert all(event in out for event in WEBHOOK_EVENTS)
    assert "no free tier" in out and "50,000 included calls" in out


async def test_second_run_creates_nothing_and_says_unchanged(fake: FakeStripe) -> None:
    await bootstrap()
    first_ids = await stored_ids()
    seen = len(fake.requests)

    code, out, _ = await bootstrap()

    assert code == 0
    assert [r for r in fake.requests[seen:] if r.method == "POST"] == []
    assert out.count(" unchanged ") == 4 and " created " not in out
    assert await stored_ids() == first_ids
    assert (len(fake.products), len(fake.prices), len(fake.meters)) == (1, 2, 1)


async def test_new_overage_price_in_plans_table_creates_exactly_one_price(
    fake: FakeStripe,
) -> None:
    await bootstrap()
    old = by_lookup_key(fake, OVERAGE_LOOKUP_KEY)
    monthly = by_lookup_key(fake, MONTHLY_LOOKUP_KEY)
    await sql("UPDATE plans SET overage_cents_per_1000 = 300 WHERE code = 'pro'")
    seen = len(fake.posts())

    code, out, _ = await bootstrap()

    assert code == 0
    (created,) = [r for r in fake.posts()[seen:] if r.path == "/v1/prices"]
    assert created.params["transfer_lookup_key"] == "true"
    assert created.params["lookup_key"] == OVERAGE_LOOKUP_KEY
    assert created.params["unit_amount_decimal"] == "0.3"
    new = by_lookup_key(fake, OVERAGE_LOOKUP_KEY)
    assert new["id"] != old["id"] and new["recurring"]["meter"] == old["recurring"]["meter"]
    assert (old["active"], old["lookup_key"]) == (False, None)  # archived, key moved
    assert by_lookup_key(fake, MONTHLY_LOOKUP_KEY)["id"] == monthly["id"]
    assert (await stored_ids())[repository.METERED_PRICE_ID] == new["id"]
    assert (
        " replaced " in out and f"replaces {old['id']}" in out and "amount (cents) 0.2 → 0.3" in out
    )
    seen = len(fake.posts())
    assert (await bootstrap())[0] == 0
    assert fake.posts()[seen:] == []


async def test_new_quota_in_plans_table_changes_nothing_in_stripe(fake: FakeStripe) -> None:
    await bootstrap()
    await sql("UPDATE plans SET included_calls = 80000 WHERE code = 'pro'")
    seen = len(fake.posts())

    code, out, _ = await bootstrap()

    assert code == 0 and fake.posts()[seen:] == []
    assert "80,000 included calls" in out


async def test_existing_meter_is_found_beyond_the_first_page(fake: FakeStripe) -> None:
    ours = stripe_objects.meter(
        event_name=METER_EVENT_NAME,
        customer_mapping={"type": "by_id", "event_payload_key": "stripe_customer_id"},
    )
    fake.meters[ours["id"]] = ours  # the oldest, so listed last
    for n in range(120):
        other = stripe_objects.meter(event_name=f"other_event_{n}")
        fake.meters[other["id"]] = other

    code, out, _ = await bootstrap()

    assert code == 0
    assert fake.posts(r"/v1/billing/meters.*") == []
    assert any("starting_after" in r.params for r in fake.requests)  # read the second page
    assert by_lookup_key(fake, OVERAGE_LOOKUP_KEY)["recurring"]["meter"] == ours["id"]
    assert (await stored_ids())[repository.METER_ID] == ours["id"]


async def test_archived_product_and_inactive_meter_are_brought_back(fake: FakeStripe) -> None:
    fake.products[PRODUCT_ID] = stripe_objects.product(id=PRODUCT_ID, name="Old", active=False)
    meter = stripe_objects.meter(
        event_name=METER_EVENT_NAME,
        status="inactive",
        customer_mapping={"type": "by_id", "event_payload_key": "stripe_customer_id"},
    )
    fake.meters[meter["id"]] = meter

    code, out, _ = await bootstrap()

    assert code == 0
    assert fake.posts(r"/v1/products|/v1/billing/meters") == []  # nothing created
    assert fake.products[PRODUCT_ID]["active"] is True
    assert fake.products[PRODUCT_ID]["name"] == "AgentMall Pro"
    assert meter["status"] == "active"
    assert " updated " in out and " reactivated " in out


async def test_meter_mapping_customers_differently_stops_with_a_message(fake: FakeStripe) -> None:
    wrong = stripe_objects.meter(event_name=METER_EVENT_NAME)  # maps by `customer`
    fake.meters[wrong["id"]] = wrong

    code, out, err = await bootstrap()

    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and wrong["id"] in err and "customer_mapping" in err
    assert await stored_ids() == {}


async def test_missing_secret_key_exits_2_before_any_call(respx_mock: respx.MockRouter) -> None:
    code, out, err = await bootstrap(bootstrap_settings(STRIPE_SECRET_KEY=None))

    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "STRIPE_SECRET_KEY" in err
    assert not respx_mock.calls


async def test_missing_pro_plan_exits_2_before_any_call(fake: FakeStripe) -> None:
    await sql("DELETE FROM plans WHERE code = 'pro'")

    code, _, err = await bootstrap()

    assert code == 2 and "plan 'pro' not found" in err and err.count("\n") == 1
    assert fake.requests == []


async def test_stripe_server_error_exits_2_and_a_rerun_finishes(fake: FakeStripe) -> None:
    fake.fail("POST", r"/v1/billing/meters", status=500, times=1)

    code, out, err = await bootstrap()

    assert (code, out) == (2, "")
    assert err.startswith("error: Stripe:") and err.count("\n") == 1
    assert "Traceback" not in err
    assert await stored_ids() == {}
    code, out, _ = await bootstrap()  # the product created before the error is found again
    assert code == 0 and len(fake.products) == 1
    assert f"{PRODUCT_ID} " in out and out.count(" unchanged ") == 1


def test_command_line_without_key_exits_2_without_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "VERCEL"))}
    env.update(PYTHONPATH=ROOT, DATABASE_URL=database_url())
    result = subprocess.run(
        [sys.executable, "-m", "app.billing.bootstrap"],
        cwd=tmp_path,  # no .env here
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "STRIPE_SECRET_KEY" in result.stderr
