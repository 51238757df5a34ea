INSERT INTO order_lines (order_id, line_no, product_id, sku, product_name,
                         unit_price_minor, quantity, line_total_minor)
SELECT $1, l.line_no, l.product_id, l.sku, l.product_name, l.unit_price_minor, l.quantity, l.line_total
FROM unnest($2::int[], $3::uuid[], $4::text[], $5::text[], $6::bigint[], $7::int[], $8::bigint[])
         AS l(line_no, product_id, sku, product_name, unit_price_minor, quantity, line_total)
