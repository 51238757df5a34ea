-- Delete on publish (issue #14): the relay no longer rewrites an outbox row
-- to mark it published. That UPDATE copied the whole ~1.2 KB row (envelope
-- included) into a new tuple and every index, since the partial index on
-- unpublished rows changes (never a HOT update), and it was the relay's
-- bottleneck. Now a row Kafka acknowledged is deleted from `outbox` and a
-- narrow record of it (no envelope) inserted into `outbox_published`, in one
-- statement: `outbox` holds exactly the rows still to publish (or parked),
-- `outbox_published` what went out and where Kafka acknowledged it, for
-- `orderctl trace`, until retention prunes it.
CREATE TABLE outbox_published (
    -- The outbox row's id: ids grow with each order's versions.
    id                BIGINT      PRIMARY KEY,
    event_id          UUID        NOT NULL,
    event_type        TEXT        NOT NULL,
    aggregate_id      UUID        NOT NULL,
    aggregate_version BIGINT      NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    traceparent       TEXT,
    -- When Kafka acknowledged the event (the relay's clock).
    published_at      TIMESTAMPTZ NOT NULL,
    -- Where Kafka acknowledged it; NULL only for rows published before the
    -- relay recorded it (migration 0004).
    kafka_partition   INTEGER,
    kafka_offset      BIGINT
);

-- An upgraded system: what was published already moves over (rows the
-- relay is sending right now stay in `outbox` and are marked the new way).
INSERT INTO outbox_published (id, event_id, event_type, aggregate_id, aggregate_version,
                              created_at, traceparent, published_at, kafka_partition, kafka_offset)
SELECT id, event_id, event_type, aggregate_id, aggregate_version,
       created_at, traceparent, published_at, kafka_partition, kafka_offset
FROM outbox
WHERE published_at IS NOT NULL;
DELETE FROM outbox WHERE published_at IS NOT NULL;

-- Dropping the columns drops the indexes on them: outbox_unpublished_idx
-- (every row is unpublished now; the primary key serves the relay's read),
-- outbox_published_at_idx and the parked index, made again without them.
ALTER TABLE outbox
    DROP COLUMN published_at,
    DROP COLUMN kafka_partition,
    DROP COLUMN kafka_offset;
CREATE INDEX outbox_parked_idx ON outbox (aggregate_id, id) WHERE parked_at IS NOT NULL;

-- `orderctl trace` reads an order's published events; pruning finds the
-- old ones. Both keys grow with time (ids, v7 order ids), so inserts land
-- on the right edge. No index on event_id: tracing by event id finds the
-- order through the pending outbox or the projectors' inboxes first.
CREATE INDEX outbox_published_order_idx ON outbox_published (aggregate_id, id);
CREATE INDEX outbox_published_at_idx ON outbox_published (published_at);
