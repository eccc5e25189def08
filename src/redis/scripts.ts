/**
 * The Lua scripts of the Redis store. Each runs atomically in one round trip and reads time from
 * Redis (`TIME`), so that hosts whose clocks disagree still share one timeline. Numbers that may be
 * fractional are returned as strings: Redis truncates Lua numbers to integers.
 */

/**
 * GCRA for a batch of up to `count` tokens. KEYS[1]: the theoretical arrival time (TAT), kept exact:
 * whole microseconds of Redis time and the fraction of a microsecond, `'<µs> <fraction>'` (a float in
 * ms, as `tostring()` writes it, keeps 14 significant digits: 0.1 ms at today's clock, so each token
 * of a limit above ~10,000/s moved the TAT by a rounded step, or not at all). Every subtraction of
 * two times is of whole microseconds, exact in a double up to 2^53 µs (the year 2255).
 * ARGV: limit, interval (ms), burst, maxWait (ms), count, a process id ('' for none), and the tokens
 * of an earlier lease that were never spent, given back first (their time is taken off the TAT).
 *
 * With a process id, KEYS[2] (a sorted set) records that the process is active, and the reply carries
 * how many processes asked within the last 3 s: while Redis is out of reach each of them applies its
 * share of the limit. Returns `{granted, wait, processes}` or `{0, retryAfter, processes}` (ms, as
 * strings; processes 0 when not asked).
 */
export const RESERVE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local maxWait = tonumber(ARGV[4]) * 1000
local count = tonumber(ARGV[5])
local step = interval * 1000 / limit
local processes = 0
if ARGV[6] and ARGV[6] ~= '' then
  redis.call('ZADD', KEYS[2], now, ARGV[6])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 3000000)
  redis.call('PEXPIRE', KEYS[2], 3000)
  processes = redis.call('ZCARD', KEYS[2])
end
local ahead = 0
local stored = redis.call('GET', KEYS[1])
if stored then
  local space = string.find(stored, ' ', 1, true)
  if space then
    ahead = (tonumber(string.sub(stored, 1, space - 1)) - now) + tonumber(string.sub(stored, space + 1))
  else
    ahead = tonumber(stored) * 1000 - now
  end
  if ahead < 0 then ahead = 0 end
end
local function save(at)
  local whole = math.floor(at)
  redis.call('SET', KEYS[1], string.format('%.0f %.17g', now + whole, at - whole), 'PX', math.ceil(at / 1000) + 1000)
end
local back = tonumber(ARGV[7] or '0') or 0
if back > 0 then
  ahead = ahead - back * step
  if ahead < 0 then ahead = 0 end
end
local fit = math.floor((maxWait + burst * step - ahead) / step + 1e-9)
if fit < 1 then
  local retry = ahead + step - burst * step
  if retry < 0 then retry = 0 end
  if back > 0 then save(ahead) end
  return {0, tostring(retry / 1000), processes}
end
if fit > count then fit = count end
local nxt = ahead + fit * step
local wait = nxt - burst * step
if wait < 0 then wait = 0 end
save(nxt)
return {fit, tostring(wait / 1000), processes}
`;

/**
 * Adds a batch of outcomes to the circuit's window and returns the window's totals and the circuit's
 * state. KEYS[1]: open key, KEYS[2]: generation key (a close starts a new window), KEYS[3]: the window,
 * one hash of ARGV[5] buckets of ARGV[4] ms used as a ring (a slot's bucket id says whether its counts
 * are current), so that every key the script touches is declared (Redis Cluster) and the window holds
 * at most 4 × buckets fields. ARGV: calls, failures, slow, bucket length (ms), buckets.
 */
export const RECORD = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local size = tonumber(ARGV[4])
local n = tonumber(ARGV[5])
local gen = redis.call('GET', KEYS[2]) or '0'
local b = math.floor(now / size)
local function slot(bucket) return string.format('%d', bucket % n) end
local function id(bucket) return gen .. ':' .. string.format('%d', bucket) end
if tonumber(ARGV[1]) > 0 then
  local k = slot(b)
  if redis.call('HGET', KEYS[3], k .. ':id') ~= id(b) then
    redis.call('HSET', KEYS[3], k .. ':id', id(b), k .. ':c', 0, k .. ':f', 0, k .. ':s', 0)
  end
  redis.call('HINCRBY', KEYS[3], k .. ':c', ARGV[1])
  redis.call('HINCRBY', KEYS[3], k .. ':f', ARGV[2])
  redis.call('HINCRBY', KEYS[3], k .. ':s', ARGV[3])
  redis.call('PEXPIRE', KEYS[3], size * (n + 1))
end
local c, f, s = 0, 0, 0
for i = 0, n - 1 do
  local k = slot(b - i)
  local v = redis.call('HMGET', KEYS[3], k .. ':id', k .. ':c', k .. ':f', k .. ':s')
  if v[1] == id(b - i) then
    c = c + (tonumber(v[2]) or 0)
    f = f + (tonumber(v[3]) or 0)
    s = s + (tonumber(v[4]) or 0)
  end
end
return {c, f, s, redis.call('GET', KEYS[1]) or '', redis.call('PTTL', KEYS[1])}
`;

