-- One order from the summary table (the read model), on the seeded read
-- database; the same random orders as the joins (`bench_ids`).
\set k random(1, :ids)
SELECT * FROM order_summary WHERE order_id = (SELECT id FROM bench_ids WHERE n = :k);
