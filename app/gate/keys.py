"""Key resolution: raw `X-API-Key` → (hash, `KeyContext`), cheap for real keys, bounded for guesses.

* A key cached on this instance (`KeyCache.known`) costs nothing here: no Redis, no Postgres.
* A hash cached as unusable (never issued, or revoked) is answered 401 without a query.
* Anything else needs Postgres. Each client address may cause at most
  `INVALID_KEYS_PER_IP_PER_MINUTE` failed lookups a minute (IPv6: per /64). Before the query, the
  lookup takes one unit of that allowance in Redis (one small script); it gives the unit back if
  the key turns out usable. Past the allowance the answer is 429 `too_many_invalid_keys`, before
  any query, so random keys cost Postgres at most that many queries per address per minute, and
  never evict real keys from the cache (they go to the separate negative map).
* A rotated key carries its `expires_at` in the cached context: past it the key is refused (401)
  against this instance's clock, cached or fresh, with no query. Rotation bumps the account's
  policy version, so a context cached before it is reloaded on its next request (STALE), and
  `expires_at` is set once and never moved, so a cached "expired" is never stale.
* Concurrent misses for one key share one query (single flight). `reload` (after the gate script
  answers STALE) never joins a load that had already started when it was called: that load may
  have read the row before the change that made the cache stale.
* A shared load runs on the session of the request that started it (its leader), so it must end
  within that request's unit of work: the leader awaits it directly, and if the leader is cancelled
  the load is cancelled with it (and has stopped using the session) before the leader's session is
  rolled back and closed. A load that outlived its leader would run its next query on the closed
  session, which opens a new connection that nothing ever closes ("idle in transaction", holding
  locks). The requests that joined only wait for it (a joiner's own cancellation leaves the load
  alone); when the load was cancelled they load for themselves.

Redis unreachable: RATE_LIMIT_FAILURE_MODE decides (`open` skips the allowance, `closed` answers
503), as for the gate itself.
"""

from __future__ import annotations

import asyncio
import enum
import hmac
import logging
import math
import weakref
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import repository as accounts_repo
from app.accounts.context import KeyContext, has_expired
from app.core.apikeys import hash_key, looks_like_key
from app.core.client_ip import UNKNOWN, limit_bucket
from app.core.config import Settings
from app.gate import errors
from app.gate.cache import KeyCache
from app.models import Account, ApiKey, Plan, utcnow
from app.redis.keys import RedisKeys
from app.redis.port import RedisPort, RedisUnavailable, Script

logger = logging.getLogger("agentmall.gate")

INVALID_KEYS_WINDOW_MS = 60_000

# KEYS[1]: units one address spent this window. ARGV: op ("take" | "give"), limit, window (ms).
# take: 0 when the window is spent, else spend one and 1; give: return a unit. Replies {ok, pttl}.
INVALID_KEYS = Script(
    """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if ARGV[1] == 'give' then
  if n > 0 then redis.call('DECR', KEYS[1]) end
  return {1, 0}
end
local ok = 0
if n < tonumber(ARGV[2]) then
  redis.call('INCR', KEYS[1])
  ok = 1
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  ttl = tonumber(ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return {ok, ttl}
"""
)


KEY_EXPIRED = (
    "This API key has expired after it was rotated (its grace period is over); use the key that "
    "replaced it."
)
ACCOUNT_SUSPENDED = "This account is suspended: none of its keys work; contact support."


def usable(context: KeyContext | None) -> bool:
    """A key that exists, is not revoked and has not expired (a suspended key resolves: the gate
    answers 403)."""
    return context is not None and context.key_status != "revoked" and not context.expired(utcnow())


def refusal(context: KeyContext | None) -> errors.InvalidApiKey:
    """The 401 for an unusable key (saying so when a rotation's grace is over)."""
    if context is not None and context.key_status != "revoked" and context.expired(utcnow()):
        return errors.InvalidApiKey(KEY_EXPIRED)
    return errors.InvalidApiKey()


def refuse_unusable(context: KeyContext | None) -> KeyContext:
    """The context of a usable key, else its 401."""
    if context is None or not usable(context):
        raise refusal(context)
    return context