/**
 * Opens the circuit for ARGV[1] ms and publishes it on ARGV[3]; KEYS[3] marks the fleet as not closed
 * (open, then half-open until a trial's outcome) for the trial script. Returns `{1, ms}` when it opened it.
 * Without force (ARGV[2] = '0') it does nothing while the circuit is open (`{0, ms left}`), half-open
 * with a trial running (`{0, 0}`: the trial's outcome decides) or isolated (`{-1, 0}`): the caller
 * then follows the fleet instead of running its own trials.
 */
export const OPEN = `
local state = redis.call('GET', KEYS[1])
if state == 'isolated' then return {-1, 0} end
if ARGV[2] ~= '1' then
  if state then return {0, math.max(1, redis.call('PTTL', KEYS[1]))} end
  if redis.call('EXISTS', KEYS[2]) == 1 then return {0, 0} end
end
redis.call('SET', KEYS[1], 'open', 'PX', ARGV[1])
redis.call('SET', KEYS[3], '1', 'PX', tonumber(ARGV[1]) + 86400000)
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[3], 'open:' .. ARGV[1])
return {1, tonumber(ARGV[1])}
`;

/**
 * Closes the circuit with a fresh window (a new generation) and publishes it on ARGV[1]. KEYS: open,
 * trial, generation, not-closed mark.
 */
export const CLOSE = `
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
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
 * Takes the one trial slot for ARGV[2] ms on behalf of the caller's token ARGV[1]. Returns 0 when
 * granted, or the ms to wait before asking again: while the circuit is still open (its time left), or
 * another caller holds the slot (the slot's time left; its outcome usually arrives before). -1 when
 * isolated, -2 when closed (a trial's success closed it, KEYS[3] is gone: there is nothing to try).
 */
export const TRIAL = `
local state = redis.call('GET', KEYS[1])
if state == 'isolated' then return -1 end
if state then return math.max(1, redis.call('PTTL', KEYS[1])) end
if redis.call('EXISTS', KEYS[3]) == 0 then return -2 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
return math.max(1, redis.call('PTTL', KEYS[2]))
`;

/**
 * Hands back the trial slot KEYS[1] if the token ARGV[1] still holds it, and tells the processes
 * waiting for it on ARGV[2] that they may ask again. Returns 1 when it freed the slot.
 */
export const RELEASE_TRIAL = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], 'trial-free')
return 1
`;

/** The circuit's state and the ms its open key has left. */
export const READ = `
return {redis.call('GET', KEYS[1]) or '', redis.call('PTTL', KEYS[1])}
`;

/*
 * A cache is two keys, both in KEYS and in one hash slot: a hash of its values (field: the entry's key)
 * and a sorted set of the same fields scored by their expiry (Redis time, ms). Writes drop expired
 * entries and then the soonest to expire beyond `maxEntries`, so a cache holds at most `maxEntries`
 * values whatever keys callers choose; both keys expire as a whole when nothing writes for longer than
 * an entry lives. A key being computed has a lock key of its own (SET NX PX), which expires if its
 * holder dies. A value that never expires is scored `FOREVER` ms from now (about 31,000 years), so the
 * oldest still goes first.
 */

/**
 * Reads a cached value and the ms it has left (-1: none); with a lock time (ARGV[2] > 0) and no value
 * that is still fresh (more than ARGV[4] ms left), also tries to take the key's lock for ARGV[2] ms with
 * token ARGV[3]. KEYS: values, expiries, lock. ARGV: field, lock ms, token, stale ms. Returns
 * `{data | nil, remaining, lock}`: lock 0 when taken, else the ms the holder's lock has left, or -1 when
 * not asked.
 */
export const CACHE_GET = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local data = false
local remaining = -1
local expires = redis.call('ZSCORE', KEYS[2], ARGV[1])
if expires and tonumber(expires) > now then
  data = redis.call('HGET', KEYS[1], ARGV[1])
  if data then remaining = math.floor(tonumber(expires) - now) end
end
local lock = -1
local ms = tonumber(ARGV[2])
if ms > 0 and remaining <= tonumber(ARGV[4]) then
  if redis.call('SET', KEYS[3], ARGV[3], 'NX', 'PX', ms) then
    lock = 0
  else
    lock = math.max(1, redis.call('PTTL', KEYS[3]))
  end
