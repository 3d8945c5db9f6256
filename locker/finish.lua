-- finish.lua: token-checked end of a run, safe to repeat.
--   K.lease, K.mark (optional), K.history (optional), K.running (optional),
--   K.meta (optional, with A.fence)
--   A.token, A.record (final record), A.retention (ms),
--   A.history_len, A.history_ttl, A.fence (quorum mode: the lease's fence)
-- Reply: {status, recorded}: status "held", "expired" or "taken" as in
-- release.lua, or "done" when this very record was already written (a
-- retry whose earlier reply was lost); recorded 1 when the record is in
-- the mark (or, without a mark, in the lease key).
local holder = redis.call("GET", K.lease)
local status = "taken"
if holder == A.token then
  status = "held"
elseif not holder then
  status = "expired"
end
if status == "held" and A.fence then
  -- Quorum mode: the lease's fence came from the other nodes, and its
  -- write-back may have missed this one. Raised before the lease is
  -- freed, so that every later claim here takes a higher one.
  raise_fence(A.fence)
end

if K.mark then
  if status == "held" then
    redis.call("DEL", K.lease)
  end
  -- The mark is this run's while it holds its running claim, even after the
  -- lease key expired: the outcome of a run is never lost.
  local m = redis.call("HMGET", K.mark, "token", "end")
  if own_running(m) then
    end_mark(A.record)
    running_clear()
    return {status, 1}
  end
  if m[1] == A.token and m[2] == A.record then
    return {"done", 1}
  end
  return {status, 0}
end
if status == "held" then
  -- A plain lock keeps its key taken, by the record, for the retention: one
  -- write, so that no error can leave the key free and the record unwritten.
  redis.call("SET", K.lease, A.record, "PX", A.retention)
  return {status, 1}
end
if holder == A.record then
  return {"done", 1}
end
return {status, 0}
