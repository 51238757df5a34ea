-- Every changed summary in one statement. The version guard is repeated
-- here so that no write can ever move a row backwards.
INSERT INTO order_summary
SELECT * FROM jsonb_populate_recordset(NULL::order_summary, $1)
ON CONFLICT (order_id) DO UPDATE SET
    customer_id       = EXCLUDED.customer_id,
    customer_name     = EXCLUDED.customer_name,
    customer_email    = EXCLUDED.customer_email,
    status            = EXCLUDED.status,
    currency          = EXCLUDED.currency,
    total_minor       = EXCLUDED.total_minor,
    line_count        = EXCLUDED.line_count,
    item_count        = EXCLUDED.item_count,
    lines             = EXCLUDED.lines,
    payment_reference = EXCLUDED.payment_reference,
    carrier           = EXCLUDED.carrier,
    tracking_number   = EXCLUDED.tracking_number,
    cancel_reason     = EXCLUDED.cancel_reason,
    refund_minor      = EXCLUDED.refund_minor,
    sales_channel     = EXCLUDED.sales_channel,
    shipping_address  = EXCLUDED.shipping_address,
    placed_at         = EXCLUDED.placed_at,
    paid_at           = EXCLUDED.paid_at,
    shipped_at        = EXCLUDED.shipped_at,
    delivered_at      = EXCLUDED.delivered_at,
    cancelled_at      = EXCLUDED.cancelled_at,
    version           = EXCLUDED.version,
    updated_at        = EXCLUDED.updated_at
WHERE order_summary.version < EXCLUDED.version
