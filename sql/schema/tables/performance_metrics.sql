CREATE TABLE autopilot.performance_metrics (
    subject_kind text NOT NULL,
    subject text NOT NULL,
    hour timestamptz NOT NULL,
    succeeded bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    discarded bigint NOT NULL DEFAULT 0,
    success_rate double precision,
    mean_duration interval,
    p50_duration interval,
    p95_duration interval,
    computed_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT performance_metrics_pkey PRIMARY KEY (subject_kind, subject, hour),
    CONSTRAINT performance_metrics_subject_kind_check CHECK (subject_kind IN ('agent', 'worker')),
    CONSTRAINT performance_metrics_hour_check CHECK (hour = date_trunc('hour', hour, 'UTC'))
);

CREATE INDEX performance_metrics_hour_idx ON autopilot.performance_metrics (hour);

COMMENT ON TABLE autopilot.performance_metrics IS
'Hourly performance aggregates per agent and per runner worker.';
COMMENT ON COLUMN autopilot.performance_metrics.subject_kind IS
'agent (from autopilot.tasks) or worker (a runner worker: from autopilot.jobs and the runner''s failed runs in autopilot.job_runs).';
COMMENT ON COLUMN autopilot.performance_metrics.subject IS
'The agent''s id (as text), or the worker''s name (autopilot.jobs.worker; a runner run''s catalog job maps to its worker).';
COMMENT ON COLUMN autopilot.performance_metrics.hour IS 'Start of the hour (UTC), truncated in UTC whatever the session''s TimeZone.';
COMMENT ON COLUMN autopilot.performance_metrics.succeeded IS
'Agent: tasks that succeeded in the hour (by finished_at). Worker: jobs completed in the hour (by completed_at).';
COMMENT ON COLUMN autopilot.performance_metrics.failed IS
'Agent: tasks that failed in the hour. Worker: the runner''s failed runs (job_runs, side runner, status failed) that finished in the hour.';
COMMENT ON COLUMN autopilot.performance_metrics.discarded IS 'Worker: jobs discarded in the hour (by discarded_at). Always 0 for an agent.';
COMMENT ON COLUMN autopilot.performance_metrics.success_rate IS 'succeeded / (succeeded + failed); NULL when both are 0.';
COMMENT ON COLUMN autopilot.performance_metrics.mean_duration IS
'Mean duration of what finished in the hour: a task''s finished_at - started_at (tasks never started are left out); a completed job''s completed_at - attempted_at, a failed run''s finished_at - started_at.';
COMMENT ON COLUMN autopilot.performance_metrics.p50_duration IS 'Median of the same durations (percentile_cont(0.5)).';
COMMENT ON COLUMN autopilot.performance_metrics.p95_duration IS '95th percentile of the same durations (percentile_cont(0.95)).';
COMMENT ON COLUMN autopilot.performance_metrics.computed_at IS 'When metrics-refresh last recomputed the row.';
