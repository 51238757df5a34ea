-- PlaceOrder's second and last round trip: everything the domain decided,
-- in one statement, so one transaction without a BEGIN or a COMMIT.
--
-- claim   the Idempotency-Key (when the request has one) with its response:
--         a concurrent request with the same key waits here, before it holds
--         any stock lock, until this one commits (then `claimed` is false and
--         nothing else is written) or rolls back (then it claims the key).
-- locked  the stock rows, in product-id order, as every stock writer locks
--         them: overlapping orders queue instead of deadlocking.
-- o, l    the order and its lines.
-- s       the reservation; the stock CHECK (available >= 0) refuses what
--         other orders took since the read, failing the whole statement, and
--         the command reads again and lets the domain decide afresh.
-- x       the outbox rows (as orderflow_outbox's append.sql writes them).
WITH claim AS (
    INSERT INTO idempotency_keys (principal, key, request_hash, expires_at,
                                  status, response_body, location, etag)
    SELECT $1, $2, $3, now() + make_interval(secs => $4), $5, $6, $7, $8
    WHERE $2::text IS NOT NULL
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
    SELECT $2::text IS NULL OR EXISTS (SELECT 1 FROM claim) AS ok
), locked AS (
    SELECT product_id FROM stock
    WHERE product_id = ANY($21::uuid[]) AND (SELECT ok FROM go)
    ORDER BY product_id
    FOR UPDATE
), o AS (
    INSERT INTO orders (id, customer_id, customer_name, customer_email, status, version,
                        currency, total_minor, shipping_address, placed_at, sales_channel)
    SELECT $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19
    WHERE (SELECT ok FROM go)
    RETURNING id
), l AS (
    INSERT INTO order_lines (order_id, line_no, product_id, sku, product_name,
                             unit_price_minor, quantity, line_total_minor)
    SELECT o.id, l.line_no, l.product_id, l.sku, l.product_name, l.unit_price_minor,
           l.quantity, l.line_total
    FROM o, unnest($20::int[], $21::uuid[], $22::text[], $23::text[], $24::bigint[],
                   $25::int[], $26::bigint[])
             AS l(line_no, product_id, sku, product_name, unit_price_minor, quantity, line_total)
), s AS (
    UPDATE stock s
    SET available = s.available - d.quantity, updated_at = now()
    FROM locked k JOIN unnest($21::uuid[], $25::int[]) AS d(product_id, quantity)
         ON d.product_id = k.product_id
    WHERE s.product_id = k.product_id AND EXISTS (SELECT 1 FROM o)
), x AS (
    INSERT INTO outbox (event_id, event_type, schema_version, aggregate_type,
                        aggregate_id, aggregate_version, envelope, traceparent)
    SELECT e.event_id, e.event_type, e.schema_version, e.aggregate_type,
           e.aggregate_id, e.aggregate_version, e.envelope::json, $34
    FROM o, unnest($27::uuid[], $28::text[], $29::int[], $30::text[], $31::uuid[],
                   $32::bigint[], $33::text[])
             WITH ORDINALITY AS e(event_id, event_type, schema_version, aggregate_type,
                                  aggregate_id, aggregate_version, envelope, n)
    ORDER BY e.n
)
SELECT (SELECT ok FROM go) AS claimed
