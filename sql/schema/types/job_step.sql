-- What one step of a job did. A function job runs in one step; a batched job
-- (a cleanup) runs a step per batch, with a COMMIT between steps under pg_cron.
CREATE TYPE autopilot.job_step AS (
    done boolean,
    cursor jsonb,
    rows_affected bigint,
    message text,
    details jsonb
);

COMMENT ON TYPE autopilot.job_step IS
'Result of one step of a job: done (no more steps), cursor (where the next batch starts), rows affected, a message and details for the run ledger.';
