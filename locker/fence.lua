-- fence.lua: raise the job's fence counter to at least A.fence (quorum
-- write-back, see NewQuorum), noting the raise as A.token's (see
-- obtain.lua's own_fence). K.meta, K.lease; A.fence, A.token. Returns 1
-- when the counter was below A.fence (raised by this call), or when this
-- claim holds the lease here: the counter then stands at A.fence or above
-- by the claim's own number (its reply unread), another claim's
-- write-back raise, or a waiting replace claim's number, which it never
-- runs with (take.lua takes a new one). No other claim takes a number it
-- can run with here while this one holds the lease, when the lease is the
-- job's (overlap forbid or replace); with overlap allow each slot has its
-- own lease, and runs whose claims overlap may share a fence, which
-- NewQuorum does not promise against. Returns 0 when the counter was at
-- A.fence or above without the lease (another claim may have taken
-- A.fence itself here).
local f = tonumber(A.fence)
local cur = tonumber(redis.call("HGET", K.meta, "fence") or "0")
if cur < f then
  redis.call("HSET", K.meta, "fence", f, "fby", A.token .. ":" .. A.fence)
  return 1
end
if redis.call("GET", K.lease) == A.token then
  return 1
end
return 0
