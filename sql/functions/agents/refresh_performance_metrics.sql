CREATE FUNCTION autopilot.refresh_performance_metrics()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- metrics-refresh. Hourly (UTC) aggregates into autopilot.performance_metrics:
--
-- * per agent (subject: its id), from autopilot.tasks by finished_at: tasks
--   succeeded and failed, success rate, mean / p50 / p95 of finished_at -
--   started_at (tasks never started count, without a duration);
-- * per runner worker (subject: autopilot.jobs.worker), from autopilot.jobs:
--   completed (succeeded, by completed_at, duration completed_at -
--   attempted_at) and discarded (by discarded_at); and from autopilot.job_runs:
--   the runner's failed runs (side runner, status failed, by finished_at,
--   duration finished_at - started_at; a catalog job's run counts for the
--   catalog's worker, job_catalog.target).
--
-- Only stale hours are recomputed: the statement triggers on tasks, jobs and
-- job_runs record every hour a change touches in
-- autopilot.performance_metrics_pending, in the writer's own transaction. A
-- run deletes the rows it can see and recomputes their hours from the base
-- tables, in one transaction: every row it consumes belongs to a committed
-- transaction whose changes it therefore sees, and the rows of transactions
-- still in progress (or committed after its snapshot) stay for the next run.
-- So a late row -- a task finishing into an old hour, a finished task updated
-- after its hour was computed -- is counted as soon as it commits, whatever its
-- timestamps say, and a crash mid-run loses nothing. Runs are exclusive (the
-- job's advisory lock).
DECLARE
    v_agent_hours timestamptz[];
    v_worker_hours timestamptz[];
    v_agent_written bigint;
    v_agent_removed bigint;
    v_worker_written bigint;
    v_worker_removed bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(autopilot._job_lock_key('metrics-refresh'));

    WITH consumed AS (
        DELETE FROM autopilot.performance_metrics_pending
        RETURNING subject_kind, hour
    )

    SELECT
        coalesce(array_agg(DISTINCT c.hour ORDER BY c.hour) FILTER (WHERE c.subject_kind = 'agent'), '{}'),
        coalesce(array_agg(DISTINCT c.hour ORDER BY c.hour) FILTER (WHERE c.subject_kind = 'worker'), '{}')
    INTO v_agent_hours, v_worker_hours
    FROM consumed AS c;

    -- agents. p50 and p95 are computed once per (agent, hour): one percentile_cont over
    -- both fractions sorts the hour's durations once and reads both from that sort.
    WITH finished AS (
        SELECT
            t.agent_id,
            date_trunc('hour', t.finished_at, 'UTC') AS hour,
            t.status,
            t.finished_at - t.started_at AS duration
        FROM autopilot.tasks AS t
        WHERE t.status IN ('succeeded', 'failed')
          AND t.agent_id IS NOT NULL
          -- an index range when the stale hours are close together, a hashed
          -- membership test for the rest: linear, whatever the plan
          AND t.finished_at >= v_agent_hours[1]
          AND t.finished_at < v_agent_hours[cardinality(v_agent_hours)] + interval '1 hour'
          AND date_trunc('hour', t.finished_at, 'UTC') IN (SELECT h.hour FROM unnest(v_agent_hours) AS h (hour))
    ),

    grouped AS (
        SELECT
            f.agent_id::text AS subject,
            f.hour,
            count(*) FILTER (WHERE f.status = 'succeeded') AS succeeded,
            count(*) FILTER (WHERE f.status = 'failed') AS failed,
            avg(f.duration) AS mean_duration,
            percentile_cont(ARRAY[0.5, 0.95]::double precision []) WITHIN GROUP (ORDER BY f.duration) AS percentiles
        FROM finished AS f
        GROUP BY f.agent_id, f.hour
    ),

    fresh AS MATERIALIZED (
        SELECT
            g.subject,
            g.hour,
            g.succeeded,
            g.failed,
            g.mean_duration,
            g.percentiles[1] AS p50_duration,
            g.percentiles[2] AS p95_duration
        FROM grouped AS g
    ),

    removed AS (
        DELETE FROM autopilot.performance_metrics AS m
        WHERE m.subject_kind = 'agent'
          AND m.hour = ANY(v_agent_hours)
          AND NOT EXISTS (SELECT FROM fresh AS f WHERE f.subject = m.subject AND f.hour = m.hour)
        RETURNING 1
    ),

    written AS (
        INSERT INTO autopilot.performance_metrics AS m (
            subject_kind, subject, hour, succeeded, failed, discarded, success_rate,
            mean_duration, p50_duration, p95_duration, computed_at
        )
        SELECT
            'agent',
            f.subject,
            f.hour,
            f.succeeded,
            f.failed,
            0,
            f.succeeded::double precision / nullif(f.succeeded + f.failed, 0),
            f.mean_duration,
            f.p50_duration,
            f.p95_duration,
            now()
        FROM fresh AS f
        ON CONFLICT (subject_kind, subject, hour) DO UPDATE
        SET succeeded = excluded.succeeded,
            failed = excluded.failed,
            discarded = excluded.discarded,
            success_rate = excluded.success_rate,
            mean_duration = excluded.mean_duration,
            p50_duration = excluded.p50_duration,
            p95_duration = excluded.p95_duration,
            computed_at = excluded.computed_at
        RETURNING 1
    )

    SELECT
        (SELECT count(*) FROM written),
        (SELECT count(*) FROM removed)
    INTO v_agent_written, v_agent_removed;

    -- runner workers
    WITH outcomes AS (
        SELECT
            j.worker AS subject,
            date_trunc('hour', coalesce(j.completed_at, j.discarded_at), 'UTC') AS hour,
            CASE j.state WHEN 'completed' THEN 'succeeded' ELSE 'discarded' END AS outcome,
            CASE WHEN j.state = 'completed' THEN j.completed_at - j.attempted_at END AS duration
        FROM autopilot.jobs AS j
        WHERE j.state IN ('completed', 'discarded')
          AND coalesce(j.completed_at, j.discarded_at) >= v_worker_hours[1]
          AND coalesce(j.completed_at, j.discarded_at) < v_worker_hours[cardinality(v_worker_hours)] + interval '1 hour'
          AND date_trunc('hour', coalesce(j.completed_at, j.discarded_at), 'UTC')
          IN (SELECT h.hour FROM unnest(v_worker_hours) AS h (hour))
        UNION ALL
        SELECT
            coalesce(c.target, r.job_name) AS subject,
            date_trunc('hour', r.finished_at, 'UTC') AS hour,
            'failed' AS outcome,
            r.finished_at - r.started_at AS duration
        FROM autopilot.job_runs AS r
        LEFT JOIN autopilot.job_catalog AS c ON r.job_name = c.name AND c.side = 'runner'
        WHERE r.side = 'runner'
          AND r.status = 'failed'
          AND r.finished_at >= v_worker_hours[1]
          AND r.finished_at < v_worker_hours[cardinality(v_worker_hours)] + interval '1 hour'
          AND date_trunc('hour', r.finished_at, 'UTC') IN (SELECT h.hour FROM unnest(v_worker_hours) AS h (hour))
    ),

    grouped AS (
        SELECT
            o.subject,
            o.hour,
            count(*) FILTER (WHERE o.outcome = 'succeeded') AS succeeded,
            count(*) FILTER (WHERE o.outcome = 'failed') AS failed,
            count(*) FILTER (WHERE o.outcome = 'discarded') AS discarded,
            avg(o.duration) AS mean_duration,
            -- as for agents: one sort per (worker, hour) for both percentiles
            percentile_cont(ARRAY[0.5, 0.95]::double precision []) WITHIN GROUP (ORDER BY o.duration) AS percentiles
        FROM outcomes AS o
        GROUP BY o.subject, o.hour
    ),

    fresh AS MATERIALIZED (
        SELECT
            g.subject,
            g.hour,
            g.succeeded,
            g.failed,
            g.discarded,
            g.mean_duration,
            g.percentiles[1] AS p50_duration,
            g.percentiles[2] AS p95_duration
        FROM grouped AS g
    ),

    removed AS (
        DELETE FROM autopilot.performance_metrics AS m
        WHERE m.subject_kind = 'worker'
          AND m.hour = ANY(v_worker_hours)
          AND NOT EXISTS (SELECT FROM fresh AS f WHERE f.subject = m.subject AND f.hour = m.hour)
        RETURNING 1
    ),

    written AS (
        INSERT INTO autopilot.performance_metrics AS m (
            subject_kind, subject, hour, succeeded, failed, discarded, success_rate,
            mean_duration, p50_duration, p95_duration, computed_at
        )
        SELECT
            'worker',
            f.subject,
            f.hour,
            f.succeeded,
            f.failed,
            f.discarded,
            f.succeeded::double precision / nullif(f.succeeded + f.failed, 0),
            f.mean_duration,
            f.p50_duration,
            f.p95_duration,
            now()
        FROM fresh AS f
        ON CONFLICT (subject_kind, subject, hour) DO UPDATE
        SET succeeded = excluded.succeeded,
            failed = excluded.failed,
            discarded = excluded.discarded,
            success_rate = excluded.success_rate,
            mean_duration = excluded.mean_duration,
            p50_duration = excluded.p50_duration,
            p95_duration = excluded.p95_duration,
            computed_at = excluded.computed_at
        RETURNING 1
    )

    SELECT
        (SELECT count(*) FROM written),
        (SELECT count(*) FROM removed)
    INTO v_worker_written, v_worker_removed;

    RETURN jsonb_build_object(
        'rows_affected', v_agent_written + v_agent_removed + v_worker_written + v_worker_removed,
        'message', format(
            'recomputed %s agent %s and %s worker %s: %s metrics rows written, %s removed',
            cardinality(v_agent_hours), CASE WHEN cardinality(v_agent_hours) = 1 THEN 'hour' ELSE 'hours' END,
            cardinality(v_worker_hours), CASE WHEN cardinality(v_worker_hours) = 1 THEN 'hour' ELSE 'hours' END,
            v_agent_written + v_worker_written, v_agent_removed + v_worker_removed
        ),
        'agent_hours', cardinality(v_agent_hours),
        'worker_hours', cardinality(v_worker_hours),
        'agent_rows', v_agent_written,
        'worker_rows', v_worker_written,
        'removed', v_agent_removed + v_worker_removed,
        'oldest_hour', (SELECT min(h.hour) FROM unnest(v_agent_hours || v_worker_hours) AS h (hour)),
        'newest_hour', (SELECT max(h.hour) FROM unnest(v_agent_hours || v_worker_hours) AS h (hour))
    );
END;
$$;

COMMENT ON FUNCTION autopilot.refresh_performance_metrics() IS
'metrics-refresh: recomputes, in autopilot.performance_metrics, the hourly (UTC) aggregates of the hours changed since the last run (autopilot.performance_metrics_pending): per agent from its finished tasks (succeeded, failed, success rate, mean/p50/p95 duration), per runner worker from completed and discarded jobs and the runner''s failed runs. Late rows are counted once they commit.';
