-- fence.lua: raise a fence counter to at least a value (quorum write-back).
-- KEYS[1] fence counter
-- ARGV[1] fence value F
-- Sets the counter to max(current, F) and returns the result.
local cur = tonumber(redis.call("GET", KEYS[1]) or "0")
local f = tonumber(ARGV[1])
if cur < f then
  redis.call("SET", KEYS[1], ARGV[1])
  return f
end
return cur
