CREATE FUNCTION autopilot._mark_metrics_pending()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Statement trigger (after INSERT and UPDATE) on autopilot.tasks, autopilot.jobs and
-- autopilot.job_runs: records in autopilot.performance_metrics_pending, once per transaction,
-- the hours whose metrics a statement changed -- a finished row appearing, changing, or
-- leaving (the hours before and after an update both count). After INSERT on autopilot.jobs it
-- is a row trigger instead, fired only for a job inserted already completed or discarded (its
-- WHEN clause, checked without calling the function): enqueueing a job, the queue's hot path,
-- calls no metrics trigger at all.
--
-- * tasks: a task with an agent that succeeded or failed, by finished_at (agent metrics);
-- * jobs: a completed or discarded job, by completed_at or discarded_at (worker metrics);
-- * job_runs: a failed run of the runner (side runner), by finished_at (worker metrics).
--
-- Deleting rows marks nothing: the cleanups delete old rows, and the metrics already
-- computed from them stay. One set-based INSERT per statement; ON CONFLICT DO NOTHING on
-- (transaction, kind, hour) never waits on another transaction.
--
-- Each table has a static branch, over transition tables named after it (new_tasks,
-- old_tasks, ...): PL/pgSQL compiles the function once per trigger and plans only the
-- statements a trigger runs, so one function costs what one per table did, where dynamic
-- SQL would be planned on every statement. tools/plpgsql_check.sql checks each branch
-- against its own table.
BEGIN
    IF TG_TABLE_NAME = 'tasks' THEN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO autopilot.performance_metrics_pending (subject_kind, hour)
            SELECT DISTINCT 'agent'::text, date_trunc('hour', n.finished_at, 'UTC')
            FROM new_tasks AS n
            WHERE n.status IN ('succeeded', 'failed') AND n.agent_id IS NOT NULL AND n.finished_at IS NOT NULL
            ON CONFLICT DO NOTHING;
        ELSE
            INSERT INTO autopilot.performance_metrics_pending (subject_kind, hour)
            SELECT DISTINCT 'agent'::text, date_trunc('hour', c.finished_at, 'UTC')
            FROM (
                (
                    SELECT n.id, n.agent_id, n.status, n.started_at, n.finished_at AS finished_at
                    FROM new_tasks AS n
                    WHERE n.status IN ('succeeded', 'failed') AND n.agent_id IS NOT NULL AND n.finished_at IS NOT NULL
                    EXCEPT
                    SELECT o.id, o.agent_id, o.status, o.started_at, o.finished_at AS finished_at
                    FROM old_tasks AS o
                    WHERE o.status IN ('succeeded', 'failed') AND o.agent_id IS NOT NULL AND o.finished_at IS NOT NULL
                )
                UNION ALL
                (
                    SELECT o.id, o.agent_id, o.status, o.started_at, o.finished_at AS finished_at
                    FROM old_tasks AS o
                    WHERE o.status IN ('succeeded', 'failed') AND o.agent_id IS NOT NULL AND o.finished_at IS NOT NULL
                    EXCEPT
                    SELECT n.id, n.agent_id, n.status, n.started_at, n.finished_at AS finished_at
                    FROM new_tasks AS n
                    WHERE n.status IN ('succeeded', 'failed') AND n.agent_id IS NOT NULL AND n.finished_at IS NOT NULL
                )
            ) AS c
            ON CONFLICT DO NOTHING;
        END IF;
    ELSIF TG_TABLE_NAME = 'jobs' THEN
        IF TG_OP = 'INSERT' THEN
            -- the row trigger jobs_metrics_insert_trg: a job inserted completed or discarded (its WHEN)
            INSERT INTO autopilot.performance_metrics_pending (subject_kind, hour)
            VALUES ('worker', date_trunc('hour', coalesce(NEW.completed_at, NEW.discarded_at), 'UTC'))
            ON CONFLICT DO NOTHING;
        ELSE
            INSERT INTO autopilot.performance_metrics_pending (subject_kind, hour)
            SELECT DISTINCT 'worker'::text, date_trunc('hour', c.finished_at, 'UTC')
            FROM (
                (
                    SELECT n.id, n.worker, n.state, n.attempted_at, coalesce(n.completed_at, n.discarded_at) AS finished_at
                    FROM new_jobs AS n
                    WHERE n.state IN ('completed', 'discarded') AND coalesce(n.completed_at, n.discarded_at) IS NOT NULL
                    EXCEPT
                    SELECT o.id, o.worker, o.state, o.attempted_at, coalesce(o.completed_at, o.discarded_at) AS finished_at
                    FROM old_jobs AS o
                    WHERE o.state IN ('completed', 'discarded') AND coalesce(o.completed_at, o.discarded_at) IS NOT NULL
                )
                UNION ALL
                (
                    SELECT o.id, o.worker, o.state, o.attempted_at, coalesce(o.completed_at, o.discarded_at) AS finished_at
                    FROM old_jobs AS o
                    WHERE o.state IN ('completed', 'discarded') AND coalesce(o.completed_at, o.discarded_at) IS NOT NULL
                    EXCEPT
                    SELECT n.id, n.worker, n.state, n.attempted_at, coalesce(n.completed_at, n.discarded_at) AS finished_at
                    FROM new_jobs AS n
                    WHERE n.state IN ('completed', 'discarded') AND coalesce(n.completed_at, n.discarded_at) IS NOT NULL
                )
            ) AS c
            ON CONFLICT DO NOTHING;
        END IF;
    ELSIF TG_TABLE_NAME = 'job_runs' THEN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO autopilot.performance_metrics_pending (subject_kind, hour)
            SELECT DISTINCT 'worker'::text, date_trunc('hour', n.finished_at, 'UTC')
            FROM new_runs AS n
            WHERE n.side = 'runner' AND n.status = 'failed' AND n.finished_at IS NOT NULL
            ON CONFLICT DO NOTHING;
        ELSE
            INSERT INTO autopilot.performance_metrics_pending (subject_kind, hour)
            SELECT DISTINCT 'worker'::text, date_trunc('hour', c.finished_at, 'UTC')
            FROM (
                (
                    SELECT n.id, n.job_name, n.started_at, n.finished_at AS finished_at
                    FROM new_runs AS n
                    WHERE n.side = 'runner' AND n.status = 'failed' AND n.finished_at IS NOT NULL
                    EXCEPT
                    SELECT o.id, o.job_name, o.started_at, o.finished_at AS finished_at
                    FROM old_runs AS o
                    WHERE o.side = 'runner' AND o.status = 'failed' AND o.finished_at IS NOT NULL
                )
                UNION ALL
                (
                    SELECT o.id, o.job_name, o.started_at, o.finished_at AS finished_at
                    FROM old_runs AS o
                    WHERE o.side = 'runner' AND o.status = 'failed' AND o.finished_at IS NOT NULL
                    EXCEPT
                    SELECT n.id, n.job_name, n.started_at, n.finished_at AS finished_at
                    FROM new_runs AS n
                    WHERE n.side = 'runner' AND n.status = 'failed' AND n.finished_at IS NOT NULL
                )
            ) AS c
            ON CONFLICT DO NOTHING;
        END IF;
    ELSE
        RAISE EXCEPTION '_mark_metrics_pending: no metrics are computed from table %.%', TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'feature_not_supported',
        HINT = 'It is the trigger function of autopilot.tasks, autopilot.jobs and autopilot.job_runs only.';
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION autopilot._mark_metrics_pending() IS
'Private: statement trigger on autopilot.tasks, autopilot.jobs and autopilot.job_runs (after INSERT on jobs, a row trigger for the jobs inserted completed or discarded); records in autopilot.performance_metrics_pending the hours (UTC) whose agent or worker metrics a statement changed, for metrics-refresh.';

