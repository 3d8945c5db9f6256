-- obtain_plain.lua: claim a lease in one round trip, for a claim without
-- mark, pause key or Replace (obtain.lua's common case, with less Lua).
-- KEYS[1] lease key
-- KEYS[2] fence counter (INCR, no TTL)
-- ARGV[1] token (32 hex chars)
-- ARGV[2] lease TTL in ms
-- Returns the new fence (an integer >= 1) on success, otherwise
-- {3, pttl, ""} (lease busy), as obtain.lua does.
if redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2], "NX") then
  return redis.call("INCR", KEYS[2])
end
return {3, redis.call("PTTL", KEYS[1]), ""}
