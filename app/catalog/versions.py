"""Product versions in Redis: what lets a warm instance answer a product read from its own memory
without a database statement, and never with a stale product.

One Redis hash (`RedisKeys.product_versions`) holds a field per SKU (lower-cased: reads match SKUs
case-insensitively, so a write to any spelling of a SKU changes the one field all of them read):

- a **version**, `t:<random>`: a value never given twice, whatever Redis forgets;
- a **pending mark**, `p:<Redis ms>:<writer>`: a transaction that writes the product is committing;
- nothing: never read since Redis lost its data (or since the product's first write).

The gate script reads the fields of the SKUs a request asks for in its one command, together with
the hash's `@epoch` (a random value it creates when missing, so it changes whenever Redis loses the
hash). The rules that make an instance's copy (app/catalog/cache.py) never stale:

1. **Writers mark, commit, then settle.** Every transaction that writes a product or its stock
   names the SKUs (`touch`); just before its COMMIT the unit of work marks them pending (a writer
   that cannot reach Redis is refused with a 503 before anything commits), and after the COMMIT —
   or a rollback — settles each to a new version. A settle leaves alone another writer's mark that
   has not expired (that writer settles it).
2. **A reader caches only under a value it saw before it read PostgreSQL.** Any write committed
   after that value was seen had marked the field before committing, so the field no longer holds
   that value: the copy can only be served while no write has happened since it was read.
3. **A field with nothing, or a mark older than `PENDING_TTL_MS`** (its writer crashed between
   commit and settle: the COMMIT has long ended), is repaired by the reader that read PostgreSQL
   after seeing it: `SEED` sets a new version only if the field and the hash's epoch still hold
   what that reader saw, and the reader keeps its copy under that new version. A fresh pending
   mark is read from PostgreSQL and not cached.

Steady state, a warm product read is one Redis command (the gate's) and no SQL; the first read of
a product on an instance, or the first after a change, reads PostgreSQL once; a product whose
field must be repaired costs one more Redis command, once.
"""

import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import AppError
from app.redis.keys import RedisKeys
from app.redis.port import RedisPort, RedisUnavailable, Script

logger = logging.getLogger("agentmall.catalog")

EPOCH_FIELD = "@epoch"  # no SKU starts with "@" (SKU_PATTERN)
VERSION_PREFIX = "t:"
PENDING_PREFIX = "p:"
# A pending mark older than this is a writer that died between COMMIT and settle: the mark is set
# right before the COMMIT, so its transaction has ended long before.
PENDING_TTL_MS = 30_000
CHANGED = "agentmall.changed_products"  # session.info: the lower-cased SKUs a unit wrote
MARKED = "agentmall.product_mark"  # session.info: the pending mark this unit set

# KEYS: 1 versions hash. ARGV: 1 writer id, 2 new epoch (used if the hash has none), 3.. SKUs.
# Returns the mark.
MARK = Script(
    """
if not redis.call('HGET', KEYS[1], '@epoch') then redis.call('HSET', KEYS[1], '@epoch', ARGV[2]) end
local t = redis.call('TIME')
local mark = 'p:' .. (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) .. ':' .. ARGV[1]
for i = 3, #ARGV do redis.call('HSET', KEYS[1], ARGV[i], mark) end
return mark
"""
)

