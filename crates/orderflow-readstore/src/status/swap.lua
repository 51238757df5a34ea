-- The swap of a status rebuild: the pointer moves to the rebuilt
-- generation and the rebuilding pointer goes, in one atomic step, but only
-- if the rebuilding pointer still names that generation.
-- KEYS[1] the generation pointer, KEYS[2] the rebuilding pointer.
-- ARGV: the rebuilt generation. Returns 1 swapped, 0 refused.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
