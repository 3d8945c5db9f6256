-- fence.lua: raise the job's fence counter to at least A.fence (quorum
-- write-back, see NewQuorum). K.meta; A.fence. Returns the counter.
local cur = tonumber(redis.call("HGET", K.meta, "fence") or "0")
local f = tonumber(A.fence)
if cur < f then
  redis.call("HSET", K.meta, "fence", A.fence)
  return f
end
return cur