class InvalidKeyLimiter:
    """Per client address, at most `INVALID_KEYS_PER_IP_PER_MINUTE` failed key lookups a minute."""

    def __init__(self, settings: Settings, redis: RedisPort, keys: RedisKeys) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = keys

    async def take(self, client_ip: str) -> None:
        """Spend one unit of the address's allowance; 429 (with Retry-After) when none is left."""
        try:
            reply = await self._run("take", client_ip)
        except RedisUnavailable as exc:
            if self.settings.RATE_LIMIT_FAILURE_MODE == "closed":
                raise errors.RateLimiterUnavailable() from exc
            return
        if not int(reply[0]):
            retry = max(1, math.ceil(int(reply[1]) / 1000))
            raise errors.TooManyInvalidKeys(headers={"Retry-After": str(retry)}, retry_after=retry)

    async def give(self, client_ip: str) -> None:
        """Return the unit a lookup spent when the key turned out usable."""
        try:
            await self._run("give", client_ip)
        except RedisUnavailable:
            logger.warning("could not return an invalid-key allowance unit: Redis unavailable")

    async def _run(self, op: str, client_ip: str) -> Any:
        key = self.keys.invalid_keys(limit_bucket(client_ip or UNKNOWN))
        limit = self.settings.INVALID_KEYS_PER_IP_PER_MINUTE
        return await self.redis.run_script(INVALID_KEYS, [key], [op, limit, INVALID_KEYS_WINDOW_MS])


class _LeaderGone(enum.Enum):
    """A joined load was cancelled with the request that led it."""

    TOKEN = enum.auto()


_LEADER_GONE = _LeaderGone.TOKEN


@dataclass(eq=False)
class _Flight:
    """One Postgres load of a key, on its leader's session, shared by the requests that join it."""

    client_ip: str | None  # whose allowance it spends; None for a reload (a key known good)
    started: bool = False
    task: asyncio.Future[KeyContext | None] = field(init=False)


