-- renew.lua: compare-and-extend a lease, and its slot's running mark.
--   K.lease, K.mark (optional), K.next (optional, overlap "replace"),
--   K.running (optional)
--   A.token, A.ttl (ms), A.mark_ttl (ms)
-- Reply: "held" extended; "replaced" extended, but a successor waits (the
-- holder must stop, and keeps the lease only until it has); "expired" no
-- key; "taken" another token.
local holder = redis.call("GET", K.lease)
if not holder then
  return "expired"
end
if holder ~= A.token then
  return "taken"
end
redis.call("PEXPIRE", K.lease, A.ttl)
if K.mark and own_running(redis.call("HMGET", K.mark, "token", "end")) then
  redis.call("PEXPIRE", K.mark, A.mark_ttl)
  running_set()
end
if K.next then
  local nx = redis.call("GET", K.next)
  if nx and nx ~= A.token then
    return "replaced"
  end
end
return "held"
