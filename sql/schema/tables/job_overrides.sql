CREATE TABLE autopilot.job_overrides (
    job_name text NOT NULL,
    schedule text,
    enabled boolean,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL DEFAULT current_user,
    timeout interval,
    max_attempts smallint,
    retry_backoff interval,
    CONSTRAINT job_overrides_pkey PRIMARY KEY (job_name),
    CONSTRAINT job_overrides_job_name_fkey FOREIGN KEY (job_name)
    REFERENCES autopilot.job_catalog (name) ON DELETE CASCADE,
    CONSTRAINT job_overrides_not_empty_check CHECK (
        schedule IS NOT NULL OR enabled IS NOT NULL OR timeout IS NOT NULL
        OR max_attempts IS NOT NULL OR retry_backoff IS NOT NULL
    ),
    CONSTRAINT job_overrides_timeout_check CHECK (timeout > interval '0'),
    CONSTRAINT job_overrides_max_attempts_check CHECK (max_attempts BETWEEN 1 AND 100),
    CONSTRAINT job_overrides_retry_backoff_check CHECK (retry_backoff >= interval '0')
);

COMMENT ON TABLE autopilot.job_overrides IS
'A DBA''s changes to the catalog: another schedule, enabled/disabled, another timeout or retry policy. Kept across re-syncs, upgrades and pg_dump/restore; written by autopilot.set_job_schedule(), set_job_enabled(), set_job_timeout(), set_job_retries() and reset_job().';
COMMENT ON COLUMN autopilot.job_overrides.schedule IS 'Cron expression replacing the catalog default; NULL keeps the default.';
COMMENT ON COLUMN autopilot.job_overrides.enabled IS 'false disables the job (its pg_cron entry stays, inactive); NULL keeps the default.';
COMMENT ON COLUMN autopilot.job_overrides.timeout IS 'Timeout replacing the catalog default (autopilot.set_job_timeout); NULL keeps the default.';
COMMENT ON COLUMN autopilot.job_overrides.max_attempts IS 'Attempts replacing the catalog default (autopilot.set_job_retries); NULL keeps the default.';
COMMENT ON COLUMN autopilot.job_overrides.retry_backoff IS 'First backoff replacing the catalog default (autopilot.set_job_retries); NULL keeps the default.';
