-- The normalised write model. Owned by order-command alone; read models are
-- built from its events, never by querying these tables from elsewhere
-- (except the query service's read-only strong-consistency fallback).

CREATE TABLE customers (
    id         UUID PRIMARY KEY,
    name       TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email      TEXT        NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT customers_email_key UNIQUE (email)
);

CREATE TABLE products (
    id               UUID PRIMARY KEY,
    sku              TEXT        NOT NULL CHECK (sku ~ '^[A-Z0-9._-]{1,64}$'),
    name             TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    unit_price_minor BIGINT      NOT NULL CHECK (unit_price_minor >= 0),
    currency         CHAR(3)     NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    active           BOOLEAN     NOT NULL DEFAULT true,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT products_sku_key UNIQUE (sku)
);

-- Stock on hand per product. The CHECK is the last line of defence against
-- oversell: even a bug in the command path cannot commit a negative count.
CREATE TABLE stock (
    product_id UUID PRIMARY KEY REFERENCES products (id),
    available  BIGINT      NOT NULL CHECK (available >= 0),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    id                UUID PRIMARY KEY,
    customer_id       UUID        NOT NULL REFERENCES customers (id),
    customer_name     TEXT        NOT NULL,
    customer_email    TEXT        NOT NULL,
    status            TEXT        NOT NULL
        CHECK (status IN ('placed', 'paid', 'shipped', 'delivered', 'cancelled')),
    version           BIGINT      NOT NULL CHECK (version >= 1),
    currency          CHAR(3)     NOT NULL,
    total_minor       BIGINT      NOT NULL CHECK (total_minor >= 0),
    shipping_address  JSONB       NOT NULL,
    placed_at         TIMESTAMPTZ NOT NULL,
    delivered_at      TIMESTAMPTZ,
    cancelled_at      TIMESTAMPTZ,
    cancel_reason     TEXT,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer_idx ON orders (customer_id, placed_at DESC);

CREATE TABLE order_lines (
    order_id         UUID    NOT NULL REFERENCES orders (id),
    line_no          INTEGER NOT NULL CHECK (line_no BETWEEN 1 AND 100),
    product_id       UUID    NOT NULL REFERENCES products (id),
    sku              TEXT    NOT NULL,
    product_name     TEXT    NOT NULL,
    unit_price_minor BIGINT  NOT NULL CHECK (unit_price_minor >= 0),
    quantity         INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    line_total_minor BIGINT  NOT NULL CHECK (line_total_minor = unit_price_minor * quantity),
    PRIMARY KEY (order_id, line_no),
    CONSTRAINT order_lines_product_once UNIQUE (order_id, product_id)
);

CREATE TABLE payments (
    order_id          UUID PRIMARY KEY REFERENCES orders (id),
    amount_minor      BIGINT      NOT NULL CHECK (amount_minor >= 0),
    currency          CHAR(3)     NOT NULL,
    payment_reference TEXT,
    paid_at           TIMESTAMPTZ NOT NULL,
    refund_minor      BIGINT CHECK (refund_minor >= 0),
    refunded_at       TIMESTAMPTZ
);

CREATE TABLE shipments (
    order_id        UUID PRIMARY KEY REFERENCES orders (id),
    carrier         TEXT        NOT NULL,
    tracking_number TEXT        NOT NULL,
    shipped_at      TIMESTAMPTZ NOT NULL
);

-- A retried POST with the same Idempotency-Key gets the first response back.
-- Keys are scoped by the acting principal, so two callers cannot collide.
CREATE TABLE idempotency_keys (
    principal     TEXT        NOT NULL,
    key           TEXT        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  BYTEA       NOT NULL,
    status        SMALLINT,
    response_body BYTEA,
    location      TEXT,
    etag          TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at);
