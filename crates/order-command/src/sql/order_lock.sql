SELECT id, customer_id, customer_name, customer_email, status, version,
       currency::text AS currency, total_minor, shipping_address, placed_at,
       delivered_at, cancelled_at, cancel_reason, sales_channel
FROM orders
WHERE id = $1
FOR UPDATE