class KeyResolver:
    """Resolves API keys for the gate and the control plane (see the module docstring)."""

    def __init__(
        self, settings: Settings, redis: RedisPort, keys: RedisKeys, cache: KeyCache
    ) -> None:
        self.cache = cache
        self.limiter = InvalidKeyLimiter(settings, redis, keys)
        self._flights: dict[str, _Flight] = {}
        _watch_created_keys(self)

    @staticmethod
    def key_hash(raw_key: str | None) -> str:
        """The hash of a well-formed key; 401 for a missing or malformed one (no I/O)."""
        if not raw_key:
            raise errors.MissingApiKey()
        if not looks_like_key(raw_key):
            raise errors.InvalidApiKey()
        return hash_key(raw_key)

    async def resolve(
        self, session: AsyncSession, raw_key: str | None, client_ip: str
    ) -> tuple[str, KeyContext]:
        """The key's hash and context; 401 missing/unknown/revoked/expired, 429 past the
        allowance."""
        key_hash = self.key_hash(raw_key)
        cached = self.cache.get(key_hash)
        if isinstance(cached, KeyContext):
            return key_hash, refuse_unusable(cached)  # the warm path: the clock, no I/O
        if cached is None:  # known unusable: no query, but it spends the allowance
            await self.limiter.take(client_ip)
            raise errors.InvalidApiKey()
        return key_hash, await self._cold(session, key_hash, client_ip)

    async def reload(self, session: AsyncSession, key_hash: str) -> KeyContext | None:
        """Load afresh (after STALE): joins only a reload that has not started its query yet.

        None for a key gone or revoked; 401 for one whose rotation's grace has just ended."""
        flight = self._flights.get(key_hash)
        if flight is not None and not flight.started and flight.client_ip is None:
            joined = await self._join(flight)
            if joined is not _LEADER_GONE:
                return _unexpired(joined)
        return _unexpired(await self._start(session, key_hash, None).task)  # ours: see above

    async def principal(
        self, session: AsyncSession, raw_key: str | None, client_ip: str
    ) -> tuple[ApiKey, Account, Plan]:
        """The control plane's fresh read of a key, behind the same negative cache and allowance.

        401 for an expired key (no query when the cache already knows it), 403 `key_suspended`
        for every key of a suspended account."""
        key_hash = self.key_hash(raw_key)
        cached = self.cache.get(key_hash)
        guarded = not isinstance(cached, KeyContext)
        if isinstance(cached, KeyContext):
            refuse_unusable(cached)  # a cached expiry is final: no query
        else:
            await self.limiter.take(client_ip)  # 429 before any query
        if cached is None:
            raise errors.InvalidApiKey()
        row = await accounts_repo.load_principal(session, key_hash)
        if row is None or row[0].status == "revoked":
            self.cache.put(key_hash, None)
            raise errors.InvalidApiKey()
        if has_expired(row[0].expires_at, utcnow()):
            raise errors.InvalidApiKey(KEY_EXPIRED)  # the allowance unit stays spent
        if guarded:
            await self.limiter.give(client_ip)
        if row[1].status == "suspended":
            raise errors.KeySuspended(ACCOUNT_SUSPENDED)
        return row

    async def matches_secret(self, raw_key: str, secret: str, client_ip: str) -> bool:
        """Constant-time compare with the admin key; a wrong guess spends the allowance (429)."""
        if looks_like_key(raw_key):  # a wrong key-shaped value is limited by `principal` next
            return hmac.compare_digest(raw_key.encode(), secret.encode())
        await self.limiter.take(client_ip)
        if not hmac.compare_digest(raw_key.encode(), secret.encode()):
            raise errors.InvalidApiKey()
        await self.limiter.give(client_ip)
        return True

    async def _cold(self, session: AsyncSession, key_hash: str, client_ip: str) -> KeyContext:
        """Join the load in flight for this key, else start one charged to this address."""
        while (pending := self._flights.get(key_hash)) is not None:
            try:
                joined = await self._join(pending)
            except errors.TooManyInvalidKeys:
                break  # the leader's address had no allowance left; ours may: load for ourselves
            if joined is _LEADER_GONE:
                continue  # its leader was cancelled: join the next load, or lead one
            if joined is not None and usable(joined):
                return joined
            await self.limiter.take(client_ip)  # our failure too (no query of ours)
            raise refusal(joined)
        context = await self._start(session, key_hash, client_ip).task  # ours: not shielded
        return refuse_unusable(context)  # if unusable, the unit it took stays spent

    @staticmethod
    async def _join(flight: _Flight) -> KeyContext | None | _LeaderGone:
        """Wait for a load another request leads: its result (or error), or `_LEADER_GONE`.

        `asyncio.wait`, not `await`: a joiner that is cancelled stops waiting, the load goes on."""
        await asyncio.wait([flight.task])
        if flight.task.cancelled():
            return _LEADER_GONE
        return flight.task.result()

    def _start(self, session: AsyncSession, key_hash: str, client_ip: str | None) -> _Flight:
        flight = _Flight(client_ip)
        flight.task = asyncio.ensure_future(self._fetch(flight, session, key_hash))
        self._flights[key_hash] = flight
        flight.task.add_done_callback(lambda _: self._land(key_hash, flight))
        return flight

    def _land(self, key_hash: str, flight: _Flight) -> None:
        if self._flights.get(key_hash) is flight:
            del self._flights[key_hash]

    async def _fetch(
        self, flight: _Flight, session: AsyncSession, key_hash: str
    ) -> KeyContext | None:
        """Spend the allowance (unless a reload), query, cache, and give the unit back if usable."""
        flight.started = True
        if flight.client_ip is not None:
            await self.limiter.take(flight.client_ip)
        context = await accounts_repo.load_key_context(session, key_hash=key_hash, now=utcnow())
        if self._flights.get(key_hash) is flight:  # else a newer load will cache its own read
            self.cache.put(key_hash, context)
        if flight.client_ip is not None and usable(context):
            await self.limiter.give(flight.client_ip)
        return context


def _unexpired(context: KeyContext | None) -> KeyContext | None:
    """A reloaded context (None for a key gone or revoked), or the 401 of one whose grace ended
    (e.g. rotated with grace 0 while cached here)."""
    if usable(context) or context is None or context.key_status == "revoked":
        return context
    raise refusal(context)


# Resolvers of this process; a key inserted through it drops its hash from their negative maps.
_RESOLVERS: weakref.WeakSet[KeyResolver] = weakref.WeakSet()


def _forget_created(_mapper: Any, _connection: Any, key: ApiKey) -> None:
    """A key was just created: no negative entry may outlive it (cheap, see `app/gate/cache.py`)."""
    for resolver in list(_RESOLVERS):
        resolver.cache.forget_unknown(key.key_hash)


def _watch_created_keys(resolver: KeyResolver) -> None:
    _RESOLVERS.add(resolver)
    if not event.contains(ApiKey, "after_insert", _forget_created):
        event.listen(ApiKey, "after_insert", _forget_created)
