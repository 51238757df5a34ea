-- One chunk of seeded orders [lo, hi), from the `seed_params` temporary table
-- of the same transaction. Everything is a function of the order's index, so
-- a chunk needs no state from the others and the data is the same on every
-- run with the same tag. Each order's row is what its events would have left:
-- version = number of events, payments and shipments rows where they belong,
-- total = sum of its lines.
CREATE TEMPORARY TABLE seed_orders ON COMMIT DROP AS
SELECT md5(p.tag || ':o:' || i)::uuid AS id,
       md5(p.tag || ':c:' || ((i * 48271) % p.customers))::uuid AS customer_id,
       -- 1 .. 2*avg-1 lines, averaging lines_per_order over each run of indexes.
       -- 101 is prime and larger than any modulus allowed (lines-per-order ≤ 50),
       -- so every count from 1 to 2*avg-1 comes up.
       1 + (i * 101) % (2 * p.lines_per_order - 1) AS line_count,
       (i * 7919) % p.products AS first_product,
       -- Lifecycle mix: 8% placed, 10% paid, 20% shipped, 56% delivered,
       -- 3% cancelled before payment, 3% cancelled and refunded.
       CASE
           WHEN (i * 13) % 100 < 8 THEN 'placed'
           WHEN (i * 13) % 100 < 18 THEN 'paid'
           WHEN (i * 13) % 100 < 38 THEN 'shipped'
           WHEN (i * 13) % 100 < 94 THEN 'delivered'
           WHEN (i * 13) % 100 < 97 THEN 'cancelled'
           ELSE 'refunded'
       END AS lifecycle,
       -- Oldest first, evenly over the span that ends a day before the seed.
       p.start_at - interval '1 day'
           - make_interval(secs => (p.total_orders - 1 - i)::double precision
                                    * p.span_seconds / p.total_orders) AS placed_at
FROM seed_params p, generate_series(p.lo, p.hi - 1) AS i;

CREATE TEMPORARY TABLE seed_lines ON COMMIT DROP AS
SELECT o.id AS order_id, n AS line_no, pr.id AS product_id, pr.sku,
       pr.name AS product_name, pr.unit_price_minor,
       1 + (n + o.line_count) % 4 AS quantity
FROM seed_orders o
CROSS JOIN LATERAL generate_series(1, o.line_count) AS n
CROSS JOIN seed_params p
JOIN products pr ON pr.id = md5(p.tag || ':p:' || ((o.first_product + n) % p.products))::uuid;

INSERT INTO orders (id, customer_id, customer_name, customer_email, status, version,
                    currency, total_minor, shipping_address, placed_at, delivered_at,
                    cancelled_at, cancel_reason, updated_at)
SELECT o.id, o.customer_id, c.name, c.email,
       CASE o.lifecycle WHEN 'refunded' THEN 'cancelled' ELSE o.lifecycle END,
       CASE o.lifecycle
           WHEN 'placed' THEN 1 WHEN 'paid' THEN 2 WHEN 'shipped' THEN 3
           WHEN 'delivered' THEN 4 WHEN 'cancelled' THEN 2 ELSE 3
       END,
       'EUR', t.total,
       jsonb_build_object('line1', (1 + abs(hashtext(o.id::text)::bigint) % 200) || ' Market Street',
                          'line2', NULL, 'city', 'Springfield',
                          'postal_code', lpad((abs(hashtext(c.email)::bigint) % 100000)::text, 5, '0'),
                          'country', 'NL'),
       o.placed_at,
       CASE WHEN o.lifecycle = 'delivered' THEN o.placed_at + interval '2 hours' END,
       CASE WHEN o.lifecycle IN ('cancelled', 'refunded') THEN o.placed_at + interval '30 minutes' END,
       CASE WHEN o.lifecycle IN ('cancelled', 'refunded') THEN 'customer changed their mind' END,
       o.placed_at
FROM seed_orders o
JOIN customers c ON c.id = o.customer_id
JOIN (SELECT order_id, sum(unit_price_minor * quantity) AS total
      FROM seed_lines GROUP BY order_id) t ON t.order_id = o.id;

INSERT INTO order_lines (order_id, line_no, product_id, sku, product_name,
                         unit_price_minor, quantity, line_total_minor)
SELECT order_id, line_no, product_id, sku, product_name, unit_price_minor, quantity,
       unit_price_minor * quantity
FROM seed_lines;

INSERT INTO payments (order_id, amount_minor, currency, payment_reference, paid_at,
                      refund_minor, refunded_at)
SELECT o.id, w.total_minor, w.currency, 'PAY-' || upper(substr(md5(o.id::text), 1, 10)),
       o.placed_at + interval '5 minutes',
       CASE WHEN o.lifecycle = 'refunded' THEN w.total_minor END,
       CASE WHEN o.lifecycle = 'refunded' THEN o.placed_at + interval '30 minutes' END
FROM seed_orders o
JOIN orders w ON w.id = o.id
WHERE o.lifecycle IN ('paid', 'shipped', 'delivered', 'refunded');

INSERT INTO shipments (order_id, carrier, tracking_number, shipped_at)
SELECT o.id,
       (ARRAY['DHL','UPS','PostNL','FedEx','DPD'])[1 + abs(hashtext(o.id::text)::bigint) % 5],
       'TRK' || upper(substr(md5('trk' || o.id::text), 1, 12)),
       o.placed_at + interval '1 hour'
FROM seed_orders o
WHERE o.lifecycle IN ('shipped', 'delivered');
