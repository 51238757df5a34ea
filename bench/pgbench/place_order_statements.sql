-- PlaceOrder as order-command issues it (no Idempotency-Key): its two round
-- trips, the statements of crates/order-command/src/sql/place_read.sql and
-- place_write.sql, each its own transaction as the service runs them (no
-- BEGIN, no COMMIT), with pgbench's variables where the service binds
-- parameters. Three distinct products out of 200, quantity 1 each. Run with
-- `-M prepared`. Generated from those files; keep it in step with them.
\set a random(0, 199)
\set b (:a + random(1, 66)) % 200
\set c (:a + random(67, 132)) % 200
\set r random(1, 4611686018427387903)
\set e random(1, 4611686018427387903)
SELECT c.name AS customer_name, c.email AS customer_email,
       k.request_hash, k.status, k.response_body, k.location, k.etag,
       p.id, p.sku, p.name, p.unit_price_minor, p.currency::text AS currency, p.active, s.available
FROM (VALUES (1)) AS one (x)
LEFT JOIN customers c ON c.id = '00000000-0000-7000-8000-00000000ffff'
LEFT JOIN idempotency_keys k ON k.principal = NULL AND k.key = NULL AND k.expires_at >= now()
LEFT JOIN (products p JOIN stock s ON s.product_id = p.id) ON p.id = ANY(ARRAY[bench_product(:a), bench_product(:b), bench_product(:c)])
ORDER BY p.id;
WITH claim AS (
    INSERT INTO idempotency_keys (principal, key, request_hash, expires_at,
                                  status, response_body, location, etag)
    SELECT NULL, NULL, NULL, now() + make_interval(secs => NULL), 201, convert_to('{"order_id":"' || bench_v7(:r) || '","version":1,"status":"placed"}', 'UTF8'), '/orders/' || bench_v7(:r), '"1"'
    WHERE NULL::text IS NOT NULL
    ON CONFLICT (principal, key) DO UPDATE
        SET request_hash  = EXCLUDED.request_hash,
            status        = EXCLUDED.status,
            response_body = EXCLUDED.response_body,
            location      = EXCLUDED.location,
            etag          = EXCLUDED.etag,
            created_at    = now(),
            expires_at    = EXCLUDED.expires_at
        WHERE idempotency_keys.expires_at < now()
    RETURNING true
), go AS (
    SELECT NULL::text IS NULL OR EXISTS (SELECT 1 FROM claim) AS ok
), locked AS (
    SELECT product_id FROM stock
    WHERE product_id = ANY(ARRAY[bench_product(:a), bench_product(:b), bench_product(:c)]::uuid[]) AND (SELECT ok FROM go)
    ORDER BY product_id
    FOR UPDATE
), o AS (
    INSERT INTO orders (id, customer_id, customer_name, customer_email, status, version,
                        currency, total_minor, shipping_address, placed_at, sales_channel)
    SELECT bench_v7(:r), '00000000-0000-7000-8000-00000000ffff'::uuid, 'Bench Customer', 'bench@example.com', 'placed', 1, 'EUR', 300 + :a + :b + :c, '{"line1": "1 Bench Street", "city": "Leeds", "postal_code": "LS1 1AA", "country": "GB"}'::jsonb, now(), NULL
    WHERE (SELECT ok FROM go)
    RETURNING id
), l AS (
    INSERT INTO order_lines (order_id, line_no, product_id, sku, product_name,
                             unit_price_minor, quantity, line_total_minor)
    SELECT o.id, l.line_no, l.product_id, l.sku, l.product_name, l.unit_price_minor,
           l.quantity, l.line_total
    FROM o, unnest(ARRAY[1, 2, 3]::int[], ARRAY[bench_product(:a), bench_product(:b), bench_product(:c)]::uuid[], ARRAY['BENCH-' || :a, 'BENCH-' || :b, 'BENCH-' || :c]::text[], ARRAY['Bench product ' || :a, 'Bench product ' || :b, 'Bench product ' || :c]::text[], ARRAY[100 + :a, 100 + :b, 100 + :c]::bigint[],
                   ARRAY[1, 1, 1]::int[], ARRAY[100 + :a, 100 + :b, 100 + :c]::bigint[])
             AS l(line_no, product_id, sku, product_name, unit_price_minor, quantity, line_total)
), s AS (
    UPDATE stock s
    SET available = s.available - d.quantity, updated_at = now()
    FROM locked k JOIN unnest(ARRAY[bench_product(:a), bench_product(:b), bench_product(:c)]::uuid[], ARRAY[1, 1, 1]::int[]) AS d(product_id, quantity)
         ON d.product_id = k.product_id
    WHERE s.product_id = k.product_id AND EXISTS (SELECT 1 FROM o)
), x AS (
    INSERT INTO outbox (event_id, event_type, schema_version, aggregate_type,
                        aggregate_id, aggregate_version, envelope, traceparent)
    SELECT e.event_id, e.event_type, e.schema_version, e.aggregate_type,
           e.aggregate_id, e.aggregate_version, e.envelope::json, NULL
    FROM o, unnest(ARRAY[bench_v7(:e)]::uuid[], ARRAY['OrderPlaced']::text[], ARRAY[1]::int[], ARRAY['order']::text[], ARRAY[bench_v7(:r)]::uuid[],
                   ARRAY[1]::bigint[], ARRAY[(SELECT format(envelope, bench_v7(:e), bench_v7(:r)) FROM bench_envelope)]::text[])
             WITH ORDINALITY AS e(event_id, event_type, schema_version, aggregate_type,
                                  aggregate_id, aggregate_version, envelope, n)
    ORDER BY e.n
)
SELECT (SELECT ok FROM go) AS claimed;
