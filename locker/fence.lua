-- fence.lua: raise the job's fence counter to at least A.fence (quorum
-- write-back, see NewQuorum), noting the raise as A.token's. K.meta;
-- A.fence, A.token. Returns 1 when the counter stands at A.fence by this
-- claim's raise (this call's, or an earlier one's whose reply was lost),
-- 0 when another claim took A.fence or more there first.
local f, by = tonumber(A.fence), A.token .. ":" .. A.fence
local cur = tonumber(redis.call("HGET", K.meta, "fence") or "0")
if cur < f then
  redis.call("HSET", K.meta, "fence", f, "fby", by)
  return 1
end
if cur == f and redis.call("HGET", K.meta, "fby") == by then
  return 1
end
return 0
