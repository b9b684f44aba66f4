-- One change of one entity with its entity event, all or nothing (compare-and-set).
-- Every key carries the blueprint's hash tag, so a Redis Cluster runs this on one slot.
-- KEYS[1]: the entity            KEYS[2]: its blueprint's entity index (sorted set)
-- KEYS[3]: the blueprint's entity outbox   KEYS[4]: its written-at index (sorted set)
-- KEYS[5] (optional): the UPSERT_ENTITY node run's marker (sy:ent:nr:{<bp>}:<node run>)
-- ARGV[1]: the entity JSON the caller read ('' = absent): the write happens only if
--          the stored one is still exactly that, so a merge and the event's "before"
--          are never computed from a stale read
-- ARGV[2]: the new entity JSON ('' = delete it, '=' = leave it: nothing changed)
-- ARGV[3]: the event id ('' = no event)   ARGV[4]: the event JSON
-- ARGV[5]: now (ms)   ARGV[6]: the entity identifier   ARGV[7]: the marker's TTL (s)
-- ARGV[8]: the marker JSON
-- Returns {'ok'}, {'changed', <stored JSON or ''>} or {'done', <marker JSON>}.
if #KEYS >= 5 then
  local done = redis.call('GET', KEYS[5])
  if done then
    return {'done', done}
  end
end
local stored = redis.call('GET', KEYS[1]) or ''
if stored ~= ARGV[1] then
  return {'changed', stored}
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[6])
elseif ARGV[2] ~= '=' then
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('ZADD', KEYS[2], 'NX', ARGV[5], ARGV[6])
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[3])
end
if #KEYS >= 5 then
  redis.call('SET', KEYS[5], ARGV[8], 'EX', ARGV[7])
end
return {'ok'}
