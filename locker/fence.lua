-- fence.lua: raise the job's fence counter to at least A.fence (quorum
-- write-back, see NewQuorum). K.meta; A.fence. Returns the counter.
return raise_fence(A.fence)
