INSERT INTO orders (id, customer_id, customer_name, customer_email, status, version,
                    currency, total_minor, shipping_address, placed_at, sales_channel)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
