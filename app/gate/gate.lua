-- AgentMall gate: one atomic call per metered request. Every clock reading is Redis's own
-- (`TIME`), so instances with skewed clocks enforce the same window and pick the same period.
-- Checks, in order, without consuming anything unless the request is admitted:
--   1. freshness: the caller's cached account/plan versions are not older than Redis says
--      (a revoke, suspension or plan change bumps them: every instance notices on the next call);
--   2. the billing period: the paid period when Redis's clock is inside it; after it ended (the
--      renewal gap, until the webhook reports the new one) the subscription's next period,
--      computed by the caller from its billing cycle; else the calendar month (UTC);
--   3. the caller's verdict from its (now known fresh) cache: suspended / feature / payment;
--   4. a request id already settled by the degraded-mode reconciliation (LATE: never count it);
--   5. the monthly quota (hard plans only: soft plans are served and billed as overage);
--   6. the per-minute window: one hash field per second of Redis time, exactly the last 60
--      seconds (the current one and the 59 before it), plus its total `n` and oldest second `o`
--      (at most 62 fields per account, whatever the plan's limit). A unit counted in second s
--      leaves the window at s + 60, so Retry-After is at most 60.
-- Then it records the request: window bucket, period total `n`, per-day|endpoint counter, the
-- admission bucket `b:<start s>` (units admitted in that bucket of ARGV[21] seconds, net of
-- refunds: the roll-up bills a bucket only once no refund can reach it any more), the hash's
-- change counter `c` (the roll-up acknowledges a snapshot only if `c` did not move), the dirty
-- mark, the live top-usage board, the request id (for degraded-mode reconciliation), and when the
-- key was last used (`<key id> = now s` in the account's last-used hash, kept ARGV[23] seconds).
-- Expiries are re-armed, and old request ids trimmed, by the account's first admission in each
-- second only. A refused request (every return before the admission below) writes none of these.
--
-- The usage hash, top board and id set are named from Redis's clock, so they are built here from
-- the prefixes in ARGV rather than passed in KEYS. That is fine on a single Redis and on Upstash
-- (scripts without `allow-key-locking` run under its global lock); Redis Cluster would need tags.
--
-- `civil` and `days_from_civil` come from app/usage/calendar.lua, prepended when it is loaded.
--
-- An admitted request that reads products also gets their versions (app/catalog/versions.py):
-- the fields ARGV[25..] of the versions hash KEYS[7], and the hash's `@epoch` (created from
-- ARGV[24] when missing, so it changes whenever Redis has lost the hash).
--
-- KEYS: 1 account version, 2 plan version, 3 minute window (hash), 4 dirty (zset), 5 ids (zset),
--       6 last used (hash: key id -> Redis time in seconds of its last admitted request),
--       7 product versions (hash: lower-cased SKU -> version)
-- ARGV: 1 account version, 2 plan version, 3 verdict (a status code; 0 = admit), 4 per-minute limit,
--       5 quota, 6 hard (1/0), 7 cost, 8 endpoint, 9 rolled-up base used, 10 its period start (s),
--       11 paid period start (s; 0 = none), 12 paid period end (s), 13 new epoch id,
--       14 usage key prefix, 15 top key prefix, 16 usage retention after the period (s),
--       17 request id, 18 id retention (ms), 19 account id, 20 the paid period after ARGV[11..12]
--       ends (s; 0 = none), 21 admission bucket width (s), 22 key id, 23 last-used retention (s),
--       24 new epoch of the product versions hash, 25.. the product fields to read (none: skip)
-- Returns {status, account v, plan v, window count, window reset ms, used, epoch, now ms,
--          period start s, period end s, usage field, admission bucket field,
--          {product versions epoch, {values}} (admitted with ARGV[25..] only; else {})}
local ADMIT, STALE, SUSPENDED, FEATURE, PAYMENT, QUOTA, RATE, LATE = 0, 1, 2, 3, 4, 5, 6, 7
local WINDOW_S = 60  -- seconds now - 59 .. now

local versions = redis.call('MGET', KEYS[1], KEYS[2])
local av, pv = tonumber(versions[1] or '0'), tonumber(versions[2] or '0')
if av > tonumber(ARGV[1]) or pv > tonumber(ARGV[2]) then
  return {STALE, av, pv, 0, 0, 0, '', 0, 0, 0, '', ''}
end

local t = redis.call('TIME')
local now_s = tonumber(t[1])
local now_ms = now_s * 1000 + math.floor(tonumber(t[2]) / 1000)

local today = math.floor(now_s / 86400)
local y, m, d = civil(today)
local start_s, end_s
local paid_start, paid_end = tonumber(ARGV[11]), tonumber(ARGV[12])
local next_end = tonumber(ARGV[20])
if paid_start > 0 and paid_start <= now_s and now_s < paid_end then
  start_s, end_s = paid_start, paid_end
elseif paid_start > 0 and paid_end <= now_s and now_s < next_end then
  start_s, end_s = paid_end, next_end  -- the renewal gap: the next period, not the month
else
  start_s = days_from_civil(y, m, 1) * 86400
  if m == 12 then end_s = days_from_civil(y + 1, 1, 1) * 86400
  else end_s = days_from_civil(y, m + 1, 1) * 86400 end
end
local field = string.format('%04d-%02d-%02d|%s', y, m, d, ARGV[8])
local usage_key = ARGV[14] .. start_s
local width = tonumber(ARGV[21])
local bucket = 'b:' .. (now_s - now_s % width)
local rid = ARGV[17]

-- the minute window: `n` (units in it) and `o` (its oldest second) answer most calls; the
-- per-second fields are read only when a second has left the window (to trim) or on a denial
local rpm = tonumber(ARGV[4])
local cost = tonumber(ARGV[7])
local oldest = now_s - WINDOW_S + 1
local w = redis.call('HMGET', KEYS[3], 'n', 'o')
local count, first = tonumber(w[1] or '0'), tonumber(w[2] or '0')  -- first 0: empty

local function seconds()  -- {sec, ...} ascending and {sec = units} of the live buckets
  local secs, units = {}, {}
  local all = redis.call('HGETALL', KEYS[3])
  for i = 1, #all, 2 do
    if all[i] ~= 'n' and all[i] ~= 'o' then
      local sec = tonumber(all[i])
      if sec < oldest then
        redis.call('HDEL', KEYS[3], all[i])
      else
        secs[#secs + 1] = sec
        units[sec] = tonumber(all[i + 1])
      end
    end
  end
  table.sort(secs)
  return secs, units
end

if first ~= 0 and first < oldest then
  local secs, units = seconds()
  count, first = 0, secs[1] or 0
  for _, sec in ipairs(secs) do count = count + units[sec] end
  if first == 0 then redis.call('DEL', KEYS[3])
  else redis.call('HSET', KEYS[3], 'n', count, 'o', first) end
end

local usage = redis.call('HMGET', usage_key, 'n', 'e')
local fresh = not usage[1]  -- no counter for this period yet (new period, or Redis lost it)
local used, epoch
if fresh then
  used = tonumber(ARGV[10]) == start_s and tonumber(ARGV[9]) or 0
  epoch = ARGV[13]
else
  used = tonumber(usage[1])
  epoch = usage[2] or ''
end

local products = {}
local function reply(status, reset_ms)
  return {status, av, pv, count, reset_ms, used, epoch, now_ms, start_s, end_s, field, bucket,
          products}
end

-- when the window next has room for `extra` more units (ms epoch): the oldest buckets leave
-- first, a unit of second s at s + 60
local function reset_at(extra)
  local need = count + extra - rpm
  if first == 0 then return (now_s + WINDOW_S) * 1000 end
  if need <= 1 then  -- the oldest bucket leaving is enough (every bucket holds at least one unit)
    return (first + WINDOW_S) * 1000
  end
  local secs, units = seconds()
  local freed = 0
  for _, sec in ipairs(secs) do
    freed = freed + units[sec]
    if freed >= need then return (sec + WINDOW_S) * 1000 end
  end
  return (now_s + WINDOW_S) * 1000
end

local verdict = tonumber(ARGV[3])
if verdict ~= ADMIT then
  return reply(verdict, 0)
end
if redis.call('ZSCORE', KEYS[5], 'x:' .. rid) then
  return reply(LATE, 0)
end
if ARGV[6] == '1' and used + cost > tonumber(ARGV[5]) then
  return reply(QUOTA, reset_at(cost))
end
if count + cost > rpm then
  return reply(RATE, reset_at(cost))
end

-- The first admission of this account in this second (the window's field for it is new: the
-- window is never refunded) also does what only has to happen once a second: re-arm the expiries
-- (each key then outlives its newest entry, which is at most this second old, by its retention)
-- and trim request ids past their retention.
local new_second = redis.call('HINCRBY', KEYS[3], tostring(now_s), cost) == cost
redis.call('HINCRBY', KEYS[3], 'n', cost)
if first == 0 then
  first = now_s
  redis.call('HSET', KEYS[3], 'o', first)
end
if new_second then redis.call('EXPIRE', KEYS[3], WINDOW_S + 2) end
if fresh then
  redis.call('HSET', usage_key, 'e', epoch, 'n', used + cost, field, cost, bucket, cost, 'c', 1)
  redis.call('EXPIREAT', usage_key, end_s + tonumber(ARGV[16]))
else
  redis.call('HINCRBY', usage_key, 'n', cost)
  redis.call('HINCRBY', usage_key, field, cost)
  redis.call('HINCRBY', usage_key, bucket, cost)
  redis.call('HINCRBY', usage_key, 'c', 1)
end
redis.call('ZADD', KEYS[4], now_ms, usage_key)
local top_key = ARGV[15] .. month_start(now_s)
if tonumber(redis.call('ZINCRBY', top_key, cost, ARGV[19])) == cost then
  redis.call('EXPIRE', top_key, 40 * 86400)  -- a new member: (re)arm the month's expiry
end
local keep_ms = tonumber(ARGV[18])
redis.call('ZADD', KEYS[5], now_ms, rid)
redis.call('HSET', KEYS[6], ARGV[22], now_s)
if new_second then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now_ms - keep_ms)
  redis.call('PEXPIRE', KEYS[5], keep_ms + 1000)  -- ids added later this second live keep_ms too
  redis.call('EXPIRE', KEYS[6], tonumber(ARGV[23]))
end
count = count + cost
used = used + cost
if #ARGV >= 25 then
  local values = redis.call('HMGET', KEYS[7], '@epoch', unpack(ARGV, 25, #ARGV))
  local product_epoch = table.remove(values, 1)
  if not product_epoch then
    product_epoch = ARGV[24]
    redis.call('HSET', KEYS[7], '@epoch', product_epoch)
  end
  products = {product_epoch, values}
end
return reply(ADMIT, reset_at(0))
