-- AgentMall gate: one atomic call per metered request.
-- Checks, in order, without consuming anything unless the request is admitted:
--   1. freshness: the caller's cached account/plan versions are not older than Redis says
--      (a revoke, suspension or plan change bumps them: every instance notices on the next call);
--   2. the caller's verdict from its (now known fresh) cache: suspended / feature / payment;
--   3. the monthly quota (hard plans only: soft plans are served and billed as overage);
--   4. the per-minute sliding window (an exact log: one sorted-set member per unit of cost).
-- Then it records the request: window members, period total, per-day|endpoint counter, and marks
-- the usage hash dirty for the roll-up to Postgres. Returns only integers and one string (epoch).
--
-- KEYS: 1 account version, 2 plan version, 3 minute window (zset), 4 usage hash, 5 dirty (zset)
-- ARGV: 1 account version, 2 plan version, 3 verdict (a status code; 0 = admit), 4 now ms, 5 window ms, 6 per-minute limit,
--       7 quota, 8 hard (1/0), 9 cost, 10 request id, 11 usage field, 12 base used,
--       13 new epoch id, 14 usage ttl seconds
local ADMIT, STALE, SUSPENDED, FEATURE, PAYMENT, QUOTA, RATE = 0, 1, 2, 3, 4, 5, 6

local av = tonumber(redis.call('GET', KEYS[1]) or '0')
local pv = tonumber(redis.call('GET', KEYS[2]) or '0')
if av > tonumber(ARGV[1]) or pv > tonumber(ARGV[2]) then
  return {STALE, av, pv, 0, 0, 0, ''}
end

local now = tonumber(ARGV[4])
local win = tonumber(ARGV[5])
local rpm = tonumber(ARGV[6])
local quota = tonumber(ARGV[7])
local cost = tonumber(ARGV[9])

redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - win)
local count = redis.call('ZCARD', KEYS[3])

local used = redis.call('HGET', KEYS[4], 'n')
local epoch
if used then
  used = tonumber(used)
  epoch = redis.call('HGET', KEYS[4], 'e') or ''
else
  used = tonumber(ARGV[12])
  epoch = ARGV[13]
end

local verdict = tonumber(ARGV[3])
if verdict ~= ADMIT then
  return {verdict, av, pv, count, 0, used, epoch}
end

-- when the window would next have room for `cost` more units (ms epoch)
local function reset_at(extra)
  local idx = count + extra - rpm - 1
  if idx < 0 then idx = 0 end
  local oldest = redis.call('ZRANGE', KEYS[3], idx, idx, 'WITHSCORES')
  if oldest[2] then return tonumber(oldest[2]) + win end
  return now + win
end

if ARGV[8] == '1' and used + cost > quota then
  return {QUOTA, av, pv, count, reset_at(cost), used, epoch}
end
if count + cost > rpm then
  return {RATE, av, pv, count, reset_at(cost), used, epoch}
end

for i = 1, cost do
  redis.call('ZADD', KEYS[3], now, ARGV[10] .. ':' .. i)
end
redis.call('PEXPIRE', KEYS[3], win)
if redis.call('HSETNX', KEYS[4], 'e', epoch) == 1 then
  redis.call('HSET', KEYS[4], 'n', used)
end
redis.call('HINCRBY', KEYS[4], 'n', cost)
redis.call('HINCRBY', KEYS[4], ARGV[11], cost)
redis.call('EXPIRE', KEYS[4], tonumber(ARGV[14]))
redis.call('ZADD', KEYS[5], now, KEYS[4])
count = count + cost
return {ADMIT, av, pv, count, reset_at(0), used + cost, epoch}
