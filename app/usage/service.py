"""Usage: what an account has used this period, and the durable roll-up of Redis counters.

Redis holds, per account and period, one hash: `n` (units used, what the gate enforces), `e` (the
hash's epoch id) and `<day>|<endpoint>` counters. The roll-up copies those absolute counters into
`usage_rollups` (one row per account, period, day, endpoint and epoch), so running it twice writes
the same numbers, and a Redis that loses its data starts a new epoch whose counts add to the old
rows instead of overwriting them. A lost Redis loses only what was counted since the last roll-up.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

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


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


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
                if not int(in_redis):
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
        by_endpoint=dict(sorted(by_endpoint.items())),
        daily=[DayUsage(date=d, count=by_day.get(d, 0)) for d in days],
    )


class UsageStoreUnavailable(AppError):
    status_code = 503
    code = "redis_unavailable"
    default_message = "Redis is unreachable; the roll-up changed nothing and will run again."


async def rollup(db: Database, redis: RedisPort, keys: RedisKeys) -> RollupResult:
    """Settle degraded-mode requests, copy every dirty usage hash from Redis into Postgres, then
    clear the dirty marks of the hashes that did not change meanwhile."""
    try:
        return await _rollup(db, redis, keys)
    except RedisUnavailable as exc:  # nothing half-done: every step is safe to run again
        raise UsageStoreUnavailable() from exc


async def _rollup(db: Database, redis: RedisPort, keys: RedisKeys) -> RollupResult:
    settled = await settle_degraded(db, redis, keys)
    hashes = rows_written = cleared = 0
    for _ in range(ROLLUP_MAX_BATCHES):
        snapshot = await redis.run_script(ROLLUP_SNAPSHOT, [keys.dirty], [ROLLUP_BATCH])
        if not snapshot:
            break
        rows: list[dict[str, Any]] = []
        acks: list[Any] = []
        for member, _score, flat in snapshot:
            fields = _pairs(flat or [])
            acks += [member, fields.get("c", "")]
            if "e" not in fields:  # expired hash: nothing left to copy
                continue
            account_id, period = keys.parse_usage(str(member))
            period_start = datetime.fromtimestamp(period, UTC)
            for (day, endpoint), value in _counters(fields).items():
                rows.append(
                    {
                        "account_id": account_id,
                        "period_start": period_start,
                        "day": day,
                        "endpoint": endpoint,
                        "epoch": fields["e"],
                        "count": value,
                        "seq": int(fields.get("c", 0)),
                    }
                )
        async with db.unit() as session:
            await repo.write_snapshot(session, rows)
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
