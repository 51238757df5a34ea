-- The read database. Every projector keeps its inbox and held events here,
-- whatever store its read model lives in.

-- Events a projector has processed, by id: a redelivered event is skipped.
CREATE TABLE inbox (
    consumer          TEXT        NOT NULL,
    event_id          UUID        NOT NULL,
    aggregate_id      UUID        NOT NULL,
    aggregate_version BIGINT      NOT NULL,
    processed_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX inbox_aggregate_idx ON inbox (consumer, aggregate_id, aggregate_version);

-- Events that arrived before an earlier version of their order: held until
-- the gap closes, parked (and alerted on) when it stays open too long.
CREATE TABLE held_events (
    consumer          TEXT        NOT NULL,
    event_id          UUID        NOT NULL,
    aggregate_id      UUID        NOT NULL,
    aggregate_version BIGINT      NOT NULL,
    envelope          JSONB       NOT NULL,
    reason            TEXT        NOT NULL,
    held_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts          INTEGER     NOT NULL DEFAULT 0,
    parked            BOOLEAN     NOT NULL DEFAULT false,
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX held_events_order_idx ON held_events (consumer, aggregate_id, aggregate_version);
