-- Repair: each row that still has the version reconcile saw ($2, per order
-- id in $1) takes the write model's state ($3), older or newer. An UPDATE,
-- not a delete and insert, so a projector waiting on the row's lock finds
-- it afterwards instead of seeing it vanish.
UPDATE order_summary s SET
    customer_id       = r.customer_id,
    customer_name     = r.customer_name,
    customer_email    = r.customer_email,
    status            = r.status,
    currency          = r.currency,
    total_minor       = r.total_minor,
    line_count        = r.line_count,
    item_count        = r.item_count,
    lines             = r.lines,
    payment_reference = r.payment_reference,
    carrier           = r.carrier,
    tracking_number   = r.tracking_number,
    cancel_reason     = r.cancel_reason,
    refund_minor      = r.refund_minor,
    sales_channel     = r.sales_channel,
    shipping_address  = r.shipping_address,
    placed_at         = r.placed_at,
    paid_at           = r.paid_at,
    shipped_at        = r.shipped_at,
    delivered_at      = r.delivered_at,
    cancelled_at      = r.cancelled_at,
    version           = r.version,
    updated_at        = r.updated_at
FROM jsonb_populate_recordset(NULL::order_summary, $3) AS r,
     unnest($1::uuid[], $2::bigint[]) AS seen(id, version)
WHERE s.order_id = r.order_id
  AND s.order_id = seen.id
  AND s.version = seen.version
