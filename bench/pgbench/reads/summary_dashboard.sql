-- The dashboard page from the summary table: the 50 newest orders, by its
-- placed-at index.
SELECT * FROM order_summary ORDER BY placed_at DESC, order_id LIMIT 50;
