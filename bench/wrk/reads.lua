-- wrk script for `scripts/bench`'s reads section: GET one path against the
-- release order-query on the seeded dataset. Arguments after `--`: a path,
-- and for paths ending in "/" a file of order ids (one a line, the random
-- sample the pgbench reads use), each request naming a random one.
-- Prints the WRK line of wrk_line.lua.
local prefix, ids = "/orders?limit=50", nil

function init(args)
  prefix = args[1] or prefix
  if args[2] then
    ids = {}
    for line in io.lines(args[2]) do
      ids[#ids + 1] = line
    end
  end
  math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1e6))
end

function request()
  if ids then
    return wrk.format("GET", prefix .. ids[math.random(1, #ids)])
  end
  return wrk.format("GET", prefix)
end

-- The WRK line scripts/bench parses.
dofile("bench/wrk/wrk_line.lua")
