-- Which of a batch's events ($2) this consumer ($1) has processed: one
-- primary-key probe per event id. The plain form, `consumer = $1 AND
-- event_id = ANY($2)`, lets the planner scan every row of the consumer and
-- filter the ids instead, which it picks when its statistics say the
-- consumer has few rows: always on a fresh or young inbox, until autovacuum
-- analyses it. A prepared statement keeps that plan, so a replay slowed
-- down batch after batch as the inbox grew (150 ms for 500 ids at 50,000
-- rows, against 2 ms probed). A lateral lookup on the full key has one
-- plan; its LIMIT keeps the planner from turning it back into a join.
SELECT i.event_id
FROM unnest($2::uuid[]) AS e(id),
     LATERAL (SELECT event_id FROM inbox WHERE consumer = $1 AND event_id = e.id LIMIT 1) AS i
