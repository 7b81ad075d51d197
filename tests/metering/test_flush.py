"""Metered overage billing: the `flush-usage` job bills exactly the overage, once, whatever fails.

Accounts, paid periods and rolled-up usage are seeded with SQL; Stripe's meter-event endpoint is a
fake behind respx (`FakeMeter`) that keeps what it accepted, so a test compares what reached
"Stripe" with what is owed. What the fake assumes of Stripe's `POST /v1/billing/meter_events`
(its docs, and what integrators report seeing):

- an `identifier` Stripe already holds is refused with 400 `invalid_request_error`, message
  "An event already exists with identifier <id>." and no error code (uniqueness holds for at
  least 24 hours; the fake never forgets);
- a request repeating an `Idempotency-Key` (the library's own retries) gets the first answer back;
- `timestamp` must lie within the past 35 days (and at most 5 minutes ahead), `event_name` must
  be the meter's; answers are shaped like Stripe's meter event object.

A crash is `Crash`, a BaseException: like a killed process, nothing catches it, and the
transaction in progress rolls back.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
import httpx
import pytest
import respx
import stripe
from stripe import StripeClient

from app.billing.repository import METER_EVENT_NAME
from app.billing.stripe_client import build_stripe
from app.core.config import Settings
from app.core.db import Database
from app.metering import repository as meter_repo
from app.metering import service
from app.metering.schemas import FlushResult
from app.models import utcnow
from tests.conftest import database_url, make_settings
from tests.support import stripe_objects

# stripe-python hands httpx its form body as `data=` bytes; httpx 0.28 warns about that.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

STRIPE_BASE = "https://stripe.test"
PRO_INCLUDED = 50_000
STRIPE_WINDOW_S = 35 * 86_400


class Crash(BaseException):
    """The process dies here (killed, or the function timed out): nothing below it runs."""


class FakeMeter:
    """Stripe's meter-event endpoint: dedupes identifiers, replays idempotency keys, and fails
    on demand."""

    def __init__(self, event_name: str = service.DEFAULT_EVENT_NAME) -> None:
        self.event_name = event_name
        self.events: dict[str, dict[str, Any]] = {}  # identifier -> accepted event, in order
        self.replies: dict[str, tuple[int, dict[str, Any]]] = {}  # idempotency key -> answer
        self.requests = self.duplicates = self.replays = self.max_in_flight = 0
        self.in_flight: Counter[str] = Counter()
        self.down: str | None = None  # "500": Stripe errors; "connect": unreachable
        self.refuse: set[str] = set()  # customers Stripe does not know
        self.crash_on_event: int | None = None  # the process dies as Stripe accepts event n
        self.lose_answer_to: set[int] = set()  # accepted events whose answer never arrives

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.down == "connect":
            raise httpx.ConnectError("connection refused", request=request)
        if self.down == "500":
            return self._error(500, "An unknown error occurred", kind="api_error")
        key = request.headers.get("Idempotency-Key", uuid.uuid4().hex)
        if key in self.replies:
            self.replays += 1
            status, body = self.replies[key]
            return httpx.Response(status, json=body, headers={"Idempotent-Replayed": "true"})
        params = dict(parse_qsl(request.content.decode()))
        customer = params.get("payload[stripe_customer_id]", "")
        self.in_flight[customer] += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight[customer])
        try:
            await asyncio.sleep(0.002)  # in flight: lets a concurrent flush run meanwhile
            response = self._create(params)
        finally:
            self.in_flight[customer] -= 1
        self.replies[key] = (response.status_code, response.json())
        accepted = len(self.events)
        if response.status_code == 200 and accepted == self.crash_on_event:
            raise Crash(f"died while Stripe acknowledged event {accepted}")
        if response.status_code == 200 and accepted in self.lose_answer_to:
            raise httpx.ReadTimeout("answer lost", request=request)
        return response

    def _create(self, params: dict[str, str]) -> httpx.Response:
        identifier, customer = params["identifier"], params["payload[stripe_customer_id]"]
        timestamp, now = int(params["timestamp"]), time.time()
        if params["event_name"] != self.event_name:
            return self._error(400, "No active meter found with this event name.")
        if identifier in self.events:
            self.duplicates += 1
            return self._error(400, f"An event already exists with identifier {identifier}.")
        if customer in self.refuse:
            return self._error(400, f"No such customer: '{customer}'", code="resource_missing")
        if not now - STRIPE_WINDOW_S <= timestamp <= now + 300:
            return self._error(400, "Timestamp must be within the past 35 days.")
        payload = {"stripe_customer_id": customer, "value": params["payload[value]"]}
        self.events[identifier] = {"customer": customer, "value": int(payload["value"]), **params}
        body = stripe_objects.meter_event(
            event_name=self.event_name, identifier=identifier, payload=payload, timestamp=timestamp
        )
        return httpx.Response(200, json=body, headers={"Request-Id": "req_fake"})

    @staticmethod
    def _error(
        status: int, message: str, *, kind: str = "invalid_request_error", code: str | None = None
    ) -> httpx.Response:
        error = {"type": kind, "message": message, **({"code": code} if code else {})}
        headers = {"Stripe-Should-Retry": "false"} if status < 500 else {}  # an outage: retry
        return httpx.Response(status, json={"error": error}, headers=headers)

    def totals(self) -> dict[str, int]:
        """Units accepted per Stripe customer."""
        sums: dict[str, int] = defaultdict(int)
        for event in self.events.values():
            sums[event["customer"]] += event["value"]
        return dict(sums)


@dataclass(frozen=True)
class Paid:
    account_id: str
    customer: str
    start: datetime
    end: datetime


class Ledger:
    """Seeds accounts, paid periods and rolled-up usage with SQL; reads the metering tables."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def account(
        self, *, plan: str = "pro", used: int = 0, ended_days_ago: int | None = None
    ) -> Paid:
        """An account with a paid period (current unless `ended_days_ago`) and `used` calls."""
        now = utcnow().replace(microsecond=0)
        end = now - timedelta(days=ended_days_ago) if ended_days_ago else now + timedelta(days=20)
        account, customer = f"acct_{uuid.uuid4().hex[:24]}", f"cus_{uuid.uuid4().hex[:14]}"
        paid = Paid(account, customer, start=end - timedelta(days=30), end=end)
        await self.conn.execute(
            "INSERT INTO accounts (id, email, plan_code, role, subscription_status, "
            "stripe_customer_id, policy_version, created_at) "
            "VALUES ($1, $2, $3, 'user', 'active', $4, 1, now())",
            paid.account_id, f"{paid.account_id}@example.com", plan, paid.customer,
        )  # fmt: skip
        await self.conn.execute(
            "INSERT INTO billing_periods (account_id, period_start, period_end, plan_code, "
            "stripe_customer_id, updated_at) VALUES ($1, $2, $3, $4, $5, now())",
            paid.account_id, paid.start, paid.end, plan, paid.customer,
        )  # fmt: skip
        if used:
            await self.use(paid, used)
        return paid

    async def use(
        self, paid: Paid, units: int, *, day: int = 0, endpoint: str = "products", epoch: str = "e1"
    ) -> None:
        """Roll up and settle `units` more calls (as the roll-up cron would, into one
        day/endpoint row and the epoch's settled total, which is what the flush bills)."""
        if epoch != "pg":
            await self.conn.execute(
                "INSERT INTO usage_settlements (account_id, period_start, epoch, settled, seq, "
                "updated_at) VALUES ($1, $2, $3, $4, 1, now()) "
                "ON CONFLICT (account_id, period_start, epoch) DO UPDATE SET "
                "settled = usage_settlements.settled + EXCLUDED.settled, "
                "seq = usage_settlements.seq + 1",
                paid.account_id, paid.start, epoch, units,
            )  # fmt: skip
        await self.conn.execute(
            "INSERT INTO usage_rollups (account_id, period_start, day, endpoint, epoch, count, "
            "seq) VALUES ($1, $2, $3, $4, $5, $6, 1) "
            "ON CONFLICT (account_id, period_start, day, endpoint, epoch) DO UPDATE SET "
            "count = usage_rollups.count + EXCLUDED.count, seq = usage_rollups.seq + 1",
            paid.account_id, paid.start, (paid.start + timedelta(days=day)).date(), endpoint,
            epoch, units,
        )  # fmt: skip

    async def degraded(self, paid: Paid, units: int) -> None:
        """A call served while Redis was away, not settled yet."""
        await self.conn.execute(
            "INSERT INTO degraded_calls VALUES ($1, $2, $3, $4, 'products', $5, now())",
            uuid.uuid4().hex, paid.account_id, paid.start, paid.start.date(), units,
        )  # fmt: skip

    async def set_included(self, plan: str, calls: int) -> None:
        await self.conn.execute("UPDATE plans SET included_calls = $2 WHERE code = $1", plan, calls)

    async def reported(self, paid: Paid) -> int:
        value = await self.conn.fetchval(
            "SELECT reported FROM meter_reports WHERE account_id = $1 AND period_start = $2",
            paid.account_id, paid.start,
        )  # fmt: skip
        return int(value or 0)

    async def outbox(self) -> tuple[int, int]:
        """(events in the outbox, of which unsent)."""
        row = await self.conn.fetchrow(
            "SELECT count(*), count(*) FILTER (WHERE sent_at IS NULL) FROM meter_events"
        )
        return int(row[0]), int(row[1])


