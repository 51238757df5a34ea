UPDATE stock s
SET available = s.available + d.delta, updated_at = now()
FROM unnest($1::uuid[], $2::bigint[]) AS d(product_id, delta)
WHERE s.product_id = d.product_id
