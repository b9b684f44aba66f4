-- Acknowledge one claimed node run: it is this caller's for good.
-- KEYS[1]: sy:claim:<node run>. ARGV[1] the node run id, ARGV[2] the claims key prefix.
-- Returns {1, installation} acked now, {0, ''} unknown, {-1, installation} acked before.
local claim = redis.call('HMGET', KEYS[1], 'installation', 'acked')
if not claim[1] then return {0, ''} end
redis.call('ZREM', ARGV[2] .. claim[1], ARGV[1])
if claim[2] == '1' then return {-1, claim[1]} end
redis.call('HSET', KEYS[1], 'acked', '1')
return {1, claim[1]}
