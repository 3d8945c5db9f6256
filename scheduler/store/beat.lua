-- beat.lua: one replica's liveness beat for work sharing, answered with
-- every live replica's last beat, all on the server's clock.
--   KEYS[1]  beats: a sorted set of replica ids scored by their last beat
--            (server ms)
--   KEYS[2]  states: a hash of replica id -> its state (opaque here)
--   ARGV[1]  the replica's id
--   ARGV[2]  its state; empty means it leaves (both entries removed)
--   ARGV[3]  forget (ms): beats older than this are removed, and both keys
--            expire this long after the last beat
-- Reply: {now_ms, {id, beat_ms, ...}, {id, state, ...}}
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local forget = tonumber(ARGV[3])
if ARGV[2] == "" then
  redis.call("ZREM", KEYS[1], ARGV[1])
  redis.call("HDEL", KEYS[2], ARGV[1])
else
  redis.call("ZADD", KEYS[1], now, ARGV[1])
  redis.call("HSET", KEYS[2], ARGV[1], ARGV[2])
end
local gone = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", "(" .. (now - forget))
if #gone > 0 then
  redis.call("ZREM", KEYS[1], unpack(gone))
  redis.call("HDEL", KEYS[2], unpack(gone))
end
redis.call("PEXPIRE", KEYS[1], forget)
redis.call("PEXPIRE", KEYS[2], forget)
return {now, redis.call("ZRANGE", KEYS[1], 0, -1, "WITHSCORES"), redis.call("HGETALL", KEYS[2])}
