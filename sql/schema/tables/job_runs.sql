CREATE TABLE autopilot.job_runs (
    id bigint GENERATED ALWAYS AS IDENTITY,
    job_name text NOT NULL,
    side text NOT NULL,
    trigger text NOT NULL,
    status text NOT NULL DEFAULT 'running',
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    rows_affected bigint,
    message text,
    error_sqlstate text,
    details jsonb NOT NULL DEFAULT '{}',
    backend_pid integer DEFAULT pg_backend_pid(),
    scheduled_for timestamptz,
    attempt smallint NOT NULL DEFAULT 1,
    cron_runid bigint,
    CONSTRAINT job_runs_pkey PRIMARY KEY (id),
    CONSTRAINT job_runs_side_check CHECK (side IN ('database', 'runner')),
    CONSTRAINT job_runs_trigger_check CHECK (trigger IN ('pg_cron', 'manual', 'runner')),
    CONSTRAINT job_runs_status_check CHECK (
        status IN ('running', 'succeeded', 'failed', 'skipped', 'abandoned', 'cancelled', 'timed_out')
    ),
    CONSTRAINT job_runs_finished_check CHECK ((status = 'running') = (finished_at IS NULL)),
    CONSTRAINT job_runs_order_check CHECK (finished_at >= started_at),
    CONSTRAINT job_runs_attempt_check CHECK (attempt >= 1)
);

-- status: the last run (and the last successful run) of each job
CREATE INDEX job_runs_job_name_started_at_idx ON autopilot.job_runs (job_name, started_at DESC);
CREATE INDEX job_runs_succeeded_idx ON autopilot.job_runs (job_name, started_at DESC)
WHERE status = 'succeeded';
-- autopilot.health: the last success of a runner job is its worker's (a job never completed by a
-- worker would otherwise read every success of its enqueueing)
CREATE INDEX job_runs_runner_succeeded_idx ON autopilot.job_runs (job_name, started_at DESC)
WHERE status = 'succeeded' AND trigger = 'runner';
-- every scheduled run looks for the runs past their timeout (autopilot._cancel_timed_out_runs):
-- the few running rows, whatever the size of the ledger
CREATE INDEX job_runs_running_idx ON autopilot.job_runs (job_name)
WHERE status = 'running';
-- a statement job's run, brought from pg_cron's history once (autopilot._record_cron_runs)
CREATE UNIQUE INDEX job_runs_cron_runid_key ON autopilot.job_runs (cron_runid)
WHERE cron_runid IS NOT NULL;
-- metrics-refresh: the runner's failed runs by the time they finished
CREATE INDEX job_runs_runner_failed_idx ON autopilot.job_runs (finished_at)
WHERE side = 'runner' AND status = 'failed';

COMMENT ON TABLE autopilot.job_runs IS
'The run ledger: one row for every run of every job, database side and runner side: when, how long, outcome, rows affected, error.';
COMMENT ON COLUMN autopilot.job_runs.trigger IS 'pg_cron (a scheduled run), manual (autopilot.run_job or the CLI), runner (an attempt of a runner job that ended: completed, failed, snoozed, cancelled or rescued).';
COMMENT ON COLUMN autopilot.job_runs.status IS
'running, succeeded, failed; skipped (database side: another run held the job''s lock; runner side: the job snoozed); abandoned (database side: the session ended mid-run, found by the next run; runner side: its runner stopped heartbeating, found by rescue-orphaned-jobs); cancelled (a runner job cancelled while executing); timed_out (database side: the run passed its job''s timeout and was cancelled, autopilot.set_job_timeout).';
COMMENT ON COLUMN autopilot.job_runs.error_sqlstate IS 'SQLSTATE of the error of a failed run.';
COMMENT ON COLUMN autopilot.job_runs.scheduled_for IS
'A pg_cron run: the tick of its schedule it was fired for (a run pg_cron queued while an earlier one overran started later than its tick). NULL for other runs.';
COMMENT ON COLUMN autopilot.job_runs.backend_pid IS 'Backend that ran the job; lets a later run tell a live run from an abandoned one.';
COMMENT ON COLUMN autopilot.job_runs.attempt IS
'Database side: the attempt of its run this row records (1, then one more row for every retry of a transient failure, autopilot.set_job_retries).';
COMMENT ON COLUMN autopilot.job_runs.cron_runid IS
'A statement job''s run that pg_cron ran itself (VACUUM cannot run in a function): its cron.job_run_details runid, from which autopilot._record_cron_runs recorded it (once). NULL for every other run.';
