-- The batch's read, one round trip: its orders' rows, locked (a second
-- instance applying the same events during a rebalance waits, then sees them
-- as duplicates), and which of its events the inbox has already seen.
-- $1 the orders, $2 the inbox consumer (NULL: no inbox), $3 the event ids.
WITH locked AS (
    SELECT to_jsonb(s) AS summary FROM order_summary s
    WHERE order_id = ANY($1) ORDER BY order_id FOR UPDATE
)
SELECT summary, NULL::uuid AS seen FROM locked
UNION ALL
-- One primary-key probe per event id, whatever the inbox's statistics say
-- (see orderflow-projector's inbox_seen.sql).
SELECT NULL::jsonb, i.event_id
FROM unnest($3::uuid[]) AS e(id),
     LATERAL (SELECT event_id FROM inbox WHERE consumer = $2 AND event_id = e.id LIMIT 1) AS i
