-- The batch's read, one round trip: its orders' rows, locked (a second
-- instance applying the same events during a rebalance waits, then sees them
-- as duplicates), and which of its events the inbox has already seen.
-- $1 the orders, $2 the inbox consumer (NULL: no inbox), $3 the event ids.
-- The rows come column by column (orderflow_readstore::summary::SummaryRow
-- decodes them by name), not as to_jsonb(s): building and parsing a JSON
-- copy of each row was most of the read's cost. The inbox's rows fill the
-- same columns with NULLs, typed by the row type.
WITH locked AS (
    SELECT * FROM order_summary s
    WHERE order_id = ANY($1) ORDER BY order_id FOR UPDATE
)
SELECT locked.*, NULL::uuid AS seen FROM locked
UNION ALL
-- One primary-key probe per event id, whatever the inbox's statistics say
-- (see orderflow-projector's inbox_seen.sql).
SELECT (NULL::order_summary).*, i.event_id
FROM unnest($3::uuid[]) AS e(id),
     LATERAL (SELECT event_id FROM inbox WHERE consumer = $2 AND event_id = e.id LIMIT 1) AS i
