-- The one source of truth for every schedule. Rows come from sql/jobs/ and belong
-- to the extension version; a DBA's changes live in autopilot.job_overrides.
CREATE TABLE autopilot.job_catalog (
    name text NOT NULL,
    side text NOT NULL,
    kind text NOT NULL,
    schedule text,
    only_on_dow smallint,
    target text NOT NULL,
    queue text,
    args jsonb NOT NULL DEFAULT '{}',
    run_at_startup boolean NOT NULL DEFAULT false,
    requires_local_pg_cron boolean NOT NULL DEFAULT false,
    only_when_armed boolean NOT NULL DEFAULT false,
    description text NOT NULL,
    disabled_reason text,
    startup_order smallint,
    timeout interval NOT NULL DEFAULT '1 hour',
    max_attempts smallint NOT NULL DEFAULT 3,
    retry_backoff interval NOT NULL DEFAULT '5 seconds',
    cron_elsewhere_worker text,
    CONSTRAINT job_catalog_pkey PRIMARY KEY (name),
    CONSTRAINT job_catalog_name_format_check CHECK (
        name ~ '^[a-z][a-z0-9-]*$' AND octet_length('autopilot:' || name) <= 63
    ),
    CONSTRAINT job_catalog_side_check CHECK (side IN ('database', 'runner')),
    CONSTRAINT job_catalog_kind_check CHECK (
        (side = 'database' AND kind IN ('function', 'batched', 'statement'))
        OR (side = 'runner' AND kind = 'enqueue')
    ),
    CONSTRAINT job_catalog_dow_check CHECK (only_on_dow BETWEEN 0 AND 6),
    CONSTRAINT job_catalog_queue_check CHECK ((side = 'runner') = (queue IS NOT NULL)),
    CONSTRAINT job_catalog_scheduled_check CHECK (schedule IS NOT NULL OR run_at_startup),
    CONSTRAINT job_catalog_startup_order_check CHECK (startup_order IS NULL OR run_at_startup),
    CONSTRAINT job_catalog_startup_order_key UNIQUE (startup_order),
    CONSTRAINT job_catalog_timeout_check CHECK (timeout > interval '0'),
    CONSTRAINT job_catalog_max_attempts_check CHECK (max_attempts BETWEEN 1 AND 100),
    CONSTRAINT job_catalog_retry_backoff_check CHECK (retry_backoff >= interval '0'),
    CONSTRAINT job_catalog_cron_elsewhere_worker_check CHECK (
        cron_elsewhere_worker IS NULL OR (side = 'database' AND kind IN ('function', 'batched'))
    )
);

COMMENT ON TABLE autopilot.job_catalog IS
'Every scheduled job of autopilot, database side (pg_cron runs SQL) and runner side (pg_cron enqueues into autopilot.jobs). autopilot.sync_schedules() makes cron.job match it.';
COMMENT ON COLUMN autopilot.job_catalog.kind IS
'function: the target function does the whole job and returns a jsonb summary; batched: the target function deletes or moves one bounded batch, and a scheduled run commits between batches; statement: pg_cron runs the target statement at top level (VACUUM, REINDEX CONCURRENTLY cannot run in a function); enqueue: a runner job is enqueued into autopilot.jobs, deduplicated.';
COMMENT ON COLUMN autopilot.job_catalog.schedule IS
'Default cron expression, UTC, pg_cron 1.4 syntax; NULL for a runner job that runs only at runner startup.';
COMMENT ON COLUMN autopilot.job_catalog.only_on_dow IS
'When set (0 = Sunday), a scheduled run fires only on that UTC weekday: cron ORs day-of-month and day-of-week, so "first Sunday" is day 1-7 plus this filter.';
COMMENT ON COLUMN autopilot.job_catalog.target IS
'The function (schema-qualified name) a job runs, the top-level statement of a statement job, or the worker name of a runner job.';
COMMENT ON COLUMN autopilot.job_catalog.queue IS 'Queue of autopilot.jobs that a runner job is enqueued into.';
COMMENT ON COLUMN autopilot.job_catalog.run_at_startup IS 'The runner enqueues this job when it starts (deduplicated).';
COMMENT ON COLUMN autopilot.job_catalog.startup_order IS
'The startup jobs with an order run as a chain, in that order: each waits (autopilot.jobs.depends_on) for the one before it to complete (autopilot.enqueue_startup_jobs).';
COMMENT ON COLUMN autopilot.job_catalog.args IS 'Arguments of the runner job enqueued by a runner-side entry.';
COMMENT ON COLUMN autopilot.job_catalog.requires_local_pg_cron IS 'The job works on pg_cron''s own tables, so it runs only where pg_cron is installed.';
COMMENT ON COLUMN autopilot.job_catalog.only_when_armed IS
'pg_cron runs the job only while another job has armed it (autopilot.job_arming); otherwise its pg_cron entry stays inactive.';
COMMENT ON COLUMN autopilot.job_catalog.disabled_reason IS
'Why the job ships disabled (no worker for its target ships with this version of the runner), shown by autopilot status; NULL: enabled by default. A DBA enables it with autopilot.set_job_enabled (autopilot schedule NAME --enable).';
COMMENT ON COLUMN autopilot.job_catalog.timeout IS
'Default timeout of a run of a function or batched job (autopilot.set_job_timeout overrides it): a run past it is cancelled and recorded timed_out. Statement and runner jobs do not use it (a runner job has its worker''s timeout).';
COMMENT ON COLUMN autopilot.job_catalog.max_attempts IS
'Default attempts of a run of a function or batched job (autopilot.set_job_retries overrides it): a transient failure (serialization failure 40001, deadlock 40P01, lock not available 55P03) is retried within the run until then; any other error is not.';
COMMENT ON COLUMN autopilot.job_catalog.retry_backoff IS
'Default wait before the second attempt of a run; it doubles for every later attempt.';
COMMENT ON COLUMN autopilot.job_catalog.cron_elsewhere_worker IS
'The runner worker that does this job where pg_cron lives in another database (its tables are out of reach of SQL run here): a run there enqueues it into queue default instead of running the target, and the runner records its run. NULL: the target always runs here.';
