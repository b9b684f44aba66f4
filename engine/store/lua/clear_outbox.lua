-- Forget published outbox steps, a batch at a time.
-- KEYS[1]: the pending-outbox set
-- ARGV: triples (the run's outbox hash, run id, step)
for i = 1, #ARGV, 3 do
  redis.call('HDEL', ARGV[i], ARGV[i + 2])
  if redis.call('HLEN', ARGV[i]) == 0 then
    redis.call('SREM', KEYS[1], ARGV[i + 1])
  end
end
return 1
