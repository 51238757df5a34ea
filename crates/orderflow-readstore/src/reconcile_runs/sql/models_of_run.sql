SELECT model, checked, drift, examples, repaired, unrepaired
  FROM reconcile_run_models
 WHERE run_id = $1
 ORDER BY model
