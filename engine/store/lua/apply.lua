-- Apply a batch of inbox events, in order, each all or nothing
-- against its offset.
-- KEYS: every key the plans touch. On a Redis Cluster the caller makes one call per
-- inbox partition, every key with the partition's hash tag (one slot: the cluster
-- routes the call by them and refuses a script across slots); one Redis node takes a
-- whole batch in one call.
-- ARGV[i]: JSON {run: <index in KEYS of the guard hash>, offset: "<inbox offset>",
--                partition: "<inbox partition>", commands: [[cmd, key index, args…], …],
--                proof: <1-based index of an HSET among commands, 0 for none>}
-- A command's key is given by its index in KEYS (a PUBLISH's channel is not a key and
-- is given as it is).
-- The guard hash is the run's ("sy:run:{p…}:wfr_…"), or a stray partition's for a move.
-- It holds the offset last applied and the partition it is of: offsets are only ever
-- compared within one partition.
-- Returns one flag per plan: 1 applied; 0 its offset was already applied from the
-- same partition (a redelivery); -1 the guard's partition differs (refused: the
-- caller dead-letters it, never a silent skip). A plan whose offset is the stored one
-- and whose proof HSET (its state) is already there, value and all, is this very plan
-- applied by an earlier call (a client retrying after a lost reply): 1 again, writing
-- nothing.
-- A call's overhead is paid once per batch (once per slot on a cluster).
local applied = {}
for i = 1, #ARGV do
  local plan = cjson.decode(ARGV[i])
  local guard = KEYS[plan.run]
  local stored = redis.call('HMGET', guard, 'offset', 'partition')
  local last, partition = stored[1], stored[2]
  if last and partition and partition ~= plan.partition then
    applied[i] = -1
  elseif last and tonumber(last) >= tonumber(plan.offset) then
    applied[i] = 0
    local proof = plan.commands[plan.proof or 0]
    if proof and tonumber(last) == tonumber(plan.offset)
        and redis.call('HGET', KEYS[proof[2]], proof[3]) == proof[4] then
      applied[i] = 1
    end
  else
    redis.call('HSET', guard, 'offset', plan.offset, 'partition', plan.partition)
    for _, command in ipairs(plan.commands) do
      if type(command[2]) == 'number' then command[2] = KEYS[command[2]] end
      redis.call(unpack(command))
    end
    applied[i] = 1
  end
end
return applied
