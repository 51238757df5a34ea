-- Newest first, keyset-paginated on (placed_at, order_id). Absent filters
-- are NULL.
SELECT to_jsonb(s)
FROM order_summary s
WHERE ($1::uuid IS NULL OR s.customer_id = $1)
  AND ($2::text IS NULL OR s.status = $2)
  AND ($3::timestamptz IS NULL OR s.placed_at >= $3)
  AND ($4::timestamptz IS NULL OR s.placed_at < $4)
  AND ($5::timestamptz IS NULL OR (s.placed_at, s.order_id) < ($5, $6::uuid))
ORDER BY s.placed_at DESC, s.order_id DESC
LIMIT $7
