-- Small batches: pruning never holds many row locks or one long transaction.
DELETE FROM outbox
WHERE ctid IN (
    SELECT ctid FROM outbox
    WHERE published_at IS NOT NULL
      AND published_at < now() - make_interval(secs => $1)
    LIMIT $2
)
