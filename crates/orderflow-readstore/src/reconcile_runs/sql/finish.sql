UPDATE reconcile_runs
   SET finished_at = now(), complete = $2, orders = $3, error = $4
 WHERE id = $1
