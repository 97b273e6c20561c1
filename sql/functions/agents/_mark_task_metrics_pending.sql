CREATE FUNCTION autopilot._mark_task_metrics_pending()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- @plpgsql_check_options: oldtable = old_rows, newtable = new_rows
--
-- Statement trigger on autopilot.tasks (after INSERT and UPDATE): records in
-- autopilot.performance_metrics_pending, once per transaction, the hours of agents
-- whose metrics a statement changed -- a task with an agent finishing (succeeded or failed)
-- appearing, changing, or leaving (the hours before and after an update both
-- count). Deleting rows marks nothing: the cleanups delete old tasks (never today), and the
-- metrics already computed from them stay. One set-based INSERT per statement;
-- ON CONFLICT DO NOTHING on (transaction, kind, hour) never waits on another
-- transaction.
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO autopilot.performance_metrics_pending (subject_kind, hour)
        SELECT DISTINCT 'agent'::text, date_trunc('hour', n.finished_at, 'UTC')
        FROM new_rows AS n
        WHERE n.status IN ('succeeded', 'failed') AND n.agent_id IS NOT NULL AND n.finished_at IS NOT NULL
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO autopilot.performance_metrics_pending (subject_kind, hour)
        SELECT DISTINCT 'agent'::text, date_trunc('hour', c.finished_at, 'UTC')
        FROM (
            (
                SELECT n.id, n.agent_id, n.status, n.started_at, n.finished_at AS finished_at
                FROM new_rows AS n
                WHERE n.status IN ('succeeded', 'failed') AND n.agent_id IS NOT NULL AND n.finished_at IS NOT NULL
                EXCEPT
                SELECT o.id, o.agent_id, o.status, o.started_at, o.finished_at AS finished_at
                FROM old_rows AS o
                WHERE o.status IN ('succeeded', 'failed') AND o.agent_id IS NOT NULL AND o.finished_at IS NOT NULL
            )
            UNION ALL
            (
                SELECT o.id, o.agent_id, o.status, o.started_at, o.finished_at AS finished_at
                FROM old_rows AS o
                WHERE o.status IN ('succeeded', 'failed') AND o.agent_id IS NOT NULL AND o.finished_at IS NOT NULL
                EXCEPT
                SELECT n.id, n.agent_id, n.status, n.started_at, n.finished_at AS finished_at
                FROM new_rows AS n
                WHERE n.status IN ('succeeded', 'failed') AND n.agent_id IS NOT NULL AND n.finished_at IS NOT NULL
            )
        ) AS c
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION autopilot._mark_task_metrics_pending() IS
'Private: statement trigger on autopilot.tasks; records in autopilot.performance_metrics_pending the hours (UTC) whose agent metrics a statement changed, for metrics-refresh.';

CREATE TRIGGER tasks_metrics_insert_trg
AFTER INSERT ON autopilot.tasks
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_task_metrics_pending();

CREATE TRIGGER tasks_metrics_update_trg
AFTER UPDATE ON autopilot.tasks
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_task_metrics_pending();

COMMENT ON TRIGGER tasks_metrics_insert_trg ON autopilot.tasks IS
'Tasks inserted already finished: their hour''s agent metrics are recomputed by metrics-refresh.';
COMMENT ON TRIGGER tasks_metrics_update_trg ON autopilot.tasks IS
'Tasks that finished, changed while finished (agent, times) or left a finished state: their hours are recomputed by metrics-refresh.';
