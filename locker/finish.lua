-- finish.lua: token-checked end of a run.
-- KEYS[1] lease key
-- KEYS[2] slot mark (KEYS[1] again when the claim has none; see ARGV[4])
-- KEYS[3] history list (KEYS[1] again when the claim has none; see ARGV[5])
-- ARGV[1] token
-- ARGV[2] final record
-- ARGV[3] retention of the record in ms
-- ARGV[4] "1" when KEYS[2] is a real mark key
-- ARGV[5] "1" when KEYS[3] is a real history key
-- ARGV[6] history length bound (LTRIM)
-- ARGV[7] history TTL in ms
-- Returns {status, recorded}: status 1 held, 0 no key (expired), -1 another
-- token (taken); recorded 1 when the record was written.
local cur = redis.call("GET", KEYS[1])
local status = -1
if cur == ARGV[1] then
  status = 1
elseif not cur then
  status = 0
end

local recorded = 0
if ARGV[4] == "1" then
  if status == 1 then
    redis.call("DEL", KEYS[1])
  end
  -- The mark is ours while it holds our running record, even after the
  -- lease key expired: the outcome of the run is never lost.
  local mark = redis.call("GET", KEYS[2])
  local own = "running:" .. ARGV[1] .. ":"
  if (mark and string.sub(mark, 1, #own) == own) or (status == 1 and not mark) then
    redis.call("SET", KEYS[2], ARGV[2], "PX", ARGV[3])
    recorded = 1
  end
elseif status == 1 then
  redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3])
  recorded = 1
end

if recorded == 1 and ARGV[5] == "1" then
  redis.call("LPUSH", KEYS[3], ARGV[2])
  redis.call("LTRIM", KEYS[3], 0, tonumber(ARGV[6]) - 1)
  redis.call("PEXPIRE", KEYS[3], ARGV[7])
end
return {status, recorded}
