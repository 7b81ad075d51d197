"""Usage: what an account has used this period, and the durable roll-up of Redis counters.

Redis holds, per account and period, one hash: `n` (units used, what the gate enforces), `e` (the
hash's epoch id), `<day>|<endpoint>` counters and the admission buckets `b:<start>` still open to
refunds. The roll-up copies those absolute counters into `usage_rollups` (one row per account,
period, day, endpoint and epoch), so running it twice writes the same numbers, and a Redis that
loses its data starts a new epoch whose counts add to the old rows instead of overwriting them. A
lost Redis loses only what was counted since the last roll-up.

Billed means settled: the roll-up first closes the buckets no refund can reach any more (see
`ROLLUP_SNAPSHOT`) and writes each hash's settled units (counters minus open buckets) into
`usage_settlements`, which is all the metering flush reads. A hash with open buckets stays dirty,
so a later roll-up settles them.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.db import Database
from app.core.errors import AppError
from app.models import Account, DegradedCall, Plan, utcnow
from app.redis.keys import RedisKeys
from app.redis.port import RedisPort, RedisUnavailable
from app.usage import repository as repo
from app.usage.period import current_period, month_bounds
from app.usage.schemas import DayUsage, RollupResult, TopAccount, TopAccounts, UsagePublic
from app.usage.scripts import (
    HGETALL,
    HGETALL_MANY,
    RESOLVE_DEGRADED,
    ROLLUP_ACK,
    ROLLUP_SNAPSHOT,
    TOP_USAGE,
)

logger = logging.getLogger("agentmall.usage")

ROLLUP_BATCH = 200
ROLLUP_MAX_BATCHES = 50
SETTLE_BATCH = 200
SETTLE_MAX_BATCHES = 50
# How long Redis remembers admitted request ids and tombstones: settle_degraded (run by the
# roll-up cron every 10 minutes) must run within it after an outage for an exact settlement.
REQUEST_ID_RETENTION_MS = 15 * 60 * 1000
# The last-used hash of an account (`RedisKeys.last_used`) lives this long after the account's
# last admitted request (the gate script re-arms it on each): longer than a yearly job's cadence,
# so a key unused for a year still shows its date, and bounded, so an account that stopped
# calling leaves nothing behind in Redis. A key's entry goes with the hash, never alone.
LAST_USED_RETENTION_S = 400 * 86_400


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


def open_units(fields: dict[str, str]) -> int:
    """Units in a usage hash's admission buckets that are still open to refunds (provisional)."""
    return sum(int(value) for name, value in fields.items() if name.startswith("b:"))


def _counters(fields: dict[str, str]) -> dict[tuple[date, str], int]:
    """`<day>|<endpoint>` counters of a usage hash, by (day, endpoint)."""
    out: dict[tuple[date, str], int] = {}
    for name, value in fields.items():
        if "|" not in name:
            continue
        day, endpoint = name.split("|", 1)
        out[(date.fromisoformat(day), endpoint)] = int(value)
    return out


async def record_degraded(
    db: Database,
    *,
    request_id: str,
    account_id: str,
    period_start: datetime,
    usage_field: str,
    units: int,
) -> None:
    """Keep a request served while Redis was away, by request id, until the roll-up settles it.

    The gate call may still have run in Redis (only its answer was late): the roll-up asks Redis
    which ids it counted, so such a request is counted once, never in both places.
    """
    day, endpoint = usage_field.split("|", 1)
    call = DegradedCall(
        request_id=request_id,
        account_id=account_id,
        period_start=period_start,
        day=date.fromisoformat(day),
        endpoint=endpoint,
        units=units,
    )
    try:
        # Through the unit of work, so an outage never opens more than DB_MAX_CONNECTIONS.
        async with db.unit() as session:
            await repo.record_degraded(session, call)
    except Exception:  # the response is already decided; never fail it over bookkeeping
        logger.exception("could not record a degraded-mode request")