CREATE TRIGGER tasks_metrics_insert_trg
AFTER INSERT ON autopilot.tasks
REFERENCING NEW TABLE AS new_tasks
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_metrics_pending();

CREATE TRIGGER tasks_metrics_update_trg
AFTER UPDATE ON autopilot.tasks
REFERENCING OLD TABLE AS old_tasks NEW TABLE AS new_tasks
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_metrics_pending();

COMMENT ON TRIGGER tasks_metrics_insert_trg ON autopilot.tasks IS
'Tasks inserted already finished: their hour''s agent metrics are recomputed by metrics-refresh.';
COMMENT ON TRIGGER tasks_metrics_update_trg ON autopilot.tasks IS
'Tasks that finished, changed while finished (agent, times) or left a finished state: their hours are recomputed by metrics-refresh.';

-- a row trigger: a job enqueued (available, scheduled, waiting) calls nothing
CREATE TRIGGER jobs_metrics_insert_trg
AFTER INSERT ON autopilot.jobs
FOR EACH ROW
WHEN (new.state IN ('completed', 'discarded') AND coalesce(new.completed_at, new.discarded_at) IS NOT NULL)
EXECUTE FUNCTION autopilot._mark_metrics_pending();

CREATE TRIGGER jobs_metrics_update_trg
AFTER UPDATE ON autopilot.jobs
REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_metrics_pending();

COMMENT ON TRIGGER jobs_metrics_insert_trg ON autopilot.jobs IS
'Jobs inserted already completed or discarded: their hour''s worker metrics are recomputed by metrics-refresh.';
COMMENT ON TRIGGER jobs_metrics_update_trg ON autopilot.jobs IS
'Jobs that completed or were discarded, or changed since: their hours are recomputed by metrics-refresh.';

CREATE TRIGGER job_runs_metrics_insert_trg
AFTER INSERT ON autopilot.job_runs
REFERENCING NEW TABLE AS new_runs
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_metrics_pending();

CREATE TRIGGER job_runs_metrics_update_trg
AFTER UPDATE ON autopilot.job_runs
REFERENCING OLD TABLE AS old_runs NEW TABLE AS new_runs
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_metrics_pending();

COMMENT ON TRIGGER job_runs_metrics_insert_trg ON autopilot.job_runs IS
'The runner''s failed runs: their hour''s worker metrics are recomputed by metrics-refresh.';
COMMENT ON TRIGGER job_runs_metrics_update_trg ON autopilot.job_runs IS
'Runner runs that failed, or changed since: their hours are recomputed by metrics-refresh.';
