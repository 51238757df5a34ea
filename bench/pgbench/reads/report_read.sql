-- report_write.sql's report from the summary table on the read database:
-- the same figures per day and status, no join.
SELECT date_trunc('day', placed_at) AS day, status, count(*) AS orders,
       sum(item_count) AS items, sum(total_minor) AS revenue_minor,
       sum(refund_minor) AS refunded_minor
FROM order_summary
WHERE placed_at > now() - interval '90 days'
GROUP BY 1, 2
ORDER BY 1 DESC, 2;