@pytest.fixture
def meter_settings() -> Settings:
    return make_settings(
        "redis",
        f"t:meter:{uuid.uuid4().hex[:8]}:",
        STRIPE_SECRET_KEY="sk_test_x" * 2,
        STRIPE_API_BASE=STRIPE_BASE,
    )


@pytest.fixture
async def db(meter_settings: Settings, clean_database: None) -> AsyncIterator[Database]:
    database = Database(meter_settings)
    yield database
    await database.dispose()


@pytest.fixture
def client(meter_settings: Settings) -> StripeClient:
    built = build_stripe(meter_settings)
    assert built is not None
    return built


@pytest.fixture(autouse=True)
def instant_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The library's retries (2, with back-off) run without sleeping."""
    monkeypatch.setattr(stripe._http_client.HTTPClient, "_sleep_time_seconds", lambda *_: 0.0)


@pytest.fixture
def meter() -> Any:
    fake = FakeMeter()
    with respx.mock(assert_all_called=False) as router:
        router.post(f"{STRIPE_BASE}/v1/billing/meter_events").mock(side_effect=fake)
        yield fake


@pytest.fixture
async def pg(clean_database: None) -> AsyncIterator[Ledger]:
    conn = await asyncpg.connect(database_url())
    yield Ledger(conn)
    await conn.close()


