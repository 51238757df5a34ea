-- The transactional outbox: one row per event, written in the same
-- transaction as the state change it describes.
CREATE TABLE outbox (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id          UUID        NOT NULL UNIQUE,
    event_type        TEXT        NOT NULL,
    schema_version    INTEGER     NOT NULL,
    aggregate_type    TEXT        NOT NULL,
    aggregate_id      UUID        NOT NULL,
    aggregate_version BIGINT      NOT NULL CHECK (aggregate_version >= 1),
    envelope          JSONB       NOT NULL,
    traceparent       TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at      TIMESTAMPTZ,
    -- One event per version per aggregate: a second writer of the same
    -- version fails instead of publishing a fork.
    UNIQUE (aggregate_id, aggregate_version)
);

-- The relay scans only what is still to publish, in id order.
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
-- Pruning finds old published rows without touching the rest.
CREATE INDEX outbox_published_at_idx ON outbox (published_at) WHERE published_at IS NOT NULL;
