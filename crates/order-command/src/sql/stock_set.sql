WITH stock_row AS (
    UPDATE stock SET available = $2, updated_at = now()
    WHERE product_id = $1
    RETURNING product_id, available
)
SELECT p.id, p.sku, p.name, p.unit_price_minor, p.currency::text AS currency, p.active, s.available
FROM stock_row s JOIN products p ON p.id = s.product_id
