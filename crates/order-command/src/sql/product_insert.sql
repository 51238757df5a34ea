WITH product AS (
    INSERT INTO products (id, sku, name, unit_price_minor, currency, active)
    VALUES ($1, $2, $3, $4, $5, $6)
    RETURNING id, sku, name, unit_price_minor, currency, active
), stock_row AS (
    INSERT INTO stock (product_id, available)
    SELECT id, $7 FROM product
    RETURNING available
)
SELECT p.id, p.sku, p.name, p.unit_price_minor, p.currency::text AS currency, p.active, s.available
FROM product p, stock_row s
