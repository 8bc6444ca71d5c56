"""The Lua scripts every change to the shared store goes through.

Each runs atomically inside Redis, and each reads the time with ``TIME`` there: one
clock for the whole fleet, whatever the machines' own clocks say. Times travel as text
(``%.6f`` seconds): Redis turns a Lua number in a reply into an integer.
"""

from __future__ import annotations

TRANSITION = """
-- KEYS[1] the record hash, KEYS[2] the fleet's runs of failures (a transition ends them).
-- ARGV[1] the version the writer last saw ('*': any),
-- ARGV[2] the channel, ARGV[3] the breaker's name, ARGV[4..13] the payload:
-- state, reason, cooldown, cooldown_level, trips, consecutive_trips, tripped_by,
-- opened_ago, open_for, calm_for (durations in seconds, '' for none).
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local stamp = string.format('%.6f', now)
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if ARGV[1] ~= '*' and current ~= tonumber(ARGV[1]) then
  return {0, stamp, redis.call('HGETALL', KEYS[1])}
end
local function back(d)
  if d == '' then return '' end
  return string.format('%.6f', now - tonumber(d))
end
local function ahead(d)
  if d == '' then return '' end
  return string.format('%.6f', now + tonumber(d))
end
redis.call('HSET', KEYS[1],
  'version', tostring(current + 1), 'state', ARGV[4], 'reason', ARGV[5],
  'cooldown', ARGV[6], 'cooldown_level', ARGV[7], 'trips', ARGV[8],
  'consecutive_trips', ARGV[9], 'tripped_by', ARGV[10],
  'opened_at', back(ARGV[11]), 'open_until', ahead(ARGV[12]), 'calm_since', back(ARGV[13]))
redis.call('DEL', KEYS[2])
local fields = redis.call('HGETALL', KEYS[1])
redis.call('PUBLISH', ARGV[2], cjson.encode({name = ARGV[3], now = stamp, fields = fields}))
return {1, stamp, fields}
"""

READ = """
-- KEYS: record hashes. Returns the server's time, then each hash's fields.
local t = redis.call('TIME')
local out = {string.format('%.6f', tonumber(t[1]) + tonumber(t[2]) / 1000000)}
for i, key in ipairs(KEYS) do
  out[i + 1] = redis.call('HGETALL', key)
end
return out
"""

LEASE_ACQUIRE = """
-- KEYS[1] the lease set (member: token, score: expiry in ms on the server's clock).
-- ARGV[1] token, ARGV[2] ttl in ms, ARGV[3] how many leases may be out at once.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""

LEASE_RELEASE = """
-- KEYS[1] the lease set, ARGV[1] the token: gives one lease back (0 if it had expired).
return redis.call('ZREM', KEYS[1], ARGV[1])
"""

RUN = """
-- KEYS[1] the fleet's runs of failures for one breaker (field: a process, value: its
-- current run, in failed requests). ARGV[1] the process, ARGV[2] its run ('0': over),
-- ARGV[3] ttl in ms (runs nobody added to for that long are over). Returns the sum.
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
end
local total = 0
for _, run in ipairs(redis.call('HVALS', KEYS[1])) do
  total = total + tonumber(run)
end
return string.format('%.6f', total)
"""
