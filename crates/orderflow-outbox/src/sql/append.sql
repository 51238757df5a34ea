-- One statement for all of a command's events; WITH ORDINALITY keeps their
-- order so ids grow with aggregate_version. The envelopes come as text and
-- are stored as `json`, checked but not rebuilt (write migration 0007).
INSERT INTO outbox (event_id, event_type, schema_version, aggregate_type,
                    aggregate_id, aggregate_version, envelope, traceparent)
SELECT e.event_id, e.event_type, e.schema_version, e.aggregate_type,
       e.aggregate_id, e.aggregate_version, e.envelope::json, $8
FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::uuid[], $6::bigint[], $7::text[])
         WITH ORDINALITY AS e(event_id, event_type, schema_version, aggregate_type,
                              aggregate_id, aggregate_version, envelope, n)
ORDER BY e.n
