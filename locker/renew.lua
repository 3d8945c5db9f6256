-- renew.lua: compare-and-extend a lease, and its slot mark while the mark
-- still holds this lease's running record.
-- KEYS[1] lease key
-- KEYS[2] slot mark (KEYS[1] again when the claim has none; see ARGV[3])
-- ARGV[1] token
-- ARGV[2] lease TTL in ms
-- ARGV[3] "1" when KEYS[2] is a real mark key
-- ARGV[4] mark TTL in ms (already max(MarkTTL, TTL))
-- Returns 1 extended, 0 no key (expired), -1 another token (taken).
local cur = redis.call("GET", KEYS[1])
if not cur then
  return 0
end
if cur ~= ARGV[1] then
  return -1
end
redis.call("PEXPIRE", KEYS[1], ARGV[2])
if ARGV[3] == "1" then
  local mark = redis.call("GET", KEYS[2])
  local own = "running:" .. ARGV[1] .. ":"
  if mark and string.sub(mark, 1, #own) == own then
    redis.call("PEXPIRE", KEYS[2], ARGV[4])
  end
end
return 1
