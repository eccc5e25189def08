/**
 * The Lua scripts of the Redis store. Each runs atomically in one round trip and reads time from
 * Redis (`TIME`), so that hosts whose clocks disagree still share one timeline. Numbers that may be
 * fractional are returned as strings: Redis truncates Lua numbers to integers.
 */

/**
 * GCRA for a batch of up to `count` tokens. KEYS[1]: the theoretical arrival time (ms, Redis time).
 * ARGV: limit, interval, burst, maxWait, count. Returns `{granted, wait}` or `{0, retryAfter}`.
 */
export const RESERVE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local limit = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local maxWait = tonumber(ARGV[4])
local count = tonumber(ARGV[5])
local step = interval / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local fit = math.floor((maxWait + burst * step - (tat - now)) / step + 1e-9)
if fit < 1 then
  local retry = tat + step - now - burst * step
  if retry < 0 then retry = 0 end
  return {0, tostring(retry)}
end
if fit > count then fit = count end
local nxt = tat + fit * step
local wait = nxt - now - burst * step
if wait < 0 then wait = 0 end
redis.call('SET', KEYS[1], tostring(nxt), 'PX', math.ceil(nxt - now) + 1000)
return {fit, tostring(wait)}
`;

/**
 * Adds a batch of outcomes to the circuit's window and returns the window's totals and the circuit's
 * state. KEYS[1]: open key, KEYS[2]: generation key (a close starts a new window). ARGV: bucket key
 * prefix, calls, failures, slow, bucket length (ms), buckets.
 */
export const RECORD = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local size = tonumber(ARGV[5])
local n = tonumber(ARGV[6])
local gen = redis.call('GET', KEYS[2]) or '0'
local base = ARGV[1] .. gen .. ':'
local b = math.floor(now / size)
if tonumber(ARGV[2]) > 0 then
  local key = base .. string.format('%d', b)
  redis.call('HINCRBY', key, 'c', ARGV[2])
  redis.call('HINCRBY', key, 'f', ARGV[3])
  redis.call('HINCRBY', key, 's', ARGV[4])
  redis.call('PEXPIRE', key, size * (n + 1))
end
local c, f, s = 0, 0, 0
for i = 0, n - 1 do
  local v = redis.call('HMGET', base .. string.format('%d', b - i), 'c', 'f', 's')
  c = c + (tonumber(v[1]) or 0)
  f = f + (tonumber(v[2]) or 0)
  s = s + (tonumber(v[3]) or 0)
end
return {c, f, s, redis.call('GET', KEYS[1]) or '', redis.call('PTTL', KEYS[1])}
`;

/**
 * Opens the circuit for ARGV[1] ms and publishes it on ARGV[3]. Without force (ARGV[2] = '0') it
 * does nothing while the circuit is open, isolated, or half-open (a trial holds KEYS[2]).
 */
export const OPEN = `
local state = redis.call('GET', KEYS[1])
if state == 'isolated' then return 0 end
if ARGV[2] ~= '1' and (state or redis.call('EXISTS', KEYS[2]) == 1) then return 0 end
redis.call('SET', KEYS[1], 'open', 'PX', ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[3], 'open:' .. ARGV[1])
return 1
`;

/** Closes the circuit with a fresh window (a new generation) and publishes it on ARGV[1]. */
export const CLOSE = `
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[1], 'closed')
return 1
`;

/** Holds the circuit open until a close, and publishes it on ARGV[1]. */
export const ISOLATE = `
redis.call('SET', KEYS[1], 'isolated')
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[1], 'isolated')
return 1
`;

/**
 * Takes the one trial slot for ARGV[1] ms. Returns 0 when granted, or the ms to wait before asking
 * again: while the circuit is still open (its time left), or another process holds the slot (the
 * slot's time left; its outcome usually arrives before). -1 when isolated.
 */
export const TRIAL = `
local state = redis.call('GET', KEYS[1])
if state == 'isolated' then return -1 end
if state then return math.max(1, redis.call('PTTL', KEYS[1])) end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return 0 end
return math.max(1, redis.call('PTTL', KEYS[2]))
`;

/** The circuit's state and the ms its open key has left. */
export const READ = `
return {redis.call('GET', KEYS[1]) or '', redis.call('PTTL', KEYS[1])}
`;

/** A cached value and the ms it has left. */
export const GET = `
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
`;