def crash_on_call(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, n: int) -> None:
    """Make the n-th call of `module.name` kill the process."""
    original: Callable[..., Awaitable[Any]] = getattr(module, name)
    calls = Counter[str]()

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        if calls[name] == n:
            raise Crash(f"died in {name}")
        return await original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


async def test_overage_is_one_aggregated_event_and_a_rerun_adds_nothing(
    db: Database, client: StripeClient, meter: FakeMeter, pg: Ledger
) -> None:
    paid = await pg.account(used=50_000)
    await pg.use(paid, 500, day=1, endpoint="bulk")
    await pg.use(paid, 230, day=2, epoch="e2")
    await pg.degraded(paid, 1_000)  # not settled: not billed yet
    before = int(time.time())

    result = await service.flush(db, client)

    assert result == FlushResult(planned=1, sent=1, pending=0)
    start = int(paid.start.timestamp())
    [(identifier, event)] = meter.events.items()
    assert identifier == f"am_{paid.account_id}_{start}_0_730"
    assert event["value"] == 730 and event["customer"] == paid.customer
    assert event["event_name"] == "agentmall_api_call"
    assert before <= int(event["timestamp"]) <= int(time.time())
    assert await pg.reported(paid) == 730

    assert await service.flush(db, client) == FlushResult(planned=0, sent=0, pending=0)
    assert len(meter.events) == 1

    await pg.use(paid, 1_000, epoch="pg")  # the degraded calls settle into the roll-ups
    result = await service.flush(db, client)

    assert result == FlushResult(planned=1, sent=1, pending=0)
    assert meter.events[f"am_{paid.account_id}_{start}_730_1730"]["value"] == 1_000
    assert meter.totals() == {paid.customer: 1_730}
    assert await pg.outbox() == (2, 0)


async def test_event_name_comes_from_the_bootstrap(
    db: Database, client: StripeClient, meter: FakeMeter, pg: Ledger
) -> None:
    await pg.conn.execute(
        "INSERT INTO billing_settings VALUES ($1, 'am_calls_v2', now())", METER_EVENT_NAME
    )
    meter.event_name = "am_calls_v2"
    paid = await pg.account(used=50_001)

    assert await service.flush(db, client) == FlushResult(planned=1, sent=1, pending=0)
    assert meter.totals() == {paid.customer: 1}


