-- Forget a step's outbox once its messages are published.
-- KEYS[1]: the run's outbox hash; KEYS[2]: the pending-outbox set
-- ARGV[1]: run id; ARGV[2]: step
redis.call('HDEL', KEYS[1], ARGV[2])
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
end
return 1
