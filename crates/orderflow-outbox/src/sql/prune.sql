-- Small batches: pruning never holds many row locks or one long
-- transaction. Only the narrow records of published events are pruned:
-- `outbox` itself holds nothing but rows still to publish.
DELETE FROM outbox_published
WHERE id IN (
    SELECT id FROM outbox_published
    WHERE published_at < now() - make_interval(secs => $1)
    ORDER BY published_at
    LIMIT $2
)
