-- One order's cached status in the generation the pointer names, read in
-- one atomic step, so a reader never follows a pointer into a generation
-- that a swap has just deleted.
-- KEYS[1] the generation pointer. ARGV: key prefix, order id.
-- Returns status, version, updated_at (nil each when absent).
local generation = tonumber(redis.call('GET', KEYS[1]) or '0')
local key
if generation == 0 then
  key = ARGV[1] .. 'order:' .. ARGV[2]
else
  key = ARGV[1] .. 'g' .. generation .. ':order:' .. ARGV[2]
end
return redis.call('HMGET', key, 'status', 'version', 'updated_at')
