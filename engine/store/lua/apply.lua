-- Apply one inbox event to a run, all or nothing.
-- ARGV[1]: JSON {run: "sy:run:{wfr_…}", offset: "<inbox offset>", commands: [[cmd, args…], …]}
-- Keys touched: the run hash (state, offset) and whatever the commands name: the
-- run's outbox and logs, the pending-outbox set, indexes, claims (see keys.py).
-- Returns 1 when applied, 0 when the offset was already applied (a redelivery).
local plan = cjson.decode(ARGV[1])
local applied = redis.call('HGET', plan.run, 'offset')
if applied and tonumber(applied) >= tonumber(plan.offset) then
  return 0
end
redis.call('HSET', plan.run, 'offset', plan.offset)
for _, command in ipairs(plan.commands) do
  redis.call(unpack(command))
end
return 1
