CREATE FUNCTION autopilot._cancel_timed_out_runs()
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- A statement_timeout set inside a procedure does not arm PostgreSQL's timer
-- (only a top-level statement does), so a run pg_cron CALLs cannot time itself
-- out in the middle of a step: every scheduled run first cancels the other runs
-- past their job's timeout. The cancelled run catches the cancel and records
-- itself timed_out. Only a backend still running the run is signalled: it
-- started before the run did (not a later backend that reused the pid) and it
-- still holds the job's session lock. A run's start is never taken as earlier
-- than its backend's (a ledger row cannot make a run look older than it is),
-- and a backend the caller may not signal (another role's) is left alone.
-- pg_cron starts several jobs on the same minute, and each would cancel the
-- run again, while it records itself timed_out: the cancel is sent by the one
-- caller whose mark on the run's row (timeout_cancel_sent_at) goes through, and
-- sent again only when a minute later the run still has not stopped.
DECLARE
    v_cancelled integer := 0;
    v_id bigint;
    v_pid integer;
BEGIN
    FOR v_id, v_pid IN
        SELECT r.id, r.backend_pid
        FROM autopilot.job_runs AS r
        INNER JOIN autopilot.job_definitions AS d ON r.job_name = d.name
        INNER JOIN pg_stat_activity AS a ON r.backend_pid = a.pid
        WHERE r.status = 'running'
          AND r.side = 'database'
          AND d.kind IN ('function', 'batched')
          -- a retry's row carries the start of its run: the timeout covers every attempt
          AND coalesce((r.details ->> 'run_started_at')::timestamptz, r.started_at) + d.timeout < clock_timestamp()
          AND r.backend_pid <> pg_backend_pid()
          AND a.backend_start <= coalesce((r.details ->> 'run_started_at')::timestamptz, r.started_at)
          AND a.state = 'active'
          AND EXISTS (
              SELECT FROM pg_locks AS l
              WHERE l.pid = r.backend_pid AND l.locktype = 'advisory' AND l.granted
                AND l.database = (SELECT db.oid FROM pg_database AS db WHERE db.datname = current_database())
                AND ((l.classid::bigint << 32) | l.objid::bigint) = autopilot._job_lock_key(r.job_name)
          )
    LOOP
        BEGIN
            -- the row lock makes a second caller wait here, then find the mark
            UPDATE autopilot.job_runs AS r
            SET details = coalesce(r.details, '{}') || jsonb_build_object('timeout_cancel_sent_at', clock_timestamp())
            WHERE r.id = v_id
              AND r.status = 'running'
              AND coalesce(
                  (r.details ->> 'timeout_cancel_sent_at')::timestamptz < clock_timestamp() - interval '1 minute', true
              );
            IF FOUND AND pg_cancel_backend(v_pid) THEN
                v_cancelled := v_cancelled + 1;
            END IF;
        EXCEPTION WHEN insufficient_privilege THEN
            NULL;  -- another role's backend (the mark is undone): its own role's next run cancels it
        END;
    END LOOP;
    RETURN v_cancelled;
END;
$$;

COMMENT ON FUNCTION autopilot._cancel_timed_out_runs() IS
'Private: cancels (pg_cancel_backend) the database-side runs in other sessions that are past their job''s timeout; they record themselves timed_out. Called at the start of every scheduled run; returns how many it signalled.';
