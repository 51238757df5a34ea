-- The order summary as the write model says it should be, for the orders
-- in `chosen` (which the statement that includes this file defines): what
-- every read model must converge to once the pipeline is drained, and the
-- level-0 comparison endpoint (joins on every read). Same field names as
-- orderflow_readmodel::OrderSummary. Newest first.
SELECT jsonb_build_object(
    'order_id', o.id,
    'customer_id', o.customer_id,
    'customer_name', o.customer_name,
    'customer_email', o.customer_email,
    'status', o.status,
    'currency', o.currency,
    'total_minor', o.total_minor,
    'line_count', ls.line_count,
    'item_count', ls.item_count,
    'lines', ls.lines,
    'payment_reference', p.payment_reference,
    'carrier', s.carrier,
    'tracking_number', s.tracking_number,
    'cancel_reason', o.cancel_reason,
    'refund_minor', p.refund_minor,
    'sales_channel', o.sales_channel,
    -- The address in the event's (v2) shape: line1 and line2 become
    -- `lines`; `region` only when the order has one (absent, as in the event).
    'shipping_address', jsonb_strip_nulls(jsonb_build_object(
        'lines', jsonb_path_query_array(o.shipping_address, '$.line1') ||
                 jsonb_path_query_array(o.shipping_address, '$.line2 ? (@ != null)'),
        'city', o.shipping_address->'city',
        'postal_code', o.shipping_address->'postal_code',
        'region', o.shipping_address->'region',
        'country', o.shipping_address->'country')),
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
-- One pass over the order's lines for all three line fields.
CROSS JOIN LATERAL (
    SELECT count(*) AS line_count,
           coalesce(sum(l.quantity), 0) AS item_count,
           jsonb_agg(jsonb_build_object(
               'product_id', l.product_id, 'sku', l.sku, 'product_name', l.product_name,
               'unit_price_minor', l.unit_price_minor, 'quantity', l.quantity,
               'line_total_minor', l.line_total_minor) ORDER BY l.line_no) AS lines
    FROM order_lines l WHERE l.order_id = o.id
) ls
LEFT JOIN payments p ON p.order_id = o.id
LEFT JOIN shipments s ON s.order_id = o.id
ORDER BY o.placed_at DESC, o.id DESC