async def settle_degraded(db: Database, redis: RedisPort, keys: RedisKeys) -> int:
    """Settle requests served while Redis was away: drop those the gate did count in Redis, move
    the others into the Postgres-only epoch. Returns how many were settled."""
    settled = 0
    for _ in range(SETTLE_MAX_BATCHES):
        async with db.unit() as session:
            calls = await repo.pending_degraded(session, limit=SETTLE_BATCH)
            if not calls:
                return settled
            counted = await redis.run_script(
                RESOLVE_DEGRADED,
                [keys.ids(c.account_id) for c in calls],
                [REQUEST_ID_RETENTION_MS, *(c.request_id for c in calls)],
            )
            horizon = utcnow() - timedelta(milliseconds=REQUEST_ID_RETENTION_MS)
            for call, in_redis in zip(calls, counted, strict=True):
                if not int(in_redis) and call.created_at < horizon:
                    logger.warning(
                        "degraded call %s settled after Redis forgot its ids: kept in Postgres",
                        call.request_id,
                    )
                # a success (units > 0) counts unless Redis did; a void (a failed call, units < 0)
                # takes back what Redis counted, and nothing if it did not
                if bool(int(in_redis)) == (call.units < 0):
                    await repo.add_count(
                        session,
                        account_id=call.account_id,
                        period_start=call.period_start,
                        day=call.day,
                        endpoint=call.endpoint,
                        units=call.units,
                    )
            await repo.delete_degraded(session, [c.request_id for c in calls])
            settled += len(calls)
        if len(calls) < SETTLE_BATCH:
            break
    return settled


async def last_used(redis: RedisPort, keys: RedisKeys, account_id: str) -> dict[str, datetime]:
    """When each key of the account was last admitted by the gate (Redis time, UTC), by key id.

    The gate script records it on admission only (a refused request leaves it alone), in the same
    command that counts the request. A key missing here was not used since the hash last expired
    (no key of the account used for `LAST_USED_RETENTION_S`) or Redis lost it. Redis unavailable
    gives `{}`: callers show "unknown" rather than fail a control-plane call over it."""
    try:
        flat = await redis.run_script(HGETALL, [keys.last_used(account_id)], [])
    except RedisUnavailable:
        logger.warning("last use of keys unknown: Redis unavailable")
        return {}
    return {
        key_id: datetime.fromtimestamp(int(seconds), UTC)
        for key_id, seconds in _pairs(flat or []).items()
    }


async def usage_view(
    session: AsyncSession, redis: RedisPort, keys: RedisKeys, *, account: Account, plan: Plan
) -> UsagePublic:
    """This period's usage: Postgres roll-ups merged with the live Redis counters."""
    now = utcnow()
    start, end = current_period(account.current_period_start, account.current_period_end, now)
    counts: dict[tuple[date, str], int] = defaultdict(int)
    live: dict[str, str] = {}
    try:
        live = _pairs(await redis.run_script(HGETALL, [keys.usage(account.id, start)], []) or [])
    except RedisUnavailable:
        logger.warning("usage shown from Postgres only: Redis unavailable")
    live_epoch = live.get("e")
    provisional = open_units(live)
    for row in await repo.period_rows(session, account_id=account.id, period_start=start):
        if row.epoch != live_epoch:
            counts[(row.day, row.endpoint)] += row.count
    for call in await repo.period_degraded(session, account_id=account.id, period_start=start):
        counts[(call.day, call.endpoint)] += call.units
    for key, value in _counters(live).items():
        counts[key] += value
    used = sum(counts.values())
    by_endpoint: dict[str, int] = defaultdict(int)
    by_day: dict[date, int] = defaultdict(int)
    for (day, endpoint), value in counts.items():
        by_endpoint[endpoint] += value
        by_day[day] += value
    last = min(now.date(), (end - timedelta(seconds=1)).date())
    days = [start.date() + timedelta(days=i) for i in range((last - start.date()).days + 1)]
    quota = plan.included_calls
    return UsagePublic(
        account_id=account.id,
        plan=plan.code,
        period_start=start,
        period_end=end,
        used=used,
        quota=quota,
        remaining=max(0, quota - used),
        percent=round(100 * used / quota, 2) if quota else 0.0,
        overage=max(0, used - quota) if not plan.hard_limit else 0,
        requests_per_minute=plan.requests_per_minute,
        provisional=provisional,
        by_endpoint={e: n for e, n in sorted(by_endpoint.items()) if n},  # refunded: gone
        daily=[DayUsage(date=d, count=by_day.get(d, 0)) for d in days],
    )


