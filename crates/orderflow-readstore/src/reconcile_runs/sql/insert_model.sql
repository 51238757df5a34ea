INSERT INTO reconcile_run_models (run_id, model, checked, drift, examples, repaired, unrepaired)
VALUES ($1, $2, $3, $4, $5, $6, $7)
