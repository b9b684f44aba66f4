-- Delete one finished run and everything that is its, all or nothing, if the run is
-- still exactly the one the plan was made from (store/prune.py builds the plan).
-- KEYS[1] the run's hash, KEYS[2] sy:runs:finished, KEYS[3] the run's logs,
-- KEYS[4] sy:outbox:pending; then, in this order:
--   ARGV[3] keys deleted outright (outbox, events, claims, entity writes, answers),
--   ARGV[4] sorted sets the run id leaves (its indexes),
--   ARGV[5] hashes a node run id leaves (the node-run buckets),
--   ARGV[6] sorted sets a node run id leaves (pending claims of an installation),
--   ARGV[7] keys deleted only while they hold a node run id (sy:ext:<external id>).
-- ARGV[1] the run id, ARGV[2] the SHA-1 of the state the plan was made from, then
-- ARGV[8…] the node run id of each key of the last three groups, in their order.
-- The check makes a stale plan harmless: a run whose state changed meanwhile (a late
-- event applied) is left for the next pass, and a run already deleted (by another
-- pruner) is a no-op, so several pruners may run at once.
-- Returns {1 deleted | 0 changed | -1 gone, log lines, keys deleted, index entries
-- removed, node-run entries removed}.
local run = ARGV[1]
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('ZREM', KEYS[2], run)
  return {-1, 0, 0, 0, 0}
end
if redis.sha1hex(state) ~= ARGV[2] then
  return {0, 0, 0, 0, 0}
end
local lines = redis.call('LLEN', KEYS[3])
local deleted = redis.call('DEL', KEYS[1], KEYS[3])
local entries = redis.call('ZREM', KEYS[2], run) + redis.call('SREM', KEYS[4], run)
local node_runs = 0
local k = 5
local a = 8
for _ = 1, tonumber(ARGV[3]) do
  deleted = deleted + redis.call('DEL', KEYS[k])
  k = k + 1
end
for _ = 1, tonumber(ARGV[4]) do
  entries = entries + redis.call('ZREM', KEYS[k], run)
  k = k + 1
end
for _ = 1, tonumber(ARGV[5]) do
  node_runs = node_runs + redis.call('HDEL', KEYS[k], ARGV[a])
  k = k + 1
  a = a + 1
end
for _ = 1, tonumber(ARGV[6]) do
  entries = entries + redis.call('ZREM', KEYS[k], ARGV[a])
  k = k + 1
  a = a + 1
end
for _ = 1, tonumber(ARGV[7]) do
  if redis.call('GET', KEYS[k]) == ARGV[a] then
    deleted = deleted + redis.call('DEL', KEYS[k])
  end
  k = k + 1
  a = a + 1
end
return {1, lines, deleted, entries, node_runs}
