-- Forget published outbox steps, a batch at a time.
-- KEYS: the runs' outbox hashes and their partitions' pending-outbox sets.
-- ARGV: quadruples (index in KEYS of the run's outbox, index of its partition's
-- pending set, run id, step).
-- On a Redis Cluster the caller makes one call per partition: one slot each.
for i = 1, #ARGV, 4 do
  local outbox = KEYS[tonumber(ARGV[i])]
  redis.call('HDEL', outbox, ARGV[i + 3])
  if redis.call('HLEN', outbox) == 0 then
    redis.call('SREM', KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2])
  end
end
return 1
