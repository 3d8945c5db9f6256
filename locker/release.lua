-- release.lua: compare-and-delete a lease.
-- KEYS[1] lease key
-- KEYS[2] slot mark (KEYS[1] again when the claim has none; see ARGV[2])
-- ARGV[1] token
-- ARGV[2] what to do with the mark while it holds this lease's running
--         record: "0" keep it (Release: a released slot stays claimed),
--         "1" delete it (undo a quorum claim that lost the vote, so that a
--         retry can win), "2" replace it by ARGV[3], keeping its TTL (undo a
--         claim that others may have seen win: the slot stays claimed and
--         recorded)
-- ARGV[3] the record for mode "2"
-- Returns 1 deleted, 0 no key (expired), -1 another token (taken).
if ARGV[2] ~= "0" then
  local mark = redis.call("GET", KEYS[2])
  local own = "running:" .. ARGV[1] .. ":"
  if mark and string.sub(mark, 1, #own) == own then
    if ARGV[2] == "1" then
      redis.call("DEL", KEYS[2])
    else
      redis.call("SET", KEYS[2], ARGV[3], "KEEPTTL")
    end
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