@dataclass(frozen=True)
class LiveCount:
    """A period's units as the gate counts them now, and those still open to refunds."""

    counted: int
    provisional: int
    live: bool  # False: Redis was unreachable, Postgres's figures only


async def live_counts(
    session: AsyncSession, redis: RedisPort, keys: RedisKeys, periods: list[tuple[str, datetime]]
) -> dict[tuple[str, datetime], LiveCount]:
    """`counted` as `/v1/usage` shows it (its `used`) for each (account, period start), in one
    Redis command and two statements: Postgres's other epochs and unsettled degraded calls plus
    the live hash."""
    hashes: list[Any] = []
    try:
        if periods:
            hashes = await redis.run_script(
                HGETALL_MANY, [keys.usage(a, p) for a, p in periods], []
            )
    except RedisUnavailable:
        logger.warning("reconciliation from Postgres only: Redis unavailable")
    by_epoch, pending = await repo.period_totals(session, periods)
    out: dict[tuple[str, datetime], LiveCount] = {}
    for index, period in enumerate(periods):
        fields = _pairs(hashes[index] or []) if hashes else {}
        epoch = fields.get("e")
        rolled = sum(n for e, n in by_epoch.get(period, {}).items() if e != epoch)
        counted = rolled + pending.get(period, 0) + sum(_counters(fields).values())
        out[period] = LiveCount(counted, open_units(fields), bool(hashes))
    return out


class UsageStoreUnavailable(AppError):
    status_code = 503
    code = "redis_unavailable"
    default_message = "Redis is unreachable; the roll-up changed nothing and will run again."


async def rollup(
    db: Database, redis: RedisPort, keys: RedisKeys, settings: Settings
) -> RollupResult:
    """Settle degraded-mode requests, copy every dirty usage hash from Redis into Postgres (its
    counts, and its settled units), then clear the dirty marks of the hashes that did not change
    meanwhile and hold no open bucket."""
    try:
        return await _rollup(db, redis, keys, settings)
    except RedisUnavailable as exc:  # nothing half-done: every step is safe to run again
        raise UsageStoreUnavailable() from exc


async def rollup_if_due(
    db: Database, redis: RedisPort, keys: RedisKeys, settings: Settings
) -> RollupResult:
    """The roll-up, at most once per USAGE_ROLLUP_INTERVAL_SECONDS (one Redis command when not
    due): the cron fires every minute, so the interval is a setting, not a schedule to edit."""
    interval = settings.USAGE_ROLLUP_INTERVAL_SECONDS
    try:
        # 1 s short of the interval, so a tick arriving a moment early still finds it due
        due = await redis.execute("SET", keys.rollup_due, "1", "NX", "EX", max(1, interval - 1))
    except RedisUnavailable as exc:
        raise UsageStoreUnavailable() from exc
    if not due:
        return RollupResult(job="rollup-usage", hashes=0, rows=0, cleared=0, skipped=True)
    return await rollup(db, redis, keys, settings)


async def rollup_before_billing(
    db: Database, redis: RedisPort, keys: RedisKeys, settings: Settings
) -> None:
    """The roll-up a flush runs first; if Redis is away the flush still sends what is settled."""
    try:
        await rollup(db, redis, keys, settings)
    except UsageStoreUnavailable:
        logger.warning("flush without a fresh roll-up: Redis unavailable")