# KEYS: 1 versions hash. ARGV: 1 this writer's mark, 2 pending TTL (ms), then (SKU, version) pairs.
# Every field becomes its new version unless another writer's mark, not yet expired, holds it.
SETTLE = Script(
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local settled = 0
for i = 3, #ARGV, 2 do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  local other = false
  if v and v ~= ARGV[1] and string.sub(v, 1, 2) == 'p:' then
    local at = tonumber(string.match(v, '^p:(%d+):'))
    other = at ~= nil and now - at < tonumber(ARGV[2])
  end
  if not other then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    settled = settled + 1
  end
end
return settled
"""
)

# KEYS: 1 versions hash. ARGV: 1 the epoch the reader saw, 2 pending TTL (ms), then (SKU, value the
# reader saw or '' for none, new version) triples. A field is set only while it still holds what
# the reader saw (nothing, or an expired mark) and the hash still has that epoch. Returns 1/0 each.
SEED = Script(
    """
local out = {}
if redis.call('HGET', KEYS[1], '@epoch') ~= ARGV[1] then
  for i = 3, #ARGV, 3 do out[#out + 1] = 0 end
  return out
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 3, #ARGV, 3 do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  local ok = false
  if ARGV[i + 1] == '' then
    ok = not v
  elseif v == ARGV[i + 1] then
    local at = tonumber(string.match(v, '^p:(%d+):') or '')
    ok = at ~= nil and now - at >= tonumber(ARGV[2])
  end
  if ok then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2]) end
  out[#out + 1] = ok and 1 or 0
end
return out
"""
)


class CatalogWriteUnavailable(AppError):
    status_code = 503
    code = "catalog_write_unavailable"
    default_message = (
        "Redis is unavailable, so this change could not be announced to the API's instances; "
        "nothing was written. Retry shortly."
    )

    def __init__(self, message: str | None = None, **extra: object) -> None:
        super().__init__(message, headers={"Retry-After": "1"}, **extra)


def field_of(sku: str) -> str:
    return sku.lower()


def new_version() -> str:
    return VERSION_PREFIX + secrets.token_hex(8)


def touch(session: AsyncSession, skus: Iterable[str]) -> None:
    """Name SKUs this unit of work writes (product row or stock): their versions change when it
    ends. Called by every statement that writes `products` or `inventory`."""
    session.info.setdefault(CHANGED, set()).update(field_of(sku) for sku in skus)


@dataclass(frozen=True, slots=True)
class Seen:
    """What the gate's command said about the versions of the SKUs a request asks for."""

    epoch: str = ""
    values: dict[str, str | None] = field(default_factory=dict)  # field -> raw value
    now_ms: int = 0  # Redis's clock when it read them

    def version(self, sku: str) -> str | None:
        """The settled version a copy may be served or kept under; None if there is none."""
        value = self.values.get(field_of(sku))
        return value if value and value.startswith(VERSION_PREFIX) else None

    def repairable(self, sku: str) -> tuple[bool, str]:
        """Whether a reader may seed this field after reading PostgreSQL, and the value it saw
        ('' for none): nothing there, or a mark whose writer is long gone."""
        key = field_of(sku)
        if not self.epoch or key not in self.values:
            return False, ""
        value = self.values[key]
        if value is None:
            return True, ""
        if value.startswith(PENDING_PREFIX):
            at = value.split(":", 2)[1]
            expired = at.isdigit() and self.now_ms - int(at) >= PENDING_TTL_MS
            return expired, value
        return False, value


def seen_from_reply(reply: Any, now_ms: int, skus: Sequence[str]) -> Seen:
    """`Seen` from the gate script's 13th element ({epoch, {values}}), or an empty one."""
    if not isinstance(reply, list | tuple) or len(reply) != 2:
        return Seen()
    epoch, values = reply
    fields = list(dict.fromkeys(field_of(s) for s in skus))
    raw = list(values or [])
    return Seen(
        epoch=_text(epoch),
        values={f: (_text(v) or None) for f, v in zip(fields, raw, strict=False)},
        now_ms=now_ms,
    )


def _text(value: Any) -> str:
    if value is None or value is False:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


class ProductVersions:
    """Redis's side: mark and settle for writers, seed for readers."""

    def __init__(self, redis: RedisPort, keys: RedisKeys) -> None:
        self.redis = redis
        self.key = keys.product_versions

    async def mark(self, fields: Sequence[str]) -> str:
        writer = secrets.token_hex(6)
        mark = await self.redis.run_script(
            MARK, [self.key], [writer, secrets.token_hex(8), *fields]
        )
        return _text(mark)

    async def settle(self, mark: str, fields: Sequence[str]) -> None:
        pairs: list[str] = []
        for name in fields:
            pairs += [name, new_version()]
        await self.redis.run_script(SETTLE, [self.key], [mark, PENDING_TTL_MS, *pairs])

    async def seed(self, seen: Seen, wanted: Sequence[tuple[str, str]]) -> dict[str, str]:
        """Seed `(field, value seen)` pairs; the new version of each field that took it. One
        command; nothing if Redis is away (the copies are then simply not kept)."""
        triples: list[str] = []
        versions: list[str] = []
        for name, value in wanted:
            version = new_version()
            triples += [name, value, version]
            versions.append(version)
        try:
            reply = await self.redis.run_script(
                SEED, [self.key], [seen.epoch, PENDING_TTL_MS, *triples]
            )
        except RedisUnavailable:
            return {}
        taken = list(reply or [])
        return {
            name: version
            for (name, _), version, ok in zip(wanted, versions, taken, strict=False)
            if int(ok) == 1
        }

    # --- the unit of work's hooks (app/core/db.py) ---------------------------------------------

    async def before_commit(self, session: AsyncSession) -> None:
        fields = sorted(session.info.get(CHANGED) or ())
        if not fields:
            return
        try:
            session.info[MARKED] = await self.mark(fields)
        except RedisUnavailable as exc:
            raise CatalogWriteUnavailable() from exc

    async def after_end(self, session: AsyncSession, *, committed: bool) -> None:
        fields = sorted(session.info.pop(CHANGED, None) or ())
        mark = session.info.pop(MARKED, None)
        if not fields or mark is None:
            return
        try:
            await self.settle(mark, fields)
        except RedisUnavailable:
            # the marks stay: reads go to PostgreSQL until they expire, then repair them
            logger.warning(
                "product versions of %d SKU(s) not settled (Redis unavailable); their pending "
                "marks expire in %d s",
                len(fields),
                PENDING_TTL_MS // 1000,
            )
