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
    CONSTRAINT performance_metrics_hour_check CHECK (hour = date_trunc('hour', hour))
);

CREATE INDEX performance_metrics_hour_idx ON autopilot.performance_metrics (hour);

COMMENT ON TABLE autopilot.performance_metrics IS
'Hourly performance aggregates per agent and per runner worker.';
COMMENT ON COLUMN autopilot.performance_metrics.hour IS 'Start of the hour (UTC), truncated.';
