-- record.lua: record a skip for a slot that nobody claimed, once no replica
-- may claim it any more (a slot this replica gave up in an outage, refused
-- for its clock, or found too late).
--   K.mark, K.meta, K.history (optional), K.ring (optional; see RING)
--   A.slot (unix s), A.first (first sight to store when the job has none),
--   A.record, A.retention (ms), A.not_before,
--   A.not_after (server ms: the end of the window in which an absent mark
--   proves that no run is on record), A.history_len, A.history_ttl,
--   A.hw_proof, A.quorum, A.probe (optional; see below)
-- With A.hw_proof, after A.not_after the job's high-water slot (K.meta
-- "hw", which never expires) still proves it while it is below A.slot:
-- every claim and every record of a slot raises it to at least that slot,
-- so A.slot was never decided on this node. At or above A.slot, the
-- job's ring of decided slots proves it while it speaks for A.slot (see
-- RING): a clear bit, A.slot was never decided here; a set one, it was (a
-- ring whose key was lost, see ring_lost, speaks no more). In quorum mode
-- each node proves this for itself only (a node may have missed a claim
-- that a majority granted; a claim that lost its vote puts the high-water
-- back and clears its bit): the caller writes only once a majority of the
-- nodes prove it (locker's probed). Past A.not_after a record of the slot
-- in the job's history (scored A.history_score) refuses the skip too.
-- With A.probe (quorum mode's first phase) nothing is written but the
-- job's first sight: {"absent", proof} stands for the write the call
-- would make (proof 1: past A.not_after, on the proof above).
-- Reply: {"recorded"}; {"early", wait} not yet; {"claimed", 0, end,
-- token} the slot has a record or a claim (end: its final record, token:
-- the claim's, each "" when none, as when the ring proves it decided);
-- {"late", upto} too late to tell (past A.not_after, with the
-- high-water at or above A.slot, and no ring that speaks for A.slot; upto,
-- unix s: every slot up to it is late too, see ring_below);
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
local meta = redis.call("HMGET", K.meta, "first", "hw", "rb", "rh")
local first = meta[1]
if not first then
  first = A.first
  redis.call("HSET", K.meta, "first", first)
end
local slot = tonumber(A.slot)
if slot < tonumber(first) then
  return {"unborn", tonumber(first)}
end
if now > tonumber(A.not_after) then
  if not A.hw_proof or (A.quorum and not meta[2]) then
    -- In quorum mode a node with no high-water for the job (restarted
    -- empty, or its hash lost) proves nothing: it may have granted a
    -- claim that won.
    return {"late"}
  end
  if meta[2] and tonumber(meta[2]) >= slot then
    if not ring_speaks(meta[2], meta[3], meta[4], slot) then
      return {"late", ring_below(meta[2], meta[3], meta[4])}
    end
    if redis.call("GETBIT", K.ring, slot % RING) == 1 then
      return {"claimed", 0, "", ""}
    end
    if ring_lost(meta[2]) then
      return {"late", tonumber(meta[2])}
    end
  end
  -- A final record of the slot in the history is a decision that neither
  -- proof saw: an older replica's under the high-water, or one whose ring
  -- write Redis refused (a script is not rolled back).
  if in_history() then
    return {"claimed", 0, "", ""}
  end
end
if A.probe then
  return {"absent", now > tonumber(A.not_after) and 1 or 0}
end
end_mark(A.record)
raise_hw()
return {"recorded"}
