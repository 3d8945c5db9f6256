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
  -- The history first: Redis keeps a script's writes before an error, and
  -- a retry that finds the mark ended (finish.lua's "done") adds nothing.
  push_history(record)
  redis.call("HSET", K.mark, "end", record)
  redis.call("PEXPIRE", K.mark, A.retention)
end

-- RING is how many seconds of slots the job's ring of decided slots spans
-- (K.ring, a string of bits without TTL: RING / 8 bytes per job at most).
-- Bit slot % RING is set once the slot is decided (claimed, or recorded
-- as a skip), and cleared when the high-water passes the slot over. The
-- ring speaks for a slot from its base (meta "rb", where it was started)
-- and within RING seconds below the high-water, while the high-water is
-- the one the ring was last brought to (meta "rh"; a claim that raised
-- "hw" without the ring, as an older replica's, makes it stale).
-- locker.RingSpan is the same span.
local RING = 4096

-- ring_speaks says whether the ring, given the meta fields hw, rb and rh
-- (strings, false when absent), speaks for slot (a number).
local function ring_speaks(hw, rb, rh, slot)
  return K.ring and hw and rb and rh == hw and slot >= tonumber(rb) and slot > tonumber(hw) - RING
end

-- ring_below is, given the meta fields hw, rb and rh, the latest slot at
-- or below hw that the ring does not speak for: hw itself without a ring
-- that speaks for hw.
local function ring_below(hw, rb, rh)
  if not ring_speaks(hw, rb, rh, tonumber(hw)) then
    return tonumber(hw)
  end
  return math.max(tonumber(rb) - 1, tonumber(hw) - RING)
end

-- ring_lost says whether the ring key is gone while the meta hash says it
-- speaks (evicted, or deleted by hand): ring_set always sets the
-- high-water's own bit, so a clear one there means every bit reads clear.
local function ring_lost(hw)
  return redis.call("GETBIT", K.ring, tonumber(hw) % RING) == 0
end

-- ring_undecided says whether the ring proves that slot, at or below the
-- high-water hw, was never decided: it speaks for slot, its bit is clear,
-- and the ring is not lost (given the meta fields hw, rb and rh).
local function ring_undecided(hw, rb, rh, slot)
  return ring_speaks(hw, rb, rh, slot) and redis.call("GETBIT", K.ring, slot % RING) == 0 and not ring_lost(hw)
end

-- in_history says whether the job's history holds a final record scored
-- A.history_score: a decision that neither a mark nor the ring saw (an
-- older replica's under the high-water, or one whose ring write Redis
-- refused: a script is not rolled back).
local function in_history()
  return K.history and A.history_score and
    #redis.call("ZRANGEBYSCORE", K.history, A.history_score, A.history_score, "LIMIT", 0, 1) > 0
end

-- ring_clear clears the ring's bits i to j (i <= j < RING) with one read
-- and one write of the bytes that hold them (bit 0 is a byte's highest,
-- as SETBIT counts).
local function ring_clear(i, j)
  local b0, b1 = math.floor(i / 8), math.floor(j / 8)
  local old, out = redis.call("GETRANGE", K.ring, b0, b1), {}
  for b = b0, b1 do
    local v = string.byte(old, b - b0 + 1) or 0
    if i <= 8 * b and 8 * b + 7 <= j then
      v = 0 -- the whole byte
    end
    for bit = math.max(i, 8 * b), math.min(j, 8 * b + 7) do
      if v == 0 then
        break
      end
      local w = 2 ^ (7 - bit % 8)
      if math.floor(v / w) % 2 == 1 then
        v = v - w
      end
    end
    out[#out + 1] = string.char(v)
  end
  redis.call("SETRANGE", K.ring, b0, table.concat(out))
end

-- ring_set marks A.slot decided in the ring (without K.ring, it stops
-- the ring from speaking when A.slot is under hw), given the meta fields
-- hw, rb and rh before; the bits of the slots between hw and a higher
-- A.slot are cleared (passed over). It returns the meta fields to write
-- with the high-water (name, value pairs; none when A.slot is not above
-- hw).
local function ring_set(hw, rb, rh)
  local s = tonumber(A.slot)
  if not K.ring then
    -- A decision under the high-water that the ring does not see: it
    -- speaks no more (one above it leaves "rh" behind "hw").
    if hw and rb and s <= tonumber(hw) then
      redis.call("HDEL", K.meta, "rb")
    end
    return {}
  end
  if hw and s <= tonumber(hw) then
    if ring_speaks(hw, rb, rh, s) then
      redis.call("SETBIT", K.ring, s % RING, 1)
    end
    return {}
  end
  -- A ring whose key was lost restarts here: its bits below would read
  -- undecided once the high-water's own bit is set again.
  local live = ring_speaks(hw, rb, rh, tonumber(hw or s)) and not ring_lost(hw)
  if not live or s - tonumber(hw) >= RING then
    -- a new ring (none, or stale), or one whose every slot was passed over
    redis.call("DEL", K.ring)
    redis.call("SETBIT", K.ring, s % RING, 1)
    if live then
      return {"rh", A.slot}
    end
    return {"rb", A.slot, "rh", A.slot}
  end
  if s - tonumber(hw) > 1 then
    local i, j = (tonumber(hw) + 1) % RING, (s - 1) % RING
    if i <= j then
      ring_clear(i, j)
    else
      ring_clear(i, RING - 1)
      ring_clear(0, j)
    end
  end
  redis.call("SETBIT", K.ring, s % RING, 1)
  return {"rh", A.slot}
end

-- raise_hw raises the job's high-water slot to A.slot (no claim for a slot
-- at or below it can succeed any more) and marks A.slot decided in the
-- job's ring (ring_set).
local function raise_hw()
  local m = redis.call("HMGET", K.meta, "hw", "rb", "rh")
  local ring = ring_set(m[1], m[2], m[3])
  if not m[1] or tonumber(m[1]) < tonumber(A.slot) then
    redis.call("HSET", K.meta, "hw", A.slot, unpack(ring))
  end
end

-- raise_fence raises the job's fence counter (K.meta) to at least f,
-- noting by as the raiser ("fby") when given, and says whether it raised
-- it.
local function raise_fence(f, by)
  if tonumber(redis.call("HGET", K.meta, "fence") or "0") >= tonumber(f) then
    return false
  end
  if by then
    redis.call("HSET", K.meta, "fence", f, "fby", by)
  else
    redis.call("HSET", K.meta, "fence", f)
  end
  return true
end

-- own_running says whether the mark holds this token's claim, not yet ended.
local function own_running(mark)
  return mark[1] == A.token and not mark[2]
end
