WITH product AS (
    UPDATE products
    SET sku = $2, name = $3, unit_price_minor = $4, currency = $5, active = $6, updated_at = now()
    WHERE id = $1
    RETURNING id, sku, name, unit_price_minor, currency, active
)
SELECT p.id, p.sku, p.name, p.unit_price_minor, p.currency::text AS currency, p.active, s.available
FROM product p JOIN stock s ON s.product_id = p.id
