-- The oldest unpublished rows of one shard, in id order (every row of
-- `outbox` is unpublished: published ones are deleted). Never "id > last
-- seen": a transaction that took a lower id may commit after higher ids were
-- published (the visibility gap), and its row must still go out. Parked rows
-- are skipped, and so is every later row of a parked row's order: one order
-- waits, the others flow. Rows already in flight ($4, the relay's window of
-- batches sent but not yet acknowledged) are left out; NOT IN over a
-- sub-select is a hashed sub-plan, one probe per row however many are in
-- flight.
SELECT id, event_id, event_type, schema_version, aggregate_id, aggregate_version,
       envelope::text AS envelope, traceparent, created_at
FROM outbox o
WHERE parked_at IS NULL
  AND o.id NOT IN (SELECT unnest($4::bigint[]))
  AND ($2 = 1 OR ((hashtextextended(aggregate_id::text, 0) % $2) + $2) % $2 = $1)
  AND NOT EXISTS (
        SELECT 1 FROM outbox p
        WHERE p.aggregate_id = o.aggregate_id
          AND p.parked_at IS NOT NULL
          AND p.id < o.id)
ORDER BY id
LIMIT $3
