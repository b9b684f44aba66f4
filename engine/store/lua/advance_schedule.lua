-- Record the tick a scheduler has fired (its RunTriggered acknowledged by Kafka), only
-- if the record still holds the tick that scheduler read before firing. Another
-- scheduler that fired the same tick meanwhile (the same derived run id) wins, and
-- this one changes nothing: the record only ever moves forward, once per tick.
-- KEYS[1]: sy:schedule:{<workflow>}:<node>.
-- ARGV[1]: the tick read ('' when none was recorded), ARGV[2]: the tick fired,
-- ARGV[3]: the workflow version it was fired for, ARGV[4]: its cron.
-- Returns 1 when recorded, 0 when the record had moved.
local current = redis.call('HGET', KEYS[1], 'tick') or ''
if current ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'tick', ARGV[2], 'version', ARGV[3], 'cron', ARGV[4])
return 1
