-- PlaceOrder as order-command issues it (no Idempotency-Key, no NOTIFY):
-- one transaction, one round trip per statement, the statements of
-- crates/order-command/src/sql/ and crates/orderflow-outbox/src/sql/ with
-- pgbench's variables where the service binds parameters. Three distinct
-- products out of 200, quantity 1 each. Run with `-M prepared`.
\set a random(0, 199)
\set b (:a + random(1, 66)) % 200
\set c (:a + random(67, 132)) % 200
\set r random(1, 4611686018427387903)
\set e random(1, 4611686018427387903)
BEGIN;
SELECT name, email FROM customers WHERE id = '00000000-0000-7000-8000-00000000ffff';
SELECT p.id, p.sku, p.name, p.unit_price_minor, p.currency::text AS currency, p.active, s.available
FROM products p
JOIN stock s ON s.product_id = p.id
WHERE p.id = ANY(ARRAY[bench_product(:a), bench_product(:b), bench_product(:c)])
ORDER BY p.id
FOR UPDATE OF s;
INSERT INTO orders (id, customer_id, customer_name, customer_email, status, version,
                    currency, total_minor, shipping_address, placed_at)
VALUES (bench_v7(:r), '00000000-0000-7000-8000-00000000ffff', 'Bench Customer',
        'bench@example.com', 'placed', 1, 'EUR', 300 + :a + :b + :c,
        '{"line1": "1 Bench Street", "city": "Leeds", "postal_code": "LS1 1AA", "country": "GB"}',
        now());
INSERT INTO order_lines (order_id, line_no, product_id, sku, product_name,
                         unit_price_minor, quantity, line_total_minor)
SELECT bench_v7(:r), l.line_no, l.product_id, l.sku, l.product_name, l.unit_price_minor, l.quantity, l.line_total
FROM unnest(ARRAY[1, 2, 3],
            ARRAY[bench_product(:a), bench_product(:b), bench_product(:c)],
            ARRAY['BENCH-' || :a, 'BENCH-' || :b, 'BENCH-' || :c],
            ARRAY['Bench product ' || :a, 'Bench product ' || :b, 'Bench product ' || :c],
            ARRAY[100 + :a, 100 + :b, 100 + :c]::bigint[],
            ARRAY[1, 1, 1],
            ARRAY[100 + :a, 100 + :b, 100 + :c]::bigint[])
         AS l(line_no, product_id, sku, product_name, unit_price_minor, quantity, line_total);
SELECT 1 FROM stock WHERE product_id = ANY(ARRAY[bench_product(:a), bench_product(:b), bench_product(:c)]) ORDER BY product_id FOR UPDATE;
UPDATE stock s
SET available = s.available + d.delta, updated_at = now()
FROM unnest(ARRAY[bench_product(:a), bench_product(:b), bench_product(:c)], ARRAY[-1, -1, -1]::bigint[]) AS d(product_id, delta)
WHERE s.product_id = d.product_id;
INSERT INTO outbox (event_id, event_type, schema_version, aggregate_type,
                    aggregate_id, aggregate_version, envelope, traceparent)
SELECT e.event_id, e.event_type, e.schema_version, e.aggregate_type,
       e.aggregate_id, e.aggregate_version, e.envelope, NULL
FROM unnest(ARRAY[bench_v7(:e)], ARRAY['OrderPlaced'], ARRAY[1], ARRAY['order'], ARRAY[bench_v7(:r)], ARRAY[1]::bigint[],
            ARRAY[(SELECT envelope || jsonb_build_object('event_id', bench_v7(:e), 'aggregate_id', bench_v7(:r)) FROM bench_envelope)])
         WITH ORDINALITY AS e(event_id, event_type, schema_version, aggregate_type,
                              aggregate_id, aggregate_version, envelope, n)
ORDER BY e.n;
END;
