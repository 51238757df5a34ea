-- Backfill of one order's status from the write model: written only over an
-- older version, so it never moves a key backwards and can run beside the
-- live projector. No change notification: nothing changed for a client.
-- KEYS[1] the order's hash. ARGV: version, status, updated_at.
-- Returns 1 written, 0 already at that version or newer.
local stored = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if tonumber(ARGV[1]) <= stored then
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'version', ARGV[1], 'updated_at', ARGV[3])
return 1
