-- One denormalised row per order: everything the order summary screen and
-- the order lists need, without a join.
CREATE TABLE order_summary (
    order_id          UUID PRIMARY KEY,
    customer_id       UUID        NOT NULL,
    customer_name     TEXT        NOT NULL,
    customer_email    TEXT        NOT NULL,
    status            TEXT        NOT NULL,
    currency          TEXT        NOT NULL,
    total_minor       BIGINT      NOT NULL,
    line_count        INTEGER     NOT NULL,
    item_count        BIGINT      NOT NULL,
    lines             JSONB       NOT NULL,
    payment_reference TEXT,
    carrier           TEXT,
    tracking_number   TEXT,
    cancel_reason     TEXT,
    refund_minor      BIGINT,
    placed_at         TIMESTAMPTZ NOT NULL,
    paid_at           TIMESTAMPTZ,
    shipped_at        TIMESTAMPTZ,
    delivered_at      TIMESTAMPTZ,
    cancelled_at      TIMESTAMPTZ,
    version           BIGINT      NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);
-- The query API's lists: by customer, by status, recent first.
CREATE INDEX order_summary_customer_idx ON order_summary (customer_id, placed_at DESC, order_id);
CREATE INDEX order_summary_status_idx ON order_summary (status, placed_at DESC, order_id);
CREATE INDEX order_summary_placed_idx ON order_summary (placed_at DESC, order_id);
