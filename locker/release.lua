-- release.lua: compare-and-delete a lease, doing A.mode to the claim's own
-- running mark first:
--   "keep"     leave it (Release: a released slot stays claimed)
--   "withdraw" end it with A.record (a claim given up after it may have
--              won: the slot stays claimed, and on record)
--   "drop"     delete it, put the high-water back and stop the job's ring
--              (see RING) from speaking (a quorum claim that lost the vote
--              on this node, so that a retry can win)
--   K.lease, K.mark (optional), K.meta (with "drop"), K.next (optional),
--   K.history (optional), K.running (optional); A.token, A.mode, A.record, A.slot, A.retention,
--   A.history_len, A.history_ttl
-- Reply: "held" deleted; "expired" no key; "taken" another token's.
if K.mark then
  local m = redis.call("HMGET", K.mark, "token", "end", "prevhw")
  if own_running(m) then
    running_clear()
    if A.mode == "withdraw" then
      end_mark(A.record)
    elseif A.mode == "drop" then
      redis.call("DEL", K.mark)
      -- the claim's ring bit would say that the slot was decided
      redis.call("HDEL", K.meta, "rb")
      if A.slot and redis.call("HGET", K.meta, "hw") == A.slot then
        if m[3] and m[3] ~= "" then
          redis.call("HSET", K.meta, "hw", m[3])
        else
          redis.call("HDEL", K.meta, "hw")
        end
      end
    end
  end
end
if K.next and redis.call("GET", K.next) == A.token then
  redis.call("DEL", K.next)
end
local holder = redis.call("GET", K.lease)
if not holder then
  return "expired"
end
if holder ~= A.token then
  return "taken"
end
redis.call("DEL", K.lease)
return "held"
