-- rights.lua: makes each call it is given and answers the errors, so that a
-- replica learns at start which commands its ACL user may not run from a
-- script (Redis checks every redis.call against the user's commands, keys
-- and channels, and its refusal there does not name the command).
--   KEYS: every key the calls touch (under the prefix, in one hash slot);
--         each is deleted before the script returns
--   ARGV: the calls, each as its word count n and then its n words, the
--         command first
-- Reply: {command, error, ...}, one pair per call that failed; empty when
-- every call succeeded.
local failed, i = {}, 1
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local call = {unpack(ARGV, i + 1, i + n)}
  local r = redis.pcall(unpack(call))
  if type(r) == "table" and r.err then
    failed[#failed + 1] = call[1]
    failed[#failed + 1] = r.err
  end
  i = i + n + 1
end
redis.pcall("DEL", unpack(KEYS))
return failed
