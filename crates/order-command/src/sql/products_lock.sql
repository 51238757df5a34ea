-- Rows are locked after sorting, so every transaction locks in id order.
SELECT p.id, p.sku, p.name, p.unit_price_minor, p.currency::text AS currency, p.active, s.available
FROM products p
JOIN stock s ON s.product_id = p.id
WHERE p.id = ANY($1)
ORDER BY p.id
FOR UPDATE OF s
