-- Compare-and-set of one order's status, with its change notification.
-- KEYS[1] the order's hash, KEYS[2] the change channel.
-- ARGV: version, status, updated_at, message.
-- Returns 1 applied, 0 duplicate (version at or below the stored one),
-- -1 gap (an earlier version is missing).
local stored = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local version = tonumber(ARGV[1])
if version <= stored then
  return 0
end
if version > stored + 1 then
  return -1
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'version', ARGV[1], 'updated_at', ARGV[3])
redis.call('PUBLISH', KEYS[2], ARGV[4])
return 1
