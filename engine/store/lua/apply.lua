-- Apply a batch of inbox events, in order, each all or nothing against its offset.
-- ARGV[i]: JSON {run: "sy:run:{wfr_…}", offset: "<inbox offset>", commands: [[cmd, args…], …]}
-- Keys touched: the run hash (state, offset) and whatever the commands name: the
-- run's outbox and logs, the pending-outbox set, indexes, claims (see keys.py).
-- Returns one flag per plan: 1 when applied, 0 when its offset was already applied
-- (a redelivery). One call per fetched batch: a call's overhead is paid once.
local applied = {}
for i = 1, #ARGV do
  local plan = cjson.decode(ARGV[i])
  local last = redis.call('HGET', plan.run, 'offset')
  if last and tonumber(last) >= tonumber(plan.offset) then
    applied[i] = 0
  else
    redis.call('HSET', plan.run, 'offset', plan.offset)
    for _, command in ipairs(plan.commands) do
      redis.call(unpack(command))
    end
    applied[i] = 1
  end
end
return applied
