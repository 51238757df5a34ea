-- PlaceOrder's first round trip: what the domain decides on, read without
-- a transaction or a lock (the write re-checks what it must; see
-- place_write.sql). One row per product found with its stock, each also
-- carrying the customer and the live idempotency record of the request's
-- key (NULL when there is none); a single row of NULL product columns when
-- no product is found.
SELECT c.name AS customer_name, c.email AS customer_email,
       k.request_hash, k.status, k.response_body, k.location, k.etag,
       p.id, p.sku, p.name, p.unit_price_minor, p.currency::text AS currency, p.active, s.available
FROM (VALUES (1)) AS one (x)
LEFT JOIN customers c ON c.id = $1
LEFT JOIN idempotency_keys k ON k.principal = $3 AND k.key = $4 AND k.expires_at >= now()
LEFT JOIN (products p JOIN stock s ON s.product_id = p.id) ON p.id = ANY($2)
ORDER BY p.id
