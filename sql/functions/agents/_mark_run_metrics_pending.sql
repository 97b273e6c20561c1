CREATE FUNCTION autopilot._mark_run_metrics_pending()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- @plpgsql_check_options: oldtable = old_rows, newtable = new_rows
--
-- Statement trigger on autopilot.job_runs (after INSERT and UPDATE): records in
-- autopilot.performance_metrics_pending, once per transaction, the hours of runner workers
-- whose metrics a statement changed -- a failed run of the runner (side runner, status failed)
-- appearing, changing, or leaving (the hours before and after an update both
-- count). Deleting rows marks nothing: the cleanups delete old runs, and the
-- metrics already computed from them stay. One set-based INSERT per statement;
-- ON CONFLICT DO NOTHING on (transaction, kind, hour) never waits on another
-- transaction.
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO autopilot.performance_metrics_pending (subject_kind, hour)
        SELECT DISTINCT 'worker'::text, date_trunc('hour', n.finished_at, 'UTC')
        FROM new_rows AS n
        WHERE n.side = 'runner' AND n.status = 'failed' AND n.finished_at IS NOT NULL
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO autopilot.performance_metrics_pending (subject_kind, hour)
        SELECT DISTINCT 'worker'::text, date_trunc('hour', c.finished_at, 'UTC')
        FROM (
            (
                SELECT n.id, n.job_name, n.started_at, n.finished_at AS finished_at
                FROM new_rows AS n
                WHERE n.side = 'runner' AND n.status = 'failed' AND n.finished_at IS NOT NULL
                EXCEPT
                SELECT o.id, o.job_name, o.started_at, o.finished_at AS finished_at
                FROM old_rows AS o
                WHERE o.side = 'runner' AND o.status = 'failed' AND o.finished_at IS NOT NULL
            )
            UNION ALL
            (
                SELECT o.id, o.job_name, o.started_at, o.finished_at AS finished_at
                FROM old_rows AS o
                WHERE o.side = 'runner' AND o.status = 'failed' AND o.finished_at IS NOT NULL
                EXCEPT
                SELECT n.id, n.job_name, n.started_at, n.finished_at AS finished_at
                FROM new_rows AS n
                WHERE n.side = 'runner' AND n.status = 'failed' AND n.finished_at IS NOT NULL
            )
        ) AS c
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION autopilot._mark_run_metrics_pending() IS
'Private: statement trigger on autopilot.job_runs; records in autopilot.performance_metrics_pending the hours (UTC) whose worker metrics a statement changed, for metrics-refresh.';

CREATE TRIGGER job_runs_metrics_insert_trg
AFTER INSERT ON autopilot.job_runs
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_run_metrics_pending();

CREATE TRIGGER job_runs_metrics_update_trg
AFTER UPDATE ON autopilot.job_runs
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_run_metrics_pending();

COMMENT ON TRIGGER job_runs_metrics_insert_trg ON autopilot.job_runs IS
'The runner''s failed runs: their hour''s worker metrics are recomputed by metrics-refresh.';
COMMENT ON TRIGGER job_runs_metrics_update_trg ON autopilot.job_runs IS
'Runner runs that failed, or changed since: their hours are recomputed by metrics-refresh.';
