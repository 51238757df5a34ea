-- Marks rows Kafka acknowledged published: each leaves `outbox` (a delete
-- only stamps the old tuple; nothing of the ~1 KB envelope is copied) and a
-- narrow record of it, with where Kafka acknowledged it, goes into
-- `outbox_published`, in one statement and so one transaction. A row
-- already marked (by an earlier leader, say) is not found and not recorded
-- twice.
WITH acked AS (
    SELECT * FROM unnest($1::bigint[], $2::int[], $3::bigint[]) AS a(id, kafka_partition, kafka_offset)
), gone AS (
    DELETE FROM outbox o USING acked a
    WHERE o.id = a.id
    RETURNING o.id, o.event_id, o.event_type, o.aggregate_id, o.aggregate_version,
              o.created_at, o.traceparent, a.kafka_partition, a.kafka_offset
)
INSERT INTO outbox_published (id, event_id, event_type, aggregate_id, aggregate_version,
                              created_at, traceparent, published_at, kafka_partition, kafka_offset)
SELECT id, event_id, event_type, aggregate_id, aggregate_version,
       created_at, traceparent, $4, kafka_partition, kafka_offset
FROM gone
