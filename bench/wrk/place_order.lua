-- wrk script for `scripts/bench`: POST /orders against a release
-- order-command on the database of bench/pgbench/setup.sql, three distinct
-- products out of its 200, quantity 1 each, picked the way
-- bench/pgbench/place_order_statements.sql picks them, so the HTTP load and
-- pgbench do the same work. LuaJIT 5.1: no `//` operator.
local customer = "00000000-0000-7000-8000-00000000ffff"

local function product(n)
  return string.format("00000000-0000-7000-8000-%012x", n)
end

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
end

function request()
  local a = math.random(0, 199)
  local b = (a + math.random(1, 66)) % 200
  local c = (a + math.random(67, 132)) % 200
  local body = string.format(
    '{"customer_id":"%s","lines":[{"product_id":"%s","quantity":1},' ..
    '{"product_id":"%s","quantity":1},{"product_id":"%s","quantity":1}],' ..
    '"shipping_address":{"line1":"1 Bench Street","city":"Leeds",' ..
    '"postal_code":"LS1 1AA","country":"GB"}}',
    customer, product(a), product(b), product(c))
  return wrk.format("POST", "/orders", { ["Content-Type"] = "application/json" }, body)
end

-- The WRK line scripts/bench parses.
dofile("bench/wrk/wrk_line.lua")
