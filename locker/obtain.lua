-- obtain.lua: claim a lease in one round trip.
-- KEYS[1] lease key
-- KEYS[2] slot mark (KEYS[1] again when the claim has none; see ARGV[3])
-- KEYS[3] fence counter (INCR, no TTL)
-- KEYS[4] pause key (KEYS[1] again when the claim has none; see ARGV[6])
-- (KEYS[1..2] and ARGV[1..4] are renew.lua's, so a lease reuses them.)
-- ARGV[1] token (32 hex chars)
-- ARGV[2] lease TTL in ms
-- ARGV[3] "1" when KEYS[2] is a real mark key
-- ARGV[4] mark TTL in ms (already max(MarkTTL, TTL))
-- ARGV[5] busy record ("" for none)
-- ARGV[6] "1" when KEYS[4] is a real pause key
-- ARGV[7] "1" to replace a lease held by another token
-- Returns the new fence (an integer >= 1) on success, otherwise
-- {code, pttl, record}: code 1 paused, 2 slot claimed, 3 lease busy.
local hasMark = ARGV[3] == "1"

-- The mark first: a slot already run, running or skipped (paused included)
-- is refused as claimed, so a paused slot is recorded and counted once, by
-- the one claim that wrote "skipped:paused".
-- A claim that finds its own running mark is a retry of itself whose first
-- reply was lost: it succeeds again with the fence it took, and refreshes
-- the lease (idempotent, so a client-side retry never loses the slot).
if hasMark then
  local mark = redis.call("GET", KEYS[2])
  if mark then
    local own = "running:" .. ARGV[1] .. ":"
    if string.sub(mark, 1, #own) == own and redis.call("GET", KEYS[1]) == ARGV[1] then
      redis.call("PEXPIRE", KEYS[1], ARGV[2])
      return tonumber(string.sub(mark, #own + 1))
    end
    return {2, redis.call("PTTL", KEYS[2]), mark}
  end
end

if ARGV[6] == "1" and redis.call("EXISTS", KEYS[4]) == 1 then
  if hasMark then
    redis.call("SET", KEYS[2], "skipped:paused", "PX", ARGV[4])
  end
  return {1, redis.call("PTTL", KEYS[4]), ""}
end

if ARGV[7] ~= "1" then
  if not redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2], "NX") then
    if hasMark and ARGV[5] ~= "" then
      redis.call("SET", KEYS[2], ARGV[5], "PX", ARGV[4])
    end
    return {3, redis.call("PTTL", KEYS[1]), ""}
  end
else
  redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
end

local fence = redis.call("INCR", KEYS[3])
if hasMark then
  redis.call("SET", KEYS[2], "running:" .. ARGV[1] .. ":" .. fence, "PX", ARGV[4])
end
return fence
