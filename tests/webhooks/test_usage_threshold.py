"""`usage.threshold` events: the quota notices cron queues one per crossed threshold, once."""

from __future__ import annotations

import asyncpg
from httpx import AsyncClient
from standardwebhooks import Webhook

from app.core.config import Settings
from app.core.db import Database
from app.notices.service import notify
from app.webhooks.delivery import deliver
from tests.conftest import database_url
from tests.support.factories import make_account, set_plan
from tests.webhooks.conftest import Receiver, StubDNS, register


async def _roll_up(account_id: str, units: int) -> None:
    """Usage as the roll-up cron would have copied it (this calendar month: pro without Stripe)."""
    conn = await asyncpg.connect(database_url())
    await conn.execute(
        "INSERT INTO usage_rollups (account_id, period_start, day, endpoint, epoch, count, seq)"
        " VALUES ($1, date_trunc('month', now() at time zone 'utc') at time zone 'utc',"
        " (now() at time zone 'utc')::date, 'products.get', 'e1', $2, 1)",
        account_id,
        units,
    )
    await conn.close()


async def test_the_notices_cron_queues_one_event_per_crossed_threshold(
    client: AsyncClient, db: Database, settings: Settings, receiver: Receiver, dns: StubDNS
) -> None:
    await set_plan(client, "pro", included_calls=10)
    account_id, key = await make_account(client, plan="pro")
    created = await register(client, key, receiver.url(), ("usage.threshold",))
    await _roll_up(account_id, 12)  # 120 %: crosses 80, 100 and 120 at once
    await notify(db, settings)
    await notify(db, settings)  # a second run queues nothing new
    await deliver(db, settings, resolver=dns)
    events = [Webhook(created["secret"]).verify(r.body, r.headers) for r in receiver.requests]
    assert sorted(e["data"]["threshold"] for e in events) == [80, 100, 120]
    assert {e["type"] for e in events} == {"usage.threshold"}
    assert {e["data"]["used"] for e in events} == {12}
