-- obtain.lua: claim a lease (and, for a slot claim, the slot) in one round
-- trip. Keys (see prelude.lua for the calling convention):
--   K.lease    lease key: a string holding the holder's token, with a TTL
--   K.meta     the job's hash, no TTL: "fence" (counter), "fby" (who
--              raised it last by a write-back, see fence.lua), "hw"
--              (highest slot decided, unix seconds), "first" (first sight,
--              unix s), "rb" and "rh" (the ring's base and high-water, see
--              RING)
--   K.ring     the job's ring of decided slots, no TTL (see RING)
--   K.mark     the slot's mark, a hash: "token", "fence", "run" (running
--              record), "prevhw" (hw before this claim), "end" (final record)
--   K.pause    pause key: present = paused             (optional)
--   K.history  history: a sorted set scored by A.history_score (optional)
--   K.next     successor key of overlap "replace"        (optional)
--   K.running  the job's index of running runs (see running_set) (optional)
-- Arguments:
--   A.token    the claim's token; a claim retried as itself reuses it
--   A.ttl      lease TTL (ms)
--   A.run      the running record, stored in the mark
--   A.mark_ttl TTL of a running mark (ms), A.retention of an ended one
--   A.slot     unix seconds: turns on the slot checks (high-water, first
--              sight, server clock); absent for a manual run or a plain lock
--   A.first    first sight to store when the job has none yet (unix s)
--   A.not_before, A.not_after   server-clock bounds of the claim (ms)
--   A.due      when the slot is due (ms, at or after A.not_before): a claim
--              sent ahead of it that finds the job paused or its lease
--              busy waits ("early") rather than deciding the slot before
--              it is due (optional)
--   A.mark_floor  ms after the slot during which every decided slot has
--              a mark: a claim under the high-water slot that finds none
--              records A.skip_late (optional)
--   A.ring_proof  set on a single node: past A.mark_floor, a claim under
--              the high-water slot whose slot the ring shows undecided
--              (and the history holds no record of) records A.skip_late
--              (optional)
--   A.prev_slot, A.prev_until   the job's slot before A.slot (unix s) and
--              until when (ms) it may still be claimed: until then, while
--              it is undecided, the claim waits ("early") (optional)
--   A.overlap  "replace" takes over a busy lease (see K.next), but for a
--              manual claim (no A.slot) not while another claim waits to;
--              otherwise a busy lease refuses the claim
--   A.channel  pub/sub channel that tells a replaced holder to stop
--   A.skip_busy, A.skip_paused, A.skip_late   records of those skips
--   A.history_len, A.history_ttl, A.history_score (the slot's ms; the
--              history's score of its records)
-- Reply: {"won", fence, pttl, due}       lease held (pttl = its TTL); due:
--                                        ms until A.due (0: due)
--        {"wait", fence, pttl}           slot claimed; the lease is still
--                                        held by the run being replaced,
--                                        for pttl ms at most (take.lua)
--        {"claimed", pttl, end, token}   slot already claimed (by token) or
--                                        decided (end: its final record)
--        {"busy", pttl}                  lease held by another run (or,
--                                        for a manual replace claim, the
--                                        successor key held by another)
--        {"paused", pttl}                job paused (skip recorded)
--        {"early", wait[, "prev"]}       slot not due on the server clock,
--                                        or ("prev") the slot before may
--                                        still be claimed (A.prev_until)
--        {"late", over}                  past its window, or passed over by
--                                        a later slot (skip recorded)
--        {"unborn", first}               slot before the job's first sight

local fence_of = function(v) return tonumber(v) end

-- end_busy ends the claim's mark with its busy skip (A.skip_busy), when it
-- has both; it says whether it did.
local function end_busy()
  if K.mark and A.skip_busy then
    end_mark(A.skip_busy)
    return true
  end
  return false
end

-- own_fence is the number a retry of the claim wins with: the one its mark
-- holds, unless the job's counter went past it since. If this claim's own
-- write-back raised it (see fence.lua), the retry takes that number, the
-- fence it wrote back; otherwise another claim took a greater number here
-- (a later slot's once this claim's lease expired, a manual run's, a
-- waiting successor's, or in quorum mode a write-back) and the retry takes
-- a new one, lest a run started now have a lower fence than one started
-- before. Either way the mark keeps the number.
local function own_fence(m)
  local f = tonumber(m[3])
  local cur = redis.call("HMGET", K.meta, "fence", "fby")
  local n = tonumber(cur[1] or "0")
  if n <= f then
    return f
  end
  if cur[2] ~= A.token .. ":" .. cur[1] then
    n = redis.call("HINCRBY", K.meta, "fence", 1)
  end
  redis.call("HSET", K.mark, "fence", n)
  return n
end

-- A claim that finds its own running mark is a retry of itself whose
-- earlier reply was lost or late: it wins again with the fence it took
-- (see own_fence).
if K.mark then
  local m = redis.call("HMGET", K.mark, "token", "end", "fence")
  if own_running(m) then
    local holder = redis.call("GET", K.lease)
    if holder == A.token then
      redis.call("PEXPIRE", K.lease, A.ttl)
      running_set()
      return {"won", own_fence(m), tonumber(A.ttl), before_due() or 0}
    end
    if K.next then
      local nx = redis.call("GET", K.next)
      if holder and nx == A.token then
        return {"wait", fence_of(m[3]), redis.call("PTTL", K.lease)}
      end
      if holder or (nx and nx ~= A.token) then
        -- another claim replaced the run this one was waiting for
        end_busy()
        return {"busy", redis.call("PTTL", K.lease)}
      end
      if not nx and A.slot then
        -- Its successor key is gone (expired, or deleted by a later slot's
        -- claim that found the lease free): a later slot decided means
        -- this claim was replaced, and that run may be over already.
        local hw = redis.call("HGET", K.meta, "hw")
        if hw and tonumber(hw) > tonumber(A.slot) then
          end_busy()
          return {"busy", 0}
        end
      end
      -- The run it waited for has ended: take.lua hands the lease over
      -- (in quorum mode with a new fence, above that run's).
      return {"wait", fence_of(m[3]), 0}
    elseif holder then
      -- the lease expired before this retry and another run took it
      end_busy()
      return {"busy", redis.call("PTTL", K.lease)}
    end
    redis.call("SET", K.lease, A.token, "PX", A.ttl)
    running_set()
    return {"won", own_fence(m), tonumber(A.ttl), before_due() or 0}
  end
  if m[1] or m[2] then
    return {"claimed", redis.call("PTTL", K.mark), m[2] or "", m[1] or ""}
  end
end

local prevhw, meta = false, false
if A.slot then
  local slot = tonumber(A.slot)
  meta = redis.call("HMGET", K.meta, "hw", "first", "fence", "rb", "rh")
  local now = now_ms()
  if meta[1] and tonumber(meta[1]) >= slot then
    -- No mark where every replica keeps one (within A.mark_floor), or
    -- past it on a single node (A.ring_proof) the ring's clear bit and
    -- no record in the history: the slot was never decided, a later one
    -- was first (claims reordered, or this one held on its way). Record
    -- it.
    if (A.mark_floor and now <= slot * 1000 + tonumber(A.mark_floor)) or
        (A.ring_proof and A.skip_late and ring_undecided(meta[1], meta[4], meta[5], slot) and not in_history()) then
      end_mark(A.skip_late)
      ring_set(meta[1], meta[4], meta[5])
      return {"late", 0}
    end
    -- decided before: its mark may have expired, the high-water has not
    return {"claimed", 0, ""}
  end
  if A.not_before and now < tonumber(A.not_before) then
    return {"early", tonumber(A.not_before) - now}
  end
  if A.prev_slot and now < tonumber(A.prev_until) then
    -- The slot before is undecided (high-water below it) though the job
    -- was seen by then: a replica stepping in for it may still claim it,
    -- and claiming this one first would pass it over.
    local prev = tonumber(A.prev_slot)
    if (not meta[1] or tonumber(meta[1]) < prev) and meta[2] and prev >= tonumber(meta[2]) then
      return {"early", tonumber(A.prev_until) - now, "prev"}
    end
  end
  local first = meta[2]
  if not first then
    first = A.first
    redis.call("HSET", K.meta, "first", first)
  end
  if slot < tonumber(first) then
    return {"unborn", tonumber(first)}
  end
  if A.not_after and now > tonumber(A.not_after) then
    end_mark(A.skip_late)
    raise_hw()
    return {"late", now - tonumber(A.not_after)}
  end
  prevhw = meta[1] or ""
end

if K.pause and redis.call("EXISTS", K.pause) == 1 then
  local wait = before_due()
  if wait then
    return {"early", wait}
  end
  if K.mark then
    end_mark(A.skip_paused)
  end
  if A.slot then
    raise_hw()
  end
  return {"paused", redis.call("PTTL", K.pause)}
end

-- A manual claim (no slot) never takes the place of a claim that waits to
-- take the lease over: it is refused as busy, on record.
if A.overlap == "replace" and K.next and not A.slot then
  local nx = redis.call("GET", K.next)
  if nx and nx ~= A.token then
    end_busy()
    return {"busy", redis.call("PTTL", K.next)}
  end
end

-- SET NX takes a free lease; only a busy one is read. A lease that holds
-- this claim's token was taken by an attempt of it that an error cut short
-- before its mark was written (Redis does not undo a script's writes
-- before an error: a command the ACL refuses, a WRONGTYPE): it is this
-- claim's, taken again.
local waiting = false
local holder = false
if not redis.call("SET", K.lease, A.token, "PX", A.ttl, "NX") then
  holder = redis.call("GET", K.lease)
  if holder == A.token then
    redis.call("PEXPIRE", K.lease, A.ttl)
    holder = false
  end
end
if holder then
  local wait = before_due()
  if wait then
    return {"early", wait}
  end
  if A.overlap ~= "replace" then
    if end_busy() and A.slot then
      raise_hw()
    end
    return {"busy", redis.call("PTTL", K.lease)}
  end
  -- Take the slot now, the lease once its holder stopped: the successor
  -- key makes the holder's renewals answer "replaced" (and the message
  -- tells it at once); take.lua hands the lease over.
  local pttl = redis.call("PTTL", K.lease)
  redis.call("SET", K.next, A.token, "PX", math.max(pttl, 0) + 2 * tonumber(A.ttl))
  if A.channel then
    -- Only hastens the holder's stop (its renewals answer "replaced"): a
    -- refusal (the channel not in the ACL user's rules) does not cut the
    -- claim short after the successor key was set.
    redis.pcall("PUBLISH", A.channel, holder)
  end
  waiting = true
elseif A.overlap == "replace" and K.next then
  -- The lease was free while another claim may wait to take it over: this
  -- later claim replaces that one too (take.lua tells it). A successor key
  -- left in place would have the waiting claim, of an earlier slot,
  -- replace this run next, with a lower fence.
  redis.call("DEL", K.next)
end

-- A slot claim read the fence with the high-water: one HSET raises both.
local fence
if meta then
  fence = (tonumber(meta[3]) or 0) + 1
  redis.call("HSET", K.meta, "fence", fence, "hw", A.slot, unpack(ring_set(meta[1], meta[4], meta[5])))
else
  fence = redis.call("HINCRBY", K.meta, "fence", 1)
end
if K.mark then
  redis.call("HSET", K.mark, "token", A.token, "fence", fence, "run", A.run, "prevhw", prevhw or "")
  redis.call("PEXPIRE", K.mark, A.mark_ttl)
end
if waiting then
  return {"wait", fence, redis.call("PTTL", K.lease)}
end
running_set()
return {"won", fence, tonumber(A.ttl), before_due() or 0}
