-- The newest run, whatever its outcome (going, failed, stopped or done).
SELECT id, started_at, finished_at, repair, complete, orders, error
  FROM reconcile_runs
 ORDER BY id DESC
 LIMIT 1
