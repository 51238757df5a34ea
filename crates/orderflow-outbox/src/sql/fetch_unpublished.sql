-- The oldest unpublished rows of one shard, in id order. Never "id > last
-- seen": a transaction that took a lower id may commit after higher ids were
-- published (the visibility gap), and its row must still go out.
SELECT id, event_id, event_type, schema_version, aggregate_id, aggregate_version,
       envelope::text AS envelope, traceparent, created_at
FROM outbox
WHERE published_at IS NULL
  AND ($2 = 1 OR ((hashtextextended(aggregate_id::text, 0) % $2) + $2) % $2 = $1)
ORDER BY id
LIMIT $3
