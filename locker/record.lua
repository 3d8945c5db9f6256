-- record.lua: record a skip for a slot that nobody claimed, once no replica
-- may claim it any more (a slot this replica gave up in an outage, refused
-- for its clock, or found too late).
--   K.mark, K.meta, K.history (optional)
--   A.slot (unix s), A.first (first sight to store when the job has none),
--   A.record, A.retention (ms), A.not_before,
--   A.not_after (server ms: the end of the window in which an absent mark
--   proves that no run is on record), A.history_len, A.history_ttl,
--   A.hw_proof, A.probe (optional; see below)
-- With A.hw_proof, after A.not_after the job's high-water slot (K.meta
-- "hw", which never expires) still proves it while it is below A.slot:
-- on a single node every claim and every record of a slot raises it to at
-- least that slot, so A.slot was never decided. Not in quorum mode, where
-- a node may have missed a claim that a majority granted, and a claim that
-- lost its vote puts the high-water back.
-- With A.probe (quorum mode's first phase) nothing is written but the
-- job's first sight: {"absent"} stands for the write the call would make.
-- Reply: {"recorded"}; {"early", wait} not yet; {"claimed", 0, end,
-- token} the slot has a record or a claim (end: its final record, token:
-- the claim's, each "" when none); {"late", hw} too late to tell (past
-- A.not_after, with the high-water hw, unix s, at or above A.slot);
-- {"unborn", first} the slot is before the job's first sight (never a
-- slot of the job).
local now = now_ms()
if now < tonumber(A.not_before) then
  return {"early", tonumber(A.not_before) - now}
end
local m = redis.call("HMGET", K.mark, "token", "end")
if m[1] or m[2] then
  return {"claimed", 0, m[2] or "", m[1] or ""}
end
local meta = redis.call("HMGET", K.meta, "first", "hw")
local first = meta[1]
if not first then
  first = A.first
  redis.call("HSET", K.meta, "first", first)
end
if tonumber(A.slot) < tonumber(first) then
  return {"unborn", tonumber(first)}
end
if now > tonumber(A.not_after) then
  if not A.hw_proof then
    return {"late"}
  end
  if meta[2] and tonumber(meta[2]) >= tonumber(A.slot) then
    return {"late", tonumber(meta[2])}
  end
end
if A.probe then
  return {"absent"}
end
end_mark(A.record)
raise_hw()
return {"recorded"}
