-- The due timers, earliest first, and when the next one is due.
-- KEYS[1]: an inbox partition's timer set (sy:timers:{p…}), KEYS[2]: its details.
-- ARGV[1]: now (ms); ARGV[2]: the most timers to return.
-- Returns {next, id1, score1, details1, id2, …}: next is the score of the first timer
-- after the returned ones (false when there is none), details false when missing.
-- One script, so the set and the details are read at one instant: a cancel between
-- two calls would leave a due id without its details.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
local count = #due / 2
local after = redis.call('ZRANGE', KEYS[1], count, count, 'WITHSCORES')
local result = {after[2] or false}
for i = 1, #due, 2 do
  result[#result + 1] = due[i]
  result[#result + 1] = due[i + 1]
  result[#result + 1] = redis.call('HGET', KEYS[2], due[i])
end
return result
