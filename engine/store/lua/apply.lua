-- Apply a batch of inbox events, in order, each all or nothing against its offset.
-- ARGV[i]: JSON {run: <guard hash>, offset: "<inbox offset>", partition: "<inbox partition>",
--                commands: [[cmd, args…], …]}
-- The guard hash is the run's ("sy:run:{wfr_…}"), or a stray partition's for a move.
-- It holds the offset last applied and the partition it is of: offsets are only ever
-- compared within one partition.
-- Keys touched: the guard hash and whatever the commands name: the run's outbox and
-- logs, the pending-outbox set, indexes, claims (see keys.py).
-- Returns one flag per plan: 1 applied; 0 its offset was already applied from the
-- same partition (a redelivery); -1 the guard's partition differs (refused: the
-- caller dead-letters it, never a silent skip).
-- One call per fetched batch: a call's overhead is paid once.
local applied = {}
for i = 1, #ARGV do
  local plan = cjson.decode(ARGV[i])
  local stored = redis.call('HMGET', plan.run, 'offset', 'partition')
  local last, partition = stored[1], stored[2]
  if last and partition and partition ~= plan.partition then
    applied[i] = -1
  elseif last and tonumber(last) >= tonumber(plan.offset) then
    applied[i] = 0
  else
    redis.call('HSET', plan.run, 'offset', plan.offset, 'partition', plan.partition)
    for _, command in ipairs(plan.commands) do
      redis.call(unpack(command))
    end
    applied[i] = 1
  end
end
return applied
