-- Compare-and-set of one order's status in a rebuild's generation, from a
-- replayed event: no change notification (nothing changed for a client).
-- KEYS[1] the order's hash in that generation. ARGV: version, status,
-- updated_at. Returns 1 applied, 0 duplicate, -1 gap.
local stored = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local version = tonumber(ARGV[1])
if version <= stored then
  return 0
end
if version > stored + 1 then
  return -1
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'version', ARGV[1], 'updated_at', ARGV[3])
return 1
