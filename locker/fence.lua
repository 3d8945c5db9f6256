-- fence.lua: raise the job's fence counter to at least A.fence (quorum
-- write-back, see NewQuorum), noting the raise as A.token's. K.meta,
-- K.mark (the claim's mark, optional); A.fence, A.token. Returns 1 when the
-- counter stands at A.fence or above by this claim's own doing: raised by
-- this call, or by an earlier one whose reply was lost, or its own
-- increment, the number its mark holds (a reply not read); 0 when another
-- claim took A.fence or more there.
local f, by = tonumber(A.fence), A.token .. ":" .. A.fence
local cur = tonumber(redis.call("HGET", K.meta, "fence") or "0")
if cur < f then
  redis.call("HSET", K.meta, "fence", f, "fby", by)
  return 1
end
if cur == f and redis.call("HGET", K.meta, "fby") == by then
  return 1
end
if K.mark then
  local m = redis.call("HMGET", K.mark, "token", "end", "fence")
  if own_running(m) and tonumber(m[3]) == cur then
    return 1
  end
end
return 0
