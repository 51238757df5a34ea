-- A record of every `orderctl reconcile` run, kept beside the read models it
-- checks, so `orderctl status` and the query service's metrics can say when
-- drift was last looked for and what was found (an alert fires on it).
CREATE TABLE reconcile_runs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- NULL while the run is going (or if it died without a word).
    finished_at TIMESTAMPTZ,
    repair      BOOLEAN     NOT NULL,
    -- True when every order was compared (not stopped, not failed).
    complete    BOOLEAN     NOT NULL DEFAULT false,
    orders      BIGINT,
    error       TEXT
);

-- One row per read model a run checked.
CREATE TABLE reconcile_run_models (
    run_id     BIGINT NOT NULL REFERENCES reconcile_runs (id) ON DELETE CASCADE,
    model      TEXT   NOT NULL,
    checked    BIGINT NOT NULL,
    -- Drifted orders by kind, every kind present: {"missing": 3, "behind": 0, ...}.
    drift      JSONB  NOT NULL,
    -- A few drifted orders: [{"order_id": "...", "kind": "missing"}, ...].
    examples   JSONB  NOT NULL,
    repaired   BIGINT NOT NULL,
    unrepaired BIGINT NOT NULL,
    PRIMARY KEY (run_id, model)
);

-- The newest run per model, for `orderctl status` and the metrics.
CREATE INDEX reconcile_run_models_latest_idx ON reconcile_run_models (model, run_id DESC);
CREATE INDEX reconcile_runs_finished_idx ON reconcile_runs (finished_at);
