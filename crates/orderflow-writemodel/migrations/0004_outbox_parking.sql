-- Rows Kafka can never take (an envelope over the topic's
-- max.message.bytes, say) are parked instead of retried forever: the rest
-- of the shard keeps flowing, the order's later rows wait behind the parked
-- one (per-order order), and `orderctl outbox redrive` sends it again once
-- the cause is fixed.
ALTER TABLE outbox
    ADD COLUMN parked_at   TIMESTAMPTZ,
    ADD COLUMN park_reason TEXT,
    -- Where Kafka acknowledged the row, recorded when it is marked
    -- published: `orderctl` can point at the exact message.
    ADD COLUMN kafka_partition INTEGER,
    ADD COLUMN kafka_offset    BIGINT;

-- Parked rows still to publish, by order: the relay's fetch asks, for each
-- candidate row, whether an earlier row of its order is parked.
CREATE INDEX outbox_parked_idx ON outbox (aggregate_id, id)
    WHERE parked_at IS NOT NULL AND published_at IS NULL;
