-- Compare-and-set of one order's status, with its change notification, in
-- the generation the pointer names; and, while a rebuild fills another
-- generation, the same state written there too (forward only), so the copy
-- misses nothing the live projector applies before the swap.
-- KEYS[1] the generation pointer, KEYS[2] the rebuilding pointer, KEYS[3]
-- the change channel. ARGV: key prefix, order id, version, status,
-- updated_at, message.
-- Returns 1 applied, 0 duplicate (version at or below the stored one),
-- -1 gap (an earlier version is missing).
local function key(generation)
  if generation == 0 then
    return ARGV[1] .. 'order:' .. ARGV[2]
  end
  return ARGV[1] .. 'g' .. generation .. ':order:' .. ARGV[2]
end
local live = key(tonumber(redis.call('GET', KEYS[1]) or '0'))
local stored = tonumber(redis.call('HGET', live, 'version') or '0')
local version = tonumber(ARGV[3])
if version <= stored then
  return 0
end
if version > stored + 1 then
  return -1
end
redis.call('HSET', live, 'status', ARGV[4], 'version', ARGV[3], 'updated_at', ARGV[5])
local rebuilding = redis.call('GET', KEYS[2])
if rebuilding then
  local copy = key(tonumber(rebuilding))
  if version > tonumber(redis.call('HGET', copy, 'version') or '0') then
    redis.call('HSET', copy, 'status', ARGV[4], 'version', ARGV[3], 'updated_at', ARGV[5])
  end
end
redis.call('PUBLISH', KEYS[3], ARGV[6])
return 1
