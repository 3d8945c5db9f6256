-- take.lua: a successor (overlap "replace") takes the lease once the run it
-- replaces has stopped (released the lease) or its lease expired.
--   K.lease, K.next, K.mark (optional); A.token, A.ttl (ms), A.mark_ttl (ms)
-- Reply: {"won", ttl}; {"wait", pttl} the holder still holds it;
-- {"superseded"} a later claim replaced this one before it started.
local nx = redis.call("GET", K.next)
local holder = redis.call("GET", K.lease)
if holder == A.token then
  return {"won", redis.call("PTTL", K.lease)}
end
if nx and nx ~= A.token then
  return {"superseded"}
end
if holder then
  if not nx then
    return {"superseded"}
  end
  return {"wait", redis.call("PTTL", K.lease)}
end
redis.call("SET", K.lease, A.token, "PX", A.ttl)
if nx then
  redis.call("DEL", K.next)
end
if K.mark and own_running(redis.call("HMGET", K.mark, "token", "end")) then
  redis.call("PEXPIRE", K.mark, A.mark_ttl)
  running_set()
end
return {"won", tonumber(A.ttl)}
