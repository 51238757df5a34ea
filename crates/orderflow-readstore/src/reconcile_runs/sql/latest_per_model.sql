-- Each model's newest complete check, with when its run finished.
SELECT DISTINCT ON (m.model)
       m.model, m.run_id, r.started_at, r.finished_at, r.repair,
       m.checked, m.drift, m.examples, m.repaired, m.unrepaired
  FROM reconcile_run_models m
  JOIN reconcile_runs r ON r.id = m.run_id
 WHERE r.complete AND r.finished_at IS NOT NULL
 ORDER BY m.model, m.run_id DESC
