"""The outbox and the `deliver-webhooks` cron, against a real HTTP receiver on 127.0.0.1.

The schedule's clock is `now` (never slept); signatures are checked with the Standard Webhooks
reference library.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import respx
from httpx import ASGITransport, AsyncClient
from standardwebhooks import Webhook

from app.core.config import Settings
from app.core.db import Database
from app.core.embedded import migrate_embedded_database
from app.main import create_app
from app.models import utcnow
from app.webhooks import sender
from app.webhooks.delivery import MAX_ATTEMPTS, RETRY_SCHEDULE, deliver
from app.webhooks.guard import Target
from app.webhooks.outbox import usage_threshold
from app.webhooks.router import get_resolver
from tests.conftest import database_url, make_settings
from tests.support.factories import key_headers, make_account, set_account_plan
from tests.webhooks.conftest import (
    PUBLIC_IP,
    RECEIVER_NAME,
    Receiver,
    StubDNS,
    queue,
    register,
)


async def _attempts(client: AsyncClient, key: str, endpoint_id: str) -> list[dict[str, object]]:
    response = await client.get(f"/v1/webhooks/{endpoint_id}/attempts", headers=key_headers(key))
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def _endpoint(client: AsyncClient, key: str, endpoint_id: str) -> dict[str, object]:
    response = await client.get(f"/v1/webhooks/{endpoint_id}", headers=key_headers(key))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_delivery_is_signed_the_standard_webhooks_way_and_sent_once(
    client: AsyncClient, db: Database, settings: Settings, receiver: Receiver, dns: StubDNS
) -> None:
    account_id, key = await make_account(client, plan="pro")
    created = await register(client, key, receiver.url("/in?x=1"))
    assert await queue(db, "inventory.updated", {"sku": "SKU-1", "quantity": 3}) == 1

    result = await deliver(db, settings, resolver=dns)
    assert (result.job, result.claimed, result.delivered, result.due) == (
        "deliver-webhooks",
        1,
        1,
        0,
    )
    [request] = receiver.requests
    assert request.method == "POST" and request.path == "/in?x=1"
    assert request.headers["content-type"] == "application/json"
    event = Webhook(created["secret"]).verify(request.body, request.headers)
    assert event["type"] == "inventory.updated"
    assert event["data"] == {"sku": "SKU-1", "quantity": 3}
    assert event["id"] == request.headers["webhook-id"]
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    signature = request.headers["webhook-signature"]
    assert signature.startswith("v1,")
    assert signature == sender.sign(
        created["secret"],
        request.headers["webhook-id"],
        int(request.headers["webhook-timestamp"]),
        request.body,
    )

    again = await deliver(db, settings, resolver=dns)
    assert again.claimed == 0 and len(receiver.requests) == 1
    [attempt] = await _attempts(client, key, created["id"])
    assert attempt["status_code"] == 200 and attempt["succeeded"] is True
    assert attempt["error"] is None and isinstance(attempt["latency_ms"], int)
    assert attempt["event_type"] == "inventory.updated" and attempt["attempt"] == 1


async def test_enqueue_fans_out_to_enabled_subscribed_endpoints_only(
    client: AsyncClient, db: Database, receiver: Receiver
) -> None:
    first, first_key = await make_account(client, plan="pro")
    second, second_key = await make_account(client, plan="pro")
    await register(client, first_key, receiver.url("/a"), ("inventory.updated",))
    await register(client, second_key, receiver.url("/b"), ("inventory.updated", "usage.threshold"))
    assert await queue(db, "inventory.updated", {"sku": "X"}) == 2  # catalog-wide
    assert await queue(db, "inventory.updated", {"sku": "X"}, account_id=first) == 1
    assert await queue(db, "product.updated", {"sku": "X"}) == 0  # nobody subscribed
    await set_account_plan(client, second, "free")  # downgraded: its endpoints fall silent
    assert await queue(db, "inventory.updated", {"sku": "X"}) == 1
    await set_account_plan(client, second, "pro")
    async with db.unit() as session:
        period_end = utcnow() + timedelta(days=3)
        assert (
            await usage_threshold(
                session, account_id=first, threshold=80, used=800, quota=1000, period_end=period_end
            )
            == 0
        )
        assert (
            await usage_threshold(
                session,
                account_id=second,
                threshold=100,
                used=1000,
                quota=1000,
                period_end=period_end,
            )
            == 1
        )


async def test_usage_threshold_event_shape(
    client: AsyncClient, db: Database, settings: Settings, receiver: Receiver, dns: StubDNS
) -> None:
    account_id, key = await make_account(client, plan="pro")
    created = await register(client, key, receiver.url(), ("usage.threshold",))
    async with db.unit() as session:
        period_end = utcnow().replace(microsecond=0) + timedelta(days=3)
        await usage_threshold(
            session, account_id=account_id, threshold=80, used=8, quota=10, period_end=period_end
        )
    await deliver(db, settings, resolver=dns)
    event = Webhook(created["secret"]).verify(
        receiver.requests[0].body, receiver.requests[0].headers
    )
    assert event["type"] == "usage.threshold"
    assert event["data"] == {
        "account_id": account_id,
        "threshold": 80,
        "used": 8,
        "quota": 10,
        "period_end": period_end.isoformat().replace("+00:00", "Z"),
    }


async def test_failures_back_off_on_the_standard_schedule_then_give_up(
    client: AsyncClient, db: Database, settings: Settings, receiver: Receiver, dns: StubDNS
) -> None:
    _, key = await make_account(client, plan="pro")
    created = await register(client, key, receiver.url())
    receiver.default_status = 500
    await queue(db, "inventory.updated", {"sku": "X"})
    at = utcnow()
    assert (await deliver(db, settings, now=at, resolver=dns)).retrying == 1
    for delay in RETRY_SCHEDULE:
        early = await deliver(db, settings, now=at + delay - timedelta(seconds=1), resolver=dns)
        assert early.claimed == 0, delay  # not due yet
        at += delay
        await deliver(db, settings, now=at, resolver=dns)
    assert len(receiver.requests) == MAX_ATTEMPTS == 8
    later = await deliver(db, settings, now=at + timedelta(days=1), resolver=dns)
    assert later.claimed == 0 and len(receiver.requests) == 8  # given up
    attempts = await _attempts(client, key, created["id"])
    assert [a["attempt"] for a in attempts] == list(range(8, 0, -1))
    assert {(a["status_code"], a["error"], a["succeeded"]) for a in attempts} == {
        (500, "HTTP 500", False)
    }
    assert len({a["event_id"] for a in receiver_ids(receiver)}) == 1  # one webhook-id throughout
    assert (await _endpoint(client, key, created["id"]))["enabled"] is True  # ~28 h < 5 days


def receiver_ids(receiver: Receiver) -> list[dict[str, str]]:
    return [{"event_id": r.headers["webhook-id"]} for r in receiver.requests]


async def test_a_retry_that_succeeds_is_delivered(
    client: AsyncClient, db: Database, settings: Settings, receiver: Receiver, dns: StubDNS
) -> None:
    _, key = await make_account(client, plan="pro")
    created = await register(client, key, receiver.url())
    receiver.statuses = [502, 302, 200]
    await queue(db, "inventory.updated", {"sku": "X"})
    at = utcnow()
    await deliver(db, settings, now=at, resolver=dns)
    await deliver(db, settings, now=at + RETRY_SCHEDULE[0], resolver=dns)
    done = await deliver(db, settings, now=at + RETRY_SCHEDULE[0] + RETRY_SCHEDULE[1], resolver=dns)
    assert done.delivered == 1
    attempts = await _attempts(client, key, created["id"])
    assert [(a["status_code"], a["error"]) for a in attempts] == [
        (200, None),
        (302, "redirect not followed"),
        (502, "HTTP 502"),
    ]


async def test_an_endpoint_answering_410_is_disabled(
    client: AsyncClient, db: Database, settings: Settings, receiver: Receiver, dns: StubDNS
) -> None:
    _, key = await make_account(client, plan="pro")
    created = await register(client, key, receiver.url())
    receiver.statuses = [410]
    await queue(db, "inventory.updated", {"sku": "X"})
    result = await deliver(db, settings, resolver=dns)
    assert (result.failed, result.endpoints_disabled) == (1, 1)
    endpoint = await _endpoint(client, key, created["id"])
    assert endpoint["enabled"] is False
    assert "410" in str(endpoint["disabled_reason"]) and endpoint["disabled_at"]
    assert await queue(db, "inventory.updated", {"sku": "Y"}) == 0  # nothing more is queued
    test = await client.post(f"/v1/webhooks/{created['id']}/test", headers=key_headers(key))
    assert test.status_code == 409 and test.json()["error"] == "webhook_disabled"


async def test_an_endpoint_failing_for_five_days_is_disabled(
    client: AsyncClient, db: Database, settings: Settings, receiver: Receiver, dns: StubDNS
) -> None:
    _, key = await make_account(client, plan="pro")
    created = await register(client, key, receiver.url())
    receiver.default_status = 503
    at = utcnow() + timedelta(seconds=1)  # every queued event is due
    for day in range(5):  # an event a day, every attempt failing
        await queue(db, "inventory.updated", {"sku": f"X{day}"})
        await deliver(db, settings, now=at + timedelta(days=day), resolver=dns)
    assert (await _endpoint(client, key, created["id"]))["enabled"] is True
    await queue(db, "inventory.updated", {"sku": "Y"})
    result = await deliver(db, settings, now=at + timedelta(days=5, seconds=1), resolver=dns)
    assert result.endpoints_disabled == 1
    endpoint = await _endpoint(client, key, created["id"])
    assert endpoint["enabled"] is False
    assert "failing continuously since" in str(endpoint["disabled_reason"])
    conn = await asyncpg.connect(database_url())
    statuses = await conn.fetch("SELECT status FROM webhook_deliveries ORDER BY created_at")
    await conn.close()
    assert {r["status"] for r in statuses} <= {"cancelled", "failed"}


async def test_one_failure_after_a_quiet_week_does_not_disable(
    client: AsyncClient, db: Database, settings: Settings, receiver: Receiver, dns: StubDNS
) -> None:
    """Review finding: an old streak (never ended by a success) disabled an endpoint on the first
    failure after days without any delivery."""
    _, key = await make_account(client, plan="pro")
    created = await register(client, key, receiver.url())
    receiver.default_status = 503
    at = utcnow()
    await queue(db, "inventory.updated", {"sku": "X"})
    await deliver(db, settings, now=at, resolver=dns)  # fails: a streak starts
    await queue(db, "inventory.updated", {"sku": "Y"})
    result = await deliver(db, settings, now=at + timedelta(days=7), resolver=dns)  # fails once
    assert result.endpoints_disabled == 0
    assert (await _endpoint(client, key, created["id"]))["enabled"] is True


async def test_a_success_ends_the_failure_streak(
    client: AsyncClient, db: Database, settings: Settings, receiver: Receiver, dns: StubDNS
) -> None:
    _, key = await make_account(client, plan="pro")
    created = await register(client, key, receiver.url())
    receiver.statuses = [500, 200, 500]
    at = utcnow()
    await queue(db, "inventory.updated", {"sku": "X"})
    await deliver(db, settings, now=at, resolver=dns)
    await deliver(db, settings, now=at + timedelta(days=3), resolver=dns)  # succeeds
    await queue(db, "inventory.updated", {"sku": "Y"})
    await deliver(db, settings, now=at + timedelta(days=6), resolver=dns)  # fails: a new streak
    assert (await _endpoint(client, key, created["id"]))["enabled"] is True


async def test_a_hung_receiver_times_out(
    client: AsyncClient, db: Database, settings: Settings, receiver: Receiver, dns: StubDNS
) -> None:
    _, key = await make_account(client, plan="pro")
    created = await register(client, key, receiver.url())
    receiver.hang = True
    await queue(db, "inventory.updated", {"sku": "X"})
    started = time.monotonic()
    result = await deliver(db, settings, resolver=dns, timeout=0.5)
    assert time.monotonic() - started < 5
    assert result.retrying == 1 and len(receiver.requests) == 1
    [attempt] = await _attempts(client, key, created["id"])
    assert attempt["status_code"] is None and attempt["error"] == "timed out after 0.5 s"
    assert 400 <= int(str(attempt["latency_ms"])) < 5000


async def test_a_host_that_changes_its_answer_is_refused_at_delivery(
    client: AsyncClient, db: Database, settings: Settings, receiver: Receiver, dns: StubDNS
) -> None:
    _, key = await make_account(client, plan="pro")
    created = await register(client, key, "https://hooks.example.com/in")  # public at first
    dns.answers["hooks.example.com"] = ["10.0.0.7"]  # ... rebinding to a private address
    await queue(db, "inventory.updated", {"sku": "X"})
    with respx.mock(assert_all_called=False) as mock:  # any connection attempt would show here
        mock.route(host="127.0.0.1").pass_through()
        result = await deliver(db, settings, resolver=dns)
        assert not mock.calls
    assert result.retrying == 1
    [attempt] = await _attempts(client, key, created["id"])
    assert attempt["status_code"] is None and attempt["latency_ms"] == 0
    assert str(attempt["error"]).startswith("refused: ")
    assert "private address" in str(attempt["error"]) and "10.0.0.7" not in str(attempt["error"])


async def test_the_connection_goes_to_the_checked_address(
    client: AsyncClient, db: Database, settings: Settings, receiver: Receiver, dns: StubDNS
) -> None:
    """`receiver.test` exists only in the stub DNS: the request reaching the receiver proves the
    sender connected to the address the guard checked instead of resolving the name again."""
    _, key = await make_account(client, plan="pro")
    created = await register(client, key, receiver.url("/pinned", host=RECEIVER_NAME))
    await queue(db, "inventory.updated", {"sku": "X"})
    assert (await deliver(db, settings, resolver=dns)).delivered == 1
    [request] = receiver.requests
    assert request.headers["host"] == f"{RECEIVER_NAME}:{receiver.port}"
    Webhook(created["secret"]).verify(request.body, request.headers)


async def test_https_is_pinned_with_the_hostname_as_sni() -> None:
    """https: the socket goes to the checked IP; Host, SNI and certificate name stay the host."""
    target = Target(scheme="https", host="hooks.example.com", port=443, address=PUBLIC_IP)
    with respx.mock() as mock:
        route = mock.post(f"https://{PUBLIC_IP}/in").mock(return_value=httpx.Response(204))
        outcome = await sender.post(
            target,
            "https://hooks.example.com/in",
            msg_id="msg_1",
            secret="whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            body=b"{}",
            timeout=1,
        )
    assert outcome.succeeded and outcome.status_code == 204
    request = route.calls.last.request
    assert request.url.host == PUBLIC_IP
    assert request.headers["host"] == "hooks.example.com"
    assert request.extensions["sni_hostname"] == "hooks.example.com"


async def test_two_concurrent_runs_send_each_delivery_once(
    client: AsyncClient, db: Database, settings: Settings, receiver: Receiver, dns: StubDNS
) -> None:
    _, key = await make_account(client, plan="pro")
    _, other_key = await make_account(client, plan="pro")
    await register(client, key, receiver.url("/one"))
    await register(client, other_key, receiver.url("/two"))
    for i in range(25):
        assert await queue(db, "inventory.updated", {"sku": f"SKU-{i}"}) == 2
    receiver.delay = 0.01
    first, second = await asyncio.gather(
        deliver(db, settings, resolver=dns), deliver(db, settings, resolver=dns)
    )
    assert first.delivered + second.delivered == 50
    assert first.claimed + second.claimed == 50
    sent = Counter((r.path, r.headers["webhook-id"]) for r in receiver.requests)
    assert len(sent) == 50 and set(sent.values()) == {1}


async def test_an_endpoint_deleted_mid_flight_is_not_recorded_against(
    client: AsyncClient, db: Database, settings: Settings, receiver: Receiver, dns: StubDNS
) -> None:
    _, key = await make_account(client, plan="pro")
    created = await register(client, key, receiver.url())
    await queue(db, "inventory.updated", {"sku": "X"})
    receiver.delay = 0.3

    async def delete_while_sending() -> None:
        while not receiver.requests:
            await asyncio.sleep(0.01)
        response = await client.delete(f"/v1/webhooks/{created['id']}", headers=key_headers(key))
        assert response.status_code == 204

    result, _ = await asyncio.gather(deliver(db, settings, resolver=dns), delete_while_sending())
    assert (result.claimed, result.delivered, result.due) == (1, 0, 0)
    conn = await asyncpg.connect(database_url())
    left = await conn.fetchval("SELECT count(*) FROM webhook_deliveries")
    await conn.close()
    assert left == 0


async def test_delivery_on_the_embedded_sqlite_database(
    tmp_path: Path, receiver: Receiver, redis_prefix: str, dns: StubDNS
) -> None:
    """The migration and the claim work on SQLite too (no SKIP LOCKED there: the conditional
    claim UPDATE is what makes it exact)."""
    settings = make_settings(
        "embedded",
        redis_prefix,
        None,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/hooks.db",
        WEBHOOK_ALLOW_HOSTS=f"127.0.0.1:{receiver.port}",
    )
    assert await migrate_embedded_database(settings)
    app = create_app(settings)
    app.dependency_overrides[get_resolver] = lambda: dns
    database: Database = app.state.services.db
    try:
        async with AsyncClient(transport=ASGITransport(app), base_url="http://local") as local:
            _, key = await make_account(local, plan="pro")
            created = await register(local, key, receiver.url())
            await queue(database, "inventory.updated", {"sku": "X"})
            first, second = await asyncio.gather(
                deliver(database, settings, resolver=dns), deliver(database, settings, resolver=dns)
            )
            assert first.delivered + second.delivered == 1 and len(receiver.requests) == 1
            Webhook(created["secret"]).verify(
                receiver.requests[0].body, receiver.requests[0].headers
            )
            [attempt] = await _attempts(local, key, created["id"])
            assert attempt["succeeded"] is True
    finally:
        await app.state.services.close()
