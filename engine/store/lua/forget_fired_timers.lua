-- Forget timers whose TimerFired Kafka has acknowledged, each only if it is still
-- armed for the due time that was fired: a timer re-armed meanwhile (moved to a
-- later time) or cancelled is left as the engine left it.
-- KEYS[1]: an inbox partition's timer set (sy:timers:{p…}), KEYS[2]: its details.
-- ARGV: id1, score1, id2, score2, … (the scores as fired, ms).
-- Returns how many were forgotten.
local forgotten = 0
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
    forgotten = forgotten + 1
  end
end
return forgotten
