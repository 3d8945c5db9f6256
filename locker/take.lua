-- take.lua: a successor (overlap "replace") takes the lease once the run it
-- replaces has stopped (released the lease) or its lease expired.
--   K.lease, K.next, K.mark (optional), K.running (optional), K.meta;
--   A.token, A.ttl (ms), A.mark_ttl (ms)
-- Reply: {"won", fence, ttl}; {"wait", 0, pttl} the holder still holds it;
-- {"superseded"} a later claim replaced this one before it started.
--
-- Every take that wins takes a new fence, above every number taken on
-- this node, and stores it in the claim's running mark (for a retry of the
-- claim as itself): the number the claim took when it started to wait may
-- be below the fence of the run it replaces (in quorum mode that run's
-- write-back may have reached this node only after it; on any node a
-- retry of that run as itself, or a manual run after it expired, may have
-- taken a greater one since).
local function fresh_fence()
  local f = redis.call("HINCRBY", K.meta, "fence", 1)
  if K.mark and own_running(redis.call("HMGET", K.mark, "token", "end")) then
    redis.call("HSET", K.mark, "fence", f)
  end
  return f
end

local nx = redis.call("GET", K.next)
local holder = redis.call("GET", K.lease)
if holder == A.token then
  return {"won", fresh_fence(), redis.call("PTTL", K.lease)}
end
if nx and nx ~= A.token then
  return {"superseded"}
end
if holder then
  if not nx then
    return {"superseded"}
  end
  return {"wait", 0, redis.call("PTTL", K.lease)}
end
redis.call("SET", K.lease, A.token, "PX", A.ttl)
if nx then
  redis.call("DEL", K.next)
end
if K.mark and own_running(redis.call("HMGET", K.mark, "token", "end")) then
  redis.call("PEXPIRE", K.mark, A.mark_ttl)
  running_set()
end
return {"won", fresh_fence(), tonumber(A.ttl)}
