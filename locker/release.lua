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
      -- the claim's ring bit would say that the slot was decided
      redis.call("HDEL", K.meta, "rb")
      if A.slot and redis.call("HGET", K.meta, "hw") == A.slot then
        if m[3] and m[3] ~= "" then
          redis.call("HSET", K.meta, "hw", m[3])
        else
          redis.call("HDEL", K.meta, "hw")
        end
      end
      redis.call("DEL", K.mark)
    end
    running_clear()
  end
end
return status
