-- The order summary as a naive report query writes it (level 0): every
-- write table joined, grouped per order. Not a script by itself:
-- `scripts/bench` (scripts/bench.d/sections.sh) ends it two ways, for one
-- random order of `bench_ids` (its sample, the same on the read side) and
-- for the dashboard page (grouped, then sorted and cut, so every order is
-- aggregated for 50 of them; also the heavy half of the checkout section's
-- reporting workload).
SELECT o.id, o.customer_id, o.customer_name, o.customer_email, o.status, o.currency,
       o.total_minor, count(l.line_no) AS line_count, sum(l.quantity) AS item_count,
       jsonb_agg(jsonb_build_object(
           'product_id', l.product_id, 'sku', l.sku, 'product_name', l.product_name,
           'unit_price_minor', l.unit_price_minor, 'quantity', l.quantity,
           'line_total_minor', l.line_total_minor) ORDER BY l.line_no) AS lines,
       p.payment_reference, s.carrier, s.tracking_number, o.cancel_reason, p.refund_minor,
       o.placed_at, p.paid_at, s.shipped_at, o.delivered_at, o.cancelled_at, o.version
FROM orders o
JOIN order_lines l ON l.order_id = o.id
LEFT JOIN payments p ON p.order_id = o.id
LEFT JOIN shipments s ON s.order_id = o.id
