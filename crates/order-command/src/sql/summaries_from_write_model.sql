-- The order summary as the write model says it should be: what every read
-- model must converge to once the pipeline is drained, and the level-0
-- comparison endpoint (joins on every read). Same field names as
-- orderflow_readmodel::OrderSummary. $1: order ids or NULL for all;
-- $2: at most this many, newest first (NULL: no limit).
WITH chosen AS (
    SELECT id FROM orders
    WHERE $1::uuid[] IS NULL OR id = ANY($1)
    ORDER BY placed_at DESC, id DESC
    LIMIT $2
)
SELECT jsonb_build_object(
    'order_id', o.id,
    'customer_id', o.customer_id,
    'customer_name', o.customer_name,
    'customer_email', o.customer_email,
    'status', o.status,
    'currency', o.currency,
    'total_minor', o.total_minor,
    'line_count', (SELECT count(*) FROM order_lines l WHERE l.order_id = o.id),
    'item_count', (SELECT coalesce(sum(quantity), 0) FROM order_lines l WHERE l.order_id = o.id),
    'lines', (SELECT jsonb_agg(jsonb_build_object(
                    'product_id', l.product_id, 'sku', l.sku, 'product_name', l.product_name,
                    'unit_price_minor', l.unit_price_minor, 'quantity', l.quantity,
                    'line_total_minor', l.line_total_minor) ORDER BY l.line_no)
              FROM order_lines l WHERE l.order_id = o.id),
    'payment_reference', p.payment_reference,
    'carrier', s.carrier,
    'tracking_number', s.tracking_number,
    'cancel_reason', o.cancel_reason,
    'refund_minor', p.refund_minor,
    'placed_at', o.placed_at,
    'paid_at', p.paid_at,
    'shipped_at', s.shipped_at,
    'delivered_at', o.delivered_at,
    'cancelled_at', o.cancelled_at,
    'version', o.version,
    'updated_at', greatest(o.placed_at, p.paid_at, s.shipped_at, o.delivered_at, o.cancelled_at)
)
FROM chosen c
JOIN orders o ON o.id = c.id
LEFT JOIN payments p ON p.order_id = o.id
LEFT JOIN shipments s ON s.order_id = o.id
ORDER BY o.placed_at DESC, o.id DESC
