-- Repair of one order's status by reconcile: written only if the hash still
-- has the version reconcile saw, so a projector that moved it on since
-- wins. No change notification: the write model did not change.
-- KEYS[1] the order's hash. ARGV: seen version, version, status, updated_at.
-- Returns 1 written, 0 left alone.
local stored = redis.call('HGET', KEYS[1], 'version') or '0'
if stored ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'version', ARGV[2], 'updated_at', ARGV[4])
return 1
