-- Check the store's format marker against the starting code's, and record it.
-- KEYS[1]: the marker hash (sy:meta), the only key: one slot on a Redis Cluster.
-- ARGV[1]: the code's state format; ARGV[2]: the code's key layout; ARGV[3]: '1' when
-- the caller found data from before the marker existed (then the store is state
-- format 1, layout 1; those keys are in other slots, so the caller looks, not this).
-- Returns {stored state format, stored key layout, written}: written is 1 when the
-- marker now records the code's formats, 0 when the code is refused (the store is
-- newer than it, or its keys are in an older layout: `switchyard state upgrade`).
-- One script: two engines starting at once can't both read "absent" and disagree.
-- (The data probe before it is not atomic with it; it only matters while no marker
-- exists, and then only another release writing at the same moment could change it.)
local code_format, code_layout = tonumber(ARGV[1]), tonumber(ARGV[2])
local stored = redis.call('HMGET', KEYS[1], 'state_format', 'key_layout')
local format, layout = tonumber(stored[1]), tonumber(stored[2])
if not format then
  if ARGV[3] == '1' then
    format, layout = 1, 1
  else
    format, layout = code_format, code_layout
  end
end
layout = layout or 1
if format > code_format or layout ~= code_layout then
  return {format, layout, 0}
end
redis.call('HSET', KEYS[1], 'state_format', code_format, 'key_layout', code_layout)
return {format, layout, 1}
