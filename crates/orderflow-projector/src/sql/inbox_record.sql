INSERT INTO inbox (consumer, event_id, aggregate_id, aggregate_version)
SELECT $1, e.event_id, e.aggregate_id, e.aggregate_version
FROM unnest($2::uuid[], $3::uuid[], $4::bigint[]) AS e(event_id, aggregate_id, aggregate_version)
ON CONFLICT (consumer, event_id) DO NOTHING
