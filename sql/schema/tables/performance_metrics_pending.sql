-- The hours whose performance metrics are stale: written by the statement triggers on
-- autopilot.tasks, autopilot.jobs and autopilot.job_runs in the same transaction as the change,
-- consumed by metrics-refresh (autopilot.refresh_performance_metrics).
CREATE TABLE autopilot.performance_metrics_pending (
    changed_xid xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    subject_kind text NOT NULL,
    hour timestamptz NOT NULL,
    CONSTRAINT performance_metrics_pending_pkey PRIMARY KEY (changed_xid, subject_kind, hour),
    CONSTRAINT performance_metrics_pending_subject_kind_check CHECK (subject_kind IN ('agent', 'worker'))
);

COMMENT ON TABLE autopilot.performance_metrics_pending IS
'Hours whose performance metrics must be recomputed: one row per writing transaction, kind of subject and hour, added by the statement triggers on autopilot.tasks, jobs and job_runs whenever a finished task, job or failed runner run appears, changes or moves hour; metrics-refresh deletes the rows it can see and recomputes their hours from the base tables.';
COMMENT ON COLUMN autopilot.performance_metrics_pending.changed_xid IS
'The writing transaction (pg_current_xact_id()): part of the key, so that concurrent writers never wait on each other''s rows.';
COMMENT ON COLUMN autopilot.performance_metrics_pending.subject_kind IS 'agent (from autopilot.tasks) or worker (from autopilot.jobs and job_runs).';
COMMENT ON COLUMN autopilot.performance_metrics_pending.hour IS 'Start of the stale hour (UTC).';
