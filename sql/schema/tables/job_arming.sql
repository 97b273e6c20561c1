CREATE TABLE autopilot.job_arming (
    job_name text NOT NULL,
    schedule text NOT NULL,
    command text,
    armed_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT job_arming_pkey PRIMARY KEY (job_name),
    CONSTRAINT job_arming_job_name_fkey FOREIGN KEY (job_name)
    REFERENCES autopilot.job_catalog (name) ON DELETE CASCADE
);

COMMENT ON TABLE autopilot.job_arming IS
'How a job temporarily asks pg_cron to run itself or a helper job: another schedule and, for a statement job, another statement. index-reindex arms index-reindex-step with one REINDEX at a time (it cannot run inside a function). Applied by autopilot.job_definitions and sync; removed when the work is done.';
COMMENT ON COLUMN autopilot.job_arming.command IS 'Top-level statement for a statement job; NULL keeps the job''s own command.';
