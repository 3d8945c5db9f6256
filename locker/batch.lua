-- batch.lua: several calls of this package's scripts in one EVALSHA, which
-- Redis runs one after the other, as the pipeline of their own EVALSHAs
-- would (see batch.go, combine). scripts.go puts prelude.lua in front, then
-- each script's body as bodies[name], a function of the current call.
-- Keys: every call's keys, call after call.
-- Arguments:
--   ARGV[1]    the number of calls
--   then, for each call: the script's name ("obtain", "finish", ...), its
--   number of keys, its number of arguments n, then those n arguments (the
--   key names, then the name/value pairs, as a script sent alone takes).
-- Reply: one entry per call, in order: the script's reply (each script
-- returns one), or an error reply when the call raised one (its writes so
-- far stay, as when it is sent alone; the other calls run as if it had
-- been alone).
local out, ki, ai = {}, 1, 2
for c = 1, tonumber(ARGV[1]) do
  local body, nkeys, nargs = bodies[ARGV[ai]], tonumber(ARGV[ai + 1]), tonumber(ARGV[ai + 2])
  ai = ai + 3
  load_call(ki, ai, ai + nargs - 1)
  ki, ai = ki + nkeys, ai + nargs
  local ok, r = pcall(body)
  if not ok then
    -- redis.call's errors are tables with an err field; Lua's are strings,
    -- which Redis answers as ERR when the script is sent alone.
    r = type(r) == "table" and r or { err = "ERR " .. tostring(r) }
  end
  out[c] = r
end
return out
