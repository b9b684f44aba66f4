-- Forget published outbox steps of one inbox partition, a batch at a time.
-- KEYS[1]: the partition's pending-outbox set; KEYS[2..]: the runs' outbox hashes.
-- ARGV: triples (index in KEYS of the run's outbox, run id, step).
-- Every key has the partition's hash tag: one slot.
for i = 1, #ARGV, 3 do
  local outbox = KEYS[tonumber(ARGV[i])]
  redis.call('HDEL', outbox, ARGV[i + 2])
  if redis.call('HLEN', outbox) == 0 then
    redis.call('SREM', KEYS[1], ARGV[i + 1])
  end
end
return 1
