-- Claim up to `limit` visible pending node runs of one installation, in one call.
-- KEYS[1]: sy:claims:<installation> (sorted set: node run id -> visible-at ms)
-- ARGV[1] now (ms), ARGV[2] limit, ARGV[3] visibility timeout (ms),
-- ARGV[4] the claim record key prefix (sy:claim:), ARGV[5] and ARGV[6] what goes
-- before and after a run id in its run key, ARGV[7] the most members one call reads,
-- ARGV[8..] node run ids and node uids to skip.
-- Returns {items, states}: items are quintuples (node run id, run id, config JSON,
-- uid or '', view JSON or '') of the claimed ones; states are pairs (run id, stored
-- state) of the runs whose claimed items have no view (each run once).
--
-- Members are read a page at a time with ZRANGEBYSCORE ... LIMIT, never all that are
-- due: a claimed member moves past `now` and a dead one is removed, so both leave the
-- range, and the next page starts after the ones skipped (excluded) so far. The
-- budget bounds what a call reads when most of what is due is excluded.
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local visible_at = now + tonumber(ARGV[3])
local record_prefix = ARGV[4]
local budget = tonumber(ARGV[7])
local skip = {}
for i = 8, #ARGV do skip[ARGV[i]] = true end

local items = {}
local states = {}
local seen_runs = {}
local count = 0
local skipped = 0

local function take(id, record)
  redis.call('ZADD', KEYS[1], visible_at, id)
  local view = record[5] or ''
  table.insert(items, id)
  table.insert(items, record[1])
  table.insert(items, record[2] or '{}')
  table.insert(items, record[4] or '')
  table.insert(items, view)
  if view == '' and not seen_runs[record[1]] then
    seen_runs[record[1]] = true
    local state = redis.call('HGET', ARGV[5] .. record[1] .. ARGV[6], 'state')
    if state then
      table.insert(states, record[1])
      table.insert(states, state)
    end
  end
  count = count + 1
end

while count < limit and budget > 0 do
  local page = math.min(limit, budget)
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', skipped, page)
  if #due == 0 then break end
  budget = budget - #due
  for _, id in ipairs(due) do
    if count >= limit then break end
    if skip[id] then
      skipped = skipped + 1
    else
      local record = redis.call('HMGET', record_prefix .. id, 'run', 'config', 'acked', 'uid', 'view')
      if not record[1] or record[3] == '1' then
        redis.call('ZREM', KEYS[1], id)
      elseif record[4] and skip[record[4]] then
        skipped = skipped + 1
      else
        take(id, record)
      end
    end
  end
end
return {items, states}
