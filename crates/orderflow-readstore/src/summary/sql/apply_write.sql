-- The batch's write, one round trip: the changed summaries (upsert.sql,
-- version-guarded, put in place of the marker below), the inbox rows of the
-- events applied or found applied, and the change notifications, delivered
-- on commit, in chunks of 100 orders to stay far below NOTIFY's 8 KB.
-- $1 the summaries (JSON array, sorted by order id), $2 the inbox consumer,
-- $3 event ids, $4 their orders, $5 their versions (empty: nothing to
-- record), $6 the notification channel.
WITH upserted AS (
-- upsert.sql
RETURNING 1
), recorded AS (
    INSERT INTO inbox (consumer, event_id, aggregate_id, aggregate_version)
    SELECT $2, e.event_id, e.aggregate_id, e.aggregate_version
    FROM unnest($3::uuid[], $4::uuid[], $5::bigint[]) AS e(event_id, aggregate_id, aggregate_version)
    ON CONFLICT (consumer, event_id) DO NOTHING
    RETURNING 1
), notified AS (
    SELECT pg_notify($6, string_agg(c.order_id || ':' || c.version, ',' ORDER BY c.order_id))
    FROM (
        SELECT r.order_id, r.version, (row_number() OVER (ORDER BY r.order_id) - 1) / 100 AS chunk
        FROM jsonb_to_recordset($1) AS r(order_id uuid, version bigint)
    ) c
    GROUP BY c.chunk
)
SELECT (SELECT count(*) FROM upserted), (SELECT count(*) FROM recorded), (SELECT count(*) FROM notified)
