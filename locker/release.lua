-- release.lua: compare-and-delete a lease, doing A.mode to the claim's own
-- running mark first:
--   "keep"     leave it (Release: a released slot stays claimed)
--   "withdraw" end it with A.record (a claim given up after it may have
--              won: the slot stays claimed, and on record)
--   "drop"     delete it, put the high-water back and clear the slot's bit
--              in the job's ring, moving the ring's base above the slots
--              whose bits the claim reused (see RING; without K.ring, stop
--              the ring from speaking): a quorum claim that lost the vote,
--              so that a retry can win and a skip can be proved on this
--              node
--   K.lease, K.mark (optional), K.meta and K.ring (with "drop"), K.next
--   (optional), K.history (optional), K.running (optional); A.token,
--   A.mode, A.record, A.slot, A.retention, A.history_len, A.history_ttl,
--   A.fence (quorum mode, a lease's release: its fence, see finish.lua)
-- Reply: "held" deleted; "expired" no key; "taken" another token's.
--
-- The keys that hold other claims off go first, and the mark last: Redis
-- keeps a script's writes before an error (a command the ACL refuses), so
-- a call cut short frees the lease rather than keep it to its TTL, and a
-- retry still finds its own running mark to end.
local holder = redis.call("GET", K.lease)
local status = "held"
if not holder then
  status = "expired"
elseif holder ~= A.token then
  status = "taken"
else
  if A.fence then
    raise_fence(A.fence)
  end
  redis.call("DEL", K.lease)
end
if K.next and redis.call("GET", K.next) == A.token then
  redis.call("DEL", K.next)
end
if K.mark then
  local m = redis.call("HMGET", K.mark, "token", "end", "prevhw")
  if own_running(m) then
    if A.mode == "withdraw" then
      end_mark(A.record)
    elseif A.mode == "drop" then
      -- The claim's ring bit would say that the slot was decided. The mark
      -- shows that no other claim or skip of the slot reached this node,
      -- so in the slot's own place the bit was the claim's: cleared.
      local meta = redis.call("HMGET", K.meta, "hw", "rb", "rh")
      local slot = A.slot and tonumber(A.slot)
      local speaks = slot and ring_speaks(meta[1], meta[2], meta[3], slot)
      if speaks then
        redis.call("SETBIT", K.ring, slot % RING, 0)
      else
        redis.call("HDEL", K.meta, "rb")
      end
      if slot and meta[1] == A.slot then
        -- The high-water back to where the claim found it, and the ring's
        -- with it when the claim raised that. Raising it reused the bits
        -- of the slots a ring below (cleared as passed over, and this
        -- one's set), so the ring's base moves above them: it speaks for
        -- no slot whose bit it lost. (A ring the claim started keeps its
        -- base above, and speaks for no slot below it.)
        if not m[3] or m[3] == "" then
          redis.call("HDEL", K.meta, "hw")
        elseif speaks and meta[3] == A.slot then
          redis.call("HSET", K.meta, "hw", m[3], "rh", m[3], "rb", math.max(tonumber(meta[2]), slot - RING + 1))
        else
          redis.call("HSET", K.meta, "hw", m[3])
        end
      end
      redis.call("DEL", K.mark)
    end
    running_clear()
  end
end
return status