def _snapshot_rows(
    keys: RedisKeys, member: str, fields: dict[str, str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The `usage_rollups` rows and the `usage_settlements` row of one usage hash snapshot."""
    account_id, period = keys.parse_usage(member)
    period_start = datetime.fromtimestamp(period, UTC)
    seq = int(fields.get("c", 0))
    counters = _counters(fields)
    rows = [
        {
            "account_id": account_id,
            "period_start": period_start,
            "day": day,
            "endpoint": endpoint,
            "epoch": fields["e"],
            "count": value,
            "seq": seq,
        }
        for (day, endpoint), value in counters.items()
    ]
    settled = {
        "account_id": account_id,
        "period_start": period_start,
        "epoch": fields["e"],
        "settled": sum(counters.values()) - open_units(fields),
        "seq": seq,
    }
    return rows, settled


async def _rollup(
    db: Database, redis: RedisPort, keys: RedisKeys, settings: Settings
) -> RollupResult:
    settled = await settle_degraded(db, redis, keys)
    hashes = rows_written = cleared = kept = 0
    for _ in range(ROLLUP_MAX_BATCHES):
        snapshot = await redis.run_script(
            ROLLUP_SNAPSHOT,
            [keys.dirty],
            [
                ROLLUP_BATCH,
                kept,
                settings.USAGE_BUCKET_SECONDS,
                settings.USAGE_SETTLE_AFTER_SECONDS,
            ],
        )
        if not snapshot:
            break
        rows: list[dict[str, Any]] = []
        settlements: list[dict[str, Any]] = []
        acks: list[Any] = []
        for member, _score, flat in snapshot:
            fields = _pairs(flat or [])
            if any(name.startswith("b:") for name in fields):
                kept += 1  # open buckets: stays dirty (and ahead in the set) until they settle
            else:
                acks += [member, fields.get("c", "")]
            if "e" not in fields:  # expired hash: nothing left to copy
                continue
            hash_rows, settlement = _snapshot_rows(keys, str(member), fields)
            rows += hash_rows
            settlements.append(settlement)
        async with db.unit() as session:
            await repo.write_snapshot(session, rows)
            await repo.write_settlements(session, settlements)
        if acks:
            cleared += int(await redis.run_script(ROLLUP_ACK, [keys.dirty], acks))
        hashes += len(snapshot)
        rows_written += len(rows)
        if len(snapshot) < ROLLUP_BATCH:
            break
    return RollupResult(
        job="rollup-usage", hashes=hashes, rows=rows_written, cleared=cleared, settled=settled
    )


async def live_top(
    session: AsyncSession, redis: RedisPort, keys: RedisKeys, *, limit: int
) -> TopAccounts:
    """The heaviest accounts this calendar month, from the gate's live counters (abuse watch);
    from the rolled-up table (up to one roll-up interval behind) while Redis is unreachable."""
    try:
        month_start, flat = await redis.run_script(TOP_USAGE, [], [keys.top_prefix, limit])
    except RedisUnavailable:
        since, _ = month_bounds(utcnow())
        rows = await repo.top_accounts(session, since=since, limit=limit)
        data = [TopAccount(account_id=a, email=e, plan=p, used=u) for a, e, p, u in rows]
        return TopAccounts(period_start=since, source="rollup", data=data)
    ranked = [(str(flat[i]), int(float(flat[i + 1]))) for i in range(0, len(flat) - 1, 2)]
    known = await repo.accounts_by_id(session, [a for a, _ in ranked])
    data = [
        TopAccount(account_id=a, email=known[a][0], plan=known[a][1], used=used)
        for a, used in ranked
        if a in known and used > 0
    ]
    start = datetime.fromtimestamp(int(month_start), UTC)
    return TopAccounts(period_start=start, source="live", data=data)
