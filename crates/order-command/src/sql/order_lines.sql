SELECT product_id, sku, product_name, unit_price_minor, quantity, line_total_minor
FROM order_lines
WHERE order_id = $1
ORDER BY line_no