end
return {data, remaining, lock}
`;

/**
 * Stores a value for ARGV[3] ms (-1: for ever), keeps at most ARGV[4] entries, and releases the key's
 * lock when token ARGV[5] holds it. KEYS: values, expiries, lock. ARGV: field, data, keep, max entries,
 * token ('' for none).
 */
export const CACHE_SET = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local keep = tonumber(ARGV[3])
local before = {redis.call('PTTL', KEYS[1]), redis.call('PTTL', KEYS[2])}
local expires = now + keep
if keep < 0 then expires = now + 1e15 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], expires, ARGV[1])
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)
if #old > 0 then
  redis.call('HDEL', KEYS[1], unpack(old))
  redis.call('ZREM', KEYS[2], unpack(old))
end
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
while excess > 0 do
  local popped = redis.call('ZPOPMIN', KEYS[2], math.min(excess, 1000))
  local fields = {}
  for i = 1, #popped, 2 do fields[#fields + 1] = popped[i] end
  redis.call('HDEL', KEYS[1], unpack(fields))
  excess = excess - #fields
end
for i = 1, 2 do
  if keep < 0 then
    redis.call('PERSIST', KEYS[i])
  elseif before[i] == -2 or (before[i] >= 0 and before[i] < keep) then
    redis.call('PEXPIRE', KEYS[i], keep)
  end
end
if ARGV[5] ~= '' and redis.call('GET', KEYS[3]) == ARGV[5] then redis.call('DEL', KEYS[3]) end
return 1
`;

/** Releases a key's lock if token ARGV[1] still holds it. KEYS: lock. */
export const CACHE_RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** Drops one value. KEYS: values, expiries. ARGV: field. */
export const CACHE_DELETE = `
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`;

/** Drops every value. KEYS: values, expiries. */
export const CACHE_CLEAR = `
redis.call('UNLINK', KEYS[1], KEYS[2])
return 1
`;

/**
 * The fleet's bulkhead, a semaphore with a FIFO queue. KEYS[1]: slots (a sorted set, token → lease
 * end), KEYS[2]: queue (token → arrival number), KEYS[3]: waiters' leases (token → lease end),
 * KEYS[4]: arrival counter. Holders and waiters whose lease ended (their process died) are dropped
 * first. ARGV: token, maxConcurrent, lease (ms), maxQueue (-1: no bound), may queue ('1' or '0').
 *
 * The caller gets a slot when the free slots outnumber the callers queued ahead of it (FIFO,
 * fleet-wide: the slots that are free are kept for the oldest waiters). Returns 1 granted, 0 queued
 * (or still queued: the call renews its place), -1 rejected (full, and no room to queue).
 */
export const BULKHEAD_ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1000)
if #gone > 0 then
  redis.call('ZREM', KEYS[2], unpack(gone))
  redis.call('ZREM', KEYS[3], unpack(gone))
end
local free = tonumber(ARGV[2]) - redis.call('ZCARD', KEYS[1])
local rank = redis.call('ZRANK', KEYS[2], ARGV[1])
local ahead = rank or redis.call('ZCARD', KEYS[2])
local result = 0
if ahead < free then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
  if rank then
    redis.call('ZREM', KEYS[2], ARGV[1])
    redis.call('ZREM', KEYS[3], ARGV[1])
  end
  result = 1
else
  if not rank then
    local max = tonumber(ARGV[4])
    if ARGV[5] ~= '1' or (max >= 0 and ahead >= max) then return -1 end
    redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), ARGV[1])
  end
  redis.call('ZADD', KEYS[3], now + lease, ARGV[1])
end
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], lease * 3) end
return result
`;

/**
 * Extends the leases of one process's slots and queued callers. KEYS as in {@link BULKHEAD_ACQUIRE}.
 * ARGV: lease, then the tokens. Returns how many of them were found (held or queued).
 */
export const BULKHEAD_RENEW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
local found = 0
for i = 2, #ARGV do
  found = found + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + lease, ARGV[i])
  found = found + redis.call('ZADD', KEYS[3], 'XX', 'CH', now + lease, ARGV[i])
end
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], lease * 3) end
return found
`;

/**
 * Gives back the slot or the place in the queue of token ARGV[1]; when a slot frees and callers are
 * queued, tells them on channel ARGV[2]. KEYS: slots, queue, waiters' leases. Returns 1 if a slot
 * was freed.
 */
export const BULKHEAD_RELEASE = `
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local freed = redis.call('ZREM', KEYS[1], ARGV[1])
if freed == 1 and redis.call('ZCARD', KEYS[2]) > 0 then redis.call('PUBLISH', ARGV[2], 'free') end
return freed
`;
