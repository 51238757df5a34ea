UPDATE orders
SET status = $2, version = $3, delivered_at = $4, cancelled_at = $5, cancel_reason = $6,
    updated_at = now()
WHERE id = $1
