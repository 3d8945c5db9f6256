-- records.lua: record the skips of slots that nobody claimed, once no
-- replica may claim them any more (slots a replica gave up in an outage or
-- shed when behind, refused for its clock, or found too late), several in
-- one call: each as its own decision, in order.
--   KEYS: for each skip, its keys in the order ARGV[1] names them
--     (K.mark, K.meta, K.history optional: the same names for every skip)
--   A.fields: the names of each skip's arguments, comma-separated, in the
--     order they follow "--" (ARGV[REST..]), for each skip in turn:
--     A.slot (unix s), A.first (first sight to store when the job has none),
--     A.record, A.retention (ms), A.not_before, A.not_after (server ms: the
--     window in which an absent mark proves that no run is on record),
--     A.history_len, A.history_ttl, A.history_score (with K.history)
-- Reply: one entry per skip: {"recorded"}; {"early", wait} not yet;
-- {"claimed"} the slot has a record or a claim; {"late"} too late to tell;
-- {"unborn", first} the slot is before the job's first sight (never a slot
-- of the job).
local function record()
  local now = now_ms()
  if now < tonumber(A.not_before) then
    return {"early", tonumber(A.not_before) - now}
  end
  if redis.call("EXISTS", K.mark) == 1 then
    return {"claimed"}
  end
  local first = redis.call("HGET", K.meta, "first")
  if not first then
    first = A.first
    redis.call("HSET", K.meta, "first", first)
  end
  if tonumber(A.slot) < tonumber(first) then
    return {"unborn", tonumber(first)}
  end
  if now > tonumber(A.not_after) then
    return {"late"}
  end
  end_mark(A.record)
  raise_hw()
  return {"recorded"}
end

local keys, fields = {}, {}
for name in string.gmatch(ARGV[1], "[^,]+") do
  keys[#keys + 1] = name
end
for name in string.gmatch(A.fields, "[^,]+") do
  fields[#fields + 1] = name
end
local out = {}
for i = 0, #KEYS / #keys - 1 do
  for k = 1, #keys do
    K[keys[k]] = KEYS[i * #keys + k]
  end
  for f = 1, #fields do
    A[fields[f]] = ARGV[REST + i * #fields + f - 1]
  end
  out[i + 1] = record()
end
return out
