-- A reporting query on the write database (level 0), the light half of the
-- checkout-under-load section's reporting workload (the heavy half is the
-- naive dashboard join, naive_join.sql): orders, items and revenue per day and status over
-- the last 90 days, joined from orders, lines and payments.
SELECT date_trunc('day', o.placed_at) AS day, o.status, count(DISTINCT o.id) AS orders,
       sum(l.quantity) AS items, sum(l.line_total_minor) AS revenue_minor,
       sum(p.refund_minor) AS refunded_minor
FROM orders o
JOIN order_lines l ON l.order_id = o.id
LEFT JOIN payments p ON p.order_id = o.id
WHERE o.placed_at > now() - interval '90 days'
GROUP BY 1, 2
ORDER BY 1 DESC, 2;
