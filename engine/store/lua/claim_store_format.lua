-- Check the store's format marker against the starting code's, and record it.
-- KEYS[1]: the marker hash (sy:meta); KEYS[2..]: keys whose presence means the store
-- holds data from before the marker existed (then it is state format 1, layout 1).
-- ARGV[1]: the code's state format; ARGV[2]: the code's key layout.
-- Returns {stored state format, stored key layout, written}: written is 1 when the
-- marker now records the code's formats, 0 when the code is refused (the store is
-- newer than it, or its keys are in an older layout: `switchyard state upgrade`).
-- One script: two engines starting at once can't both read "absent" and disagree.
local code_format, code_layout = tonumber(ARGV[1]), tonumber(ARGV[2])
local stored = redis.call('HMGET', KEYS[1], 'state_format', 'key_layout')
local format, layout = tonumber(stored[1]), tonumber(stored[2])
if not format then
  local old = false
  for i = 2, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 1 then old = true end
  end
  if old then
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
