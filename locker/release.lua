-- release.lua: compare-and-delete a lease.
-- KEYS[1] lease key
-- KEYS[2] slot mark (KEYS[1] again when the claim has none; see ARGV[2])
-- ARGV[1] token
-- ARGV[2] "1" to also delete the mark while it holds this lease's running
--         record (used to undo a failed quorum claim; Release keeps the mark
--         so that a released slot stays claimed)
-- Returns 1 deleted, 0 no key (expired), -1 another token (taken).
if ARGV[2] == "1" then
  local mark = redis.call("GET", KEYS[2])
  local own = "running:" .. ARGV[1] .. ":"
  if mark and string.sub(mark, 1, #own) == own then
    redis.call("DEL", KEYS[2])
  end
end
local cur = redis.call("GET", KEYS[1])
if not cur then
  return 0
end
if cur ~= ARGV[1] then
  return -1
end
redis.call("DEL", KEYS[1])
return 1
