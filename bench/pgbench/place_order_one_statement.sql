-- The same work as place_order_statements.sql in one statement, one round
-- trip: read the customer, lock the three stock rows in product-id order,
-- insert the order, its lines and its outbox row, reserve the stock. This is the ceiling of PlaceOrder's own work on this
-- database: what is left when nothing waits on the network between
-- statements. Run with `-M prepared`.
\set a random(0, 199)
\set b (:a + random(1, 66)) % 200
\set c (:a + random(67, 132)) % 200
\set r random(1, 4611686018427387903)
\set e random(1, 4611686018427387903)
WITH c AS (
    SELECT id, name, email FROM customers WHERE id = '00000000-0000-7000-8000-00000000ffff'
), p AS (
    SELECT p.id, p.sku, p.name, p.unit_price_minor, s.available
    FROM products p
    JOIN stock s ON s.product_id = p.id
    WHERE p.id = ANY(ARRAY[bench_product(:a), bench_product(:b), bench_product(:c)])
    ORDER BY p.id
    FOR UPDATE OF s
), o AS (
    INSERT INTO orders (id, customer_id, customer_name, customer_email, status, version,
                        currency, total_minor, shipping_address, placed_at)
    SELECT bench_v7(:r), c.id, c.name, c.email, 'placed', 1, 'EUR',
           (SELECT sum(unit_price_minor) FROM p),
           '{"line1": "1 Bench Street", "city": "Leeds", "postal_code": "LS1 1AA", "country": "GB"}',
           now()
    FROM c
    RETURNING id
), l AS (
    INSERT INTO order_lines (order_id, line_no, product_id, sku, product_name,
                             unit_price_minor, quantity, line_total_minor)
    SELECT o.id, row_number() OVER (ORDER BY p.id), p.id, p.sku, p.name,
           p.unit_price_minor, 1, p.unit_price_minor
    FROM o, p
), s AS (
    UPDATE stock s SET available = s.available - 1, updated_at = now()
    WHERE s.product_id = ANY(ARRAY[bench_product(:a), bench_product(:b), bench_product(:c)])
), x AS (
    INSERT INTO outbox (event_id, event_type, schema_version, aggregate_type,
                        aggregate_id, aggregate_version, envelope, traceparent)
    SELECT bench_v7(:e), 'OrderPlaced', 1, 'order', o.id, 1,
           format(b.envelope, bench_v7(:e), o.id)::json, NULL
    FROM o, bench_envelope b
)
SELECT o.id FROM o;
