-- fence.lua: raise the job's fence counter to at least A.fence (quorum
-- write-back), noting the raise as A.token's (see obtain.lua's own_fence).
-- K.meta, K.lease; A.fence, A.token. Returns 1 when this call raised the
-- counter or this claim holds the lease here, else 0 (why either counts:
-- Bid.writeFence).
if raise_fence(A.fence, A.token .. ":" .. A.fence) or redis.call("GET", K.lease) == A.token then
  return 1
end
return 0