async def test_only_per_call_plans_inside_stripes_35_days_are_billed(
    db: Database, client: StripeClient, meter: FakeMeter, pg: Ledger
) -> None:
    await pg.account(plan="free", used=5_000)  # hard gate
    await pg.account(plan="enterprise", used=1_500_000)  # soft, but billed per contract
    await pg.account(used=PRO_INCLUDED - 1)  # within the quota
    await pg.account(used=60_000, ended_days_ago=36)  # Stripe refuses timestamps this old
    late = await pg.account(used=50_010, ended_days_ago=34)  # still inside Stripe's window

    result = await service.flush(db, client)

    assert result == FlushResult(planned=1, sent=1, pending=0)
    assert meter.totals() == {late.customer: 10}
    [event] = meter.events.values()
    assert int(event["timestamp"]) == int(late.end.timestamp()) - 1  # inside the closed period


async def test_editing_included_calls_changes_the_next_delta(
    db: Database, client: StripeClient, meter: FakeMeter, pg: Ledger
) -> None:
    paid = await pg.account(used=50_730)
    await service.flush(db, client)

    await pg.set_included("pro", 49_500)  # a smaller quota: 500 more are billable
    assert (await service.flush(db, client)).sent == 1
    assert meter.totals() == {paid.customer: 1_230}

    await pg.set_included("pro", 51_000)  # a larger one never takes back what was billed...
    assert await service.flush(db, client) == FlushResult(planned=0, sent=0, pending=0)
    await pg.use(paid, 1_770, day=3)  # ...and bills again once usage passes what was reported
    assert (await service.flush(db, client)).sent == 1
    assert meter.totals() == {paid.customer: 1_500}
    assert await pg.reported(paid) == 1_500


@pytest.mark.parametrize("outage", ["500", "connect"])
async def test_stripe_down_keeps_the_events_for_the_next_run(
    db: Database, client: StripeClient, meter: FakeMeter, pg: Ledger, outage: str
) -> None:
    first = await pg.account(used=PRO_INCLUDED + 400)
    second = await pg.account(used=PRO_INCLUDED + 600)
    meter.down = outage

    result = await service.flush(db, client)

    failed = "APIError" if outage == "500" else "APIConnectionError"
    assert result == FlushResult(planned=2, sent=0, pending=2, failed=failed)
    assert meter.requests == 3  # one event, the library's two retries, then the run stops
    assert meter.events == {}

    meter.down = None
    assert await service.flush(db, client) == FlushResult(planned=0, sent=2, pending=0)
    assert meter.totals() == {first.customer: 400, second.customer: 600}


async def test_a_refused_event_stays_unsent_and_others_go_on(
    db: Database, client: StripeClient, meter: FakeMeter, pg: Ledger
) -> None:
    unknown = await pg.account(used=PRO_INCLUDED + 5)
    known = await pg.account(used=PRO_INCLUDED + 7)
    meter.refuse.add(unknown.customer)

    result = await service.flush(db, client)

    assert result == FlushResult(planned=2, sent=1, rejected=1, pending=1)
    assert meter.totals() == {known.customer: 7}
    meter.refuse.clear()  # fixed at Stripe
    # a refused event waits a day (it must not crowd out the rest of the outbox on every run)
    assert await service.flush(db, client) == FlushResult(planned=0, sent=0, pending=1)
    tomorrow = utcnow() + timedelta(days=1, minutes=1)
    assert await service.flush(db, client, now=tomorrow) == FlushResult(
        planned=0, sent=1, pending=0
    )
    assert meter.totals() == {known.customer: 7, unknown.customer: 5}


async def test_an_answer_lost_in_transit_is_replayed_by_the_retry(
    db: Database, client: StripeClient, meter: FakeMeter, pg: Ledger
) -> None:
    paid = await pg.account(used=PRO_INCLUDED + 42)
    meter.lose_answer_to = {1}

    assert await service.flush(db, client) == FlushResult(planned=1, sent=1, pending=0)
    assert (meter.requests, meter.replays, meter.duplicates) == (2, 1, 0)
    assert meter.totals() == {paid.customer: 42}


async def test_an_event_stripe_took_before_a_crash_is_sent_again_and_deduped(
    db: Database, client: StripeClient, meter: FakeMeter, pg: Ledger
) -> None:
    paid = await pg.account(used=PRO_INCLUDED + 730)
    meter.crash_on_event = 1

    with pytest.raises(Crash):
        await service.flush(db, client)
    assert await pg.outbox() == (1, 1)  # Stripe has it; we never heard so

    meter.crash_on_event = None
    assert await service.flush(db, client) == FlushResult(planned=0, sent=1, pending=0)
    assert meter.duplicates == 1
    assert meter.totals() == {paid.customer: 730}


