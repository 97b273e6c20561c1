CREATE FUNCTION autopilot._mark_job_metrics_pending()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- @plpgsql_check_options: oldtable = old_rows, newtable = new_rows
--
-- Statement trigger on autopilot.jobs (after INSERT and UPDATE): records in
-- autopilot.performance_metrics_pending, once per transaction, the hours of runner workers
-- whose metrics a statement changed -- a completed or discarded job
-- appearing, changing, or leaving (the hours before and after an update both
-- count). Deleting rows marks nothing: the cleanups delete old jobs, and the
-- metrics already computed from them stay. One set-based INSERT per statement;
-- ON CONFLICT DO NOTHING on (transaction, kind, hour) never waits on another
-- transaction.
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO autopilot.performance_metrics_pending (subject_kind, hour)
        SELECT DISTINCT 'worker'::text, date_trunc('hour', coalesce(n.completed_at, n.discarded_at), 'UTC')
        FROM new_rows AS n
        WHERE n.state IN ('completed', 'discarded') AND coalesce(n.completed_at, n.discarded_at) IS NOT NULL
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO autopilot.performance_metrics_pending (subject_kind, hour)
        SELECT DISTINCT 'worker'::text, date_trunc('hour', c.finished_at, 'UTC')
        FROM (
            (
                SELECT n.id, n.worker, n.state, n.attempted_at, coalesce(n.completed_at, n.discarded_at) AS finished_at
                FROM new_rows AS n
                WHERE n.state IN ('completed', 'discarded') AND coalesce(n.completed_at, n.discarded_at) IS NOT NULL
                EXCEPT
                SELECT o.id, o.worker, o.state, o.attempted_at, coalesce(o.completed_at, o.discarded_at) AS finished_at
                FROM old_rows AS o
                WHERE o.state IN ('completed', 'discarded') AND coalesce(o.completed_at, o.discarded_at) IS NOT NULL
            )
            UNION ALL
            (
                SELECT o.id, o.worker, o.state, o.attempted_at, coalesce(o.completed_at, o.discarded_at) AS finished_at
                FROM old_rows AS o
                WHERE o.state IN ('completed', 'discarded') AND coalesce(o.completed_at, o.discarded_at) IS NOT NULL
                EXCEPT
                SELECT n.id, n.worker, n.state, n.attempted_at, coalesce(n.completed_at, n.discarded_at) AS finished_at
                FROM new_rows AS n
                WHERE n.state IN ('completed', 'discarded') AND coalesce(n.completed_at, n.discarded_at) IS NOT NULL
            )
        ) AS c
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION autopilot._mark_job_metrics_pending() IS
'Private: statement trigger on autopilot.jobs; records in autopilot.performance_metrics_pending the hours (UTC) whose worker metrics a statement changed, for metrics-refresh.';

CREATE TRIGGER jobs_metrics_insert_trg
AFTER INSERT ON autopilot.jobs
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_job_metrics_pending();

CREATE TRIGGER jobs_metrics_update_trg
AFTER UPDATE ON autopilot.jobs
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_job_metrics_pending();

COMMENT ON TRIGGER jobs_metrics_insert_trg ON autopilot.jobs IS
'Jobs inserted already completed or discarded: their hour''s worker metrics are recomputed by metrics-refresh.';
COMMENT ON TRIGGER jobs_metrics_update_trg ON autopilot.jobs IS
'Jobs that completed or were discarded, or changed since: their hours are recomputed by metrics-refresh.';
