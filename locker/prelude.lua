-- prelude.lua is prepended to every script of this package (see scripts.go).
-- Scripts take named arguments, so that a part a call does not need is
-- simply absent, with no stand-in keys or positional flags:
--   ARGV[1]      comma-separated names of KEYS, in order ("lease,meta,mark")
--   ARGV[2..n]   name/value pairs ("token", "ab12...", "ttl", "30000", ...)
-- K[name] is a key (nil when not given), A[name] an argument (nil likewise).
-- Records are opaque strings built by the caller: no script parses one.
-- A script sent alone reads its call with load_call(1, 1, #ARGV) (see
-- scripts.go); batch.lua reads several calls from one command line.
local K, A, now_cache = {}, {}, nil

-- load_call makes the call whose key names are ARGV[ai] (its keys KEYS[ki]
-- on) and whose name/value pairs are ARGV[ai+1..last] the current one: K
-- and A, and a fresh reading of the clock. It returns the index of the
-- first key after the call's.
local function load_call(ki, ai, last)
  K, A, now_cache = {}, {}, nil
  for name in string.gmatch(ARGV[ai], "[^,]+") do
    K[name] = KEYS[ki]
    ki = ki + 1
  end
  for j = ai + 1, last - 1, 2 do
    A[ARGV[j]] = ARGV[j + 1]
  end
  return ki
end

-- now_ms is the server's clock (TIME) in milliseconds, read once per call.
local function now_ms()
  if not now_cache then
    local t = redis.call("TIME")
    now_cache = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now_cache
end

-- before_due is the wait, in ms, until A.due (a slot claim sent ahead of
-- its slot), or false once it is due or without A.due.
local function before_due()
  if not A.due then
    return false
  end
  local wait = tonumber(A.due) - now_ms()
  return wait > 0 and wait
end

-- push_history adds a final record to the job's history, a sorted set
-- scored by the record's slot (A.history_score, ms), and keeps only the
-- newest A.history_len records younger than A.history_ttl ms.
local function push_history(record)
  if K.history then
    local now = now_ms()
    redis.call("ZADD", K.history, A.history_score or now, record)
    redis.call("ZREMRANGEBYRANK", K.history, 0, -(tonumber(A.history_len) + 1))
    redis.call("ZREMRANGEBYSCORE", K.history, "-inf", "(" .. (now - tonumber(A.history_ttl)))
    redis.call("PEXPIRE", K.history, A.history_ttl)
  end
end

-- running_set records that the claim's run holds its lease until now +
-- A.ttl in the job's index of running runs (K.running, a sorted set of mark
-- keys scored by lease expiry), dropping the entries that expired. The
-- index is deleted with its last entry (running_clear), so most claims find
-- none: they create it, with nothing to drop.
local function running_set()
  if K.running and K.mark then
    local now, ttl = now_ms(), tonumber(A.ttl)
    local pttl = redis.call("PTTL", K.running)
    if pttl ~= -2 and redis.call("ZREMRANGEBYSCORE", K.running, "-inf", now) > 0 then
      -- the drop may have emptied, and so deleted, the index
      pttl = redis.call("PTTL", K.running)
    end
    redis.call("ZADD", K.running, now + ttl, K.mark)
    if pttl < ttl then
      redis.call("PEXPIRE", K.running, ttl)
    end
  end
end

-- running_clear removes the claim's run from the index of running runs.
local function running_clear()
  if K.running and K.mark then
    redis.call("ZREM", K.running, K.mark)
  end
end

-- end_mark writes the final record of the slot into its mark (hash field
-- "end"), keeps the mark for A.retention ms and adds the record to the
-- history.
local function end_mark(record)
  redis.call("HSET", K.mark, "end", record)
  redis.call("PEXPIRE", K.mark, A.retention)
  push_history(record)
end

-- raise_hw raises the job's high-water slot to A.slot: no claim for a slot
-- at or below it can succeed any more.
local function raise_hw()
  local hw = redis.call("HGET", K.meta, "hw")
  if not hw or tonumber(hw) < tonumber(A.slot) then
    redis.call("HSET", K.meta, "hw", A.slot)
  end
  return hw
end

-- own_running says whether the mark holds this token's claim, not yet ended.
local function own_running(mark)
  return mark[1] == A.token and not mark[2]
end