def test_only_an_identifier_clash_counts_as_already_sent() -> None:
    clash = stripe.InvalidRequestError("An event already exists with identifier am_a_1_0_5.", None)
    coded = stripe.InvalidRequestError("Duplicate.", None, code="duplicate_meter_event")
    missing = stripe.InvalidRequestError("No such customer: 'cus_x'", "payload", "resource_missing")
    other = stripe.InvalidRequestError("An active meter with this event_name already exists.", None)
    assert service.is_duplicate(clash) and service.is_duplicate(coded)
    assert not service.is_duplicate(missing) and not service.is_duplicate(other)


def split(total: int, parts: int, rng: random.Random) -> list[int]:
    """`total` cut into `parts` random non-negative pieces."""
    cuts = sorted(rng.randint(0, total) for _ in range(parts - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]


async def test_crashes_retries_and_a_concurrent_flush_bill_exactly_the_overage(
    db: Database,
    client: StripeClient,
    meter: FakeMeter,
    pg: Ledger,
    meter_settings: Settings,
) -> None:
    """10,000 paid calls across 20 accounts, reported through every fault at once."""
    rng = random.Random(2026)
    overage = split(10_000, 20, rng)
    accounts = [await pg.account(used=PRO_INCLUDED - 2_000) for _ in overage]
    stages: list[list[int]] = []
    for owed in overage:  # the last 2,000 included calls and the paid ones, in three steps
        first = rng.randint(1_500, 2_000 + owed)
        second = rng.randint(0, 2_000 + owed - first)
        stages.append([first, second, 2_000 + owed - first - second])

    async def use(stage: int) -> None:
        for paid, steps in zip(accounts, stages, strict=True):
            half = steps[stage] // 2
            await pg.use(paid, half, day=stage, endpoint="bulk")
            await pg.use(paid, steps[stage] - half, day=stage + 1, epoch=f"e{stage}")

    # 1. The flush dies as Stripe accepts its 4th event: Stripe has it, we do not know.
    await use(0)
    meter.crash_on_event = 4
    with pytest.raises(Crash):
        await service.flush(db, client)
    meter.crash_on_event = None
    assert len(meter.events) == 4 and (await pg.outbox())[1] > 1

    # 2. More usage; a flush dies while planning its 3rd period (2 are in the outbox).
    await use(1)
    planned_before = (await pg.outbox())[0]
    with pytest.MonkeyPatch.context() as patch:
        crash_on_call(patch, meter_repo, "add_event", 3)
        with pytest.raises(Crash):
            await service.flush(db, client)
    assert (await pg.outbox())[0] == planned_before + 2

    # 3. A flush dies between planning and sending.
    with pytest.MonkeyPatch.context() as patch:
        crash_on_call(patch, service, "send", 1)
        with pytest.raises(Crash):
            await service.flush(db, client)

    # 4. The last usage; two flushes race (other instance, other client); two answers are lost.
    await use(2)
    meter.lose_answer_to = {len(meter.events) + 2, len(meter.events) + 5}
    other_db = Database(meter_settings)
    other_client = build_stripe(meter_settings)
    assert other_client is not None
    try:
        results = await asyncio.gather(
            service.flush(db, client), service.flush(other_db, other_client)
        )
    finally:
        await other_db.dispose()
    assert all(r.failed is None and r.rejected == 0 for r in results)
    assert meter.replays == 2

    # 5. Whatever the race left is sent by the next run; then there is nothing to do.
    leftover = await service.flush(db, client)
    assert leftover.planned == 0 and leftover.pending == 0 and leftover.failed is None
    assert await service.flush(db, client) == FlushResult(planned=0, sent=0, pending=0)

    owed = {paid.customer: units for paid, units in zip(accounts, overage, strict=True) if units}
    assert meter.totals() == owed
    assert sum(meter.totals().values()) == 10_000
    assert meter.duplicates >= 1  # the event Stripe took as step 1 died was deduped, not re-billed
    assert meter.max_in_flight == 1  # never two calls at once for one customer
    for paid, units in zip(accounts, overage, strict=True):
        assert await pg.reported(paid) == units
    total, unsent = await pg.outbox()
    assert unsent == 0 and total == len(meter.events)
