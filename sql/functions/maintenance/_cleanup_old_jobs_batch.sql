CREATE FUNCTION autopilot._cleanup_old_jobs_batch(p_cursor jsonb, p_limit integer)
RETURNS autopilot.job_step
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- old-job-cleanup, one batch. Phase "jobs": finished runner jobs past their
-- retention (completed and cancelled: jobs.completed_retention; discarded:
-- jobs.discarded_retention), walking jobs_finished_idx in id order; a job that a
-- waiting job depends on is kept (it holds that job, visibly). Phase
-- "job_runs": ledger runs finished before job_runs.retention, in id order,
-- stopping at the first run that started after that cutoff.
DECLARE
    v_phase text := coalesce(p_cursor ->> 'phase', 'jobs');
    v_after bigint := coalesce((p_cursor ->> 'after')::bigint, 0);
    v_completed_cutoff timestamptz := now() - autopilot.get_setting('jobs.completed_retention')::interval;
    v_discarded_cutoff timestamptz := now() - autopilot.get_setting('jobs.discarded_retention')::interval;
    v_runs_cutoff timestamptz := now() - autopilot.get_setting('job_runs.retention')::interval;
    v_ids bigint[];
    v_deleted bigint;
BEGIN
    IF v_phase = 'jobs' THEN
        v_ids := ARRAY(
            SELECT j.id FROM autopilot.jobs AS j
            WHERE j.state IN ('completed', 'discarded', 'cancelled') AND j.id > v_after
            ORDER BY j.id
            LIMIT p_limit
        );
        DELETE FROM autopilot.jobs AS j
        WHERE j.id = ANY(v_ids)
          AND CASE j.state
                  WHEN 'completed' THEN j.completed_at < v_completed_cutoff
                  WHEN 'cancelled' THEN j.cancelled_at < v_completed_cutoff
                  WHEN 'discarded' THEN j.discarded_at < v_discarded_cutoff
                  ELSE false
              END
          AND NOT EXISTS (
              SELECT FROM autopilot.jobs AS w
              WHERE w.state = 'waiting' AND w.depends_on @> ARRAY[j.id]
          );
        GET DIAGNOSTICS v_deleted = ROW_COUNT;
        IF cardinality(v_ids) < p_limit THEN
            RETURN ROW(false, jsonb_build_object('phase', 'job_runs', 'after', 0), v_deleted,
                       NULL, NULL)::autopilot.job_step;
        END IF;
        RETURN ROW(false, jsonb_build_object('phase', 'jobs', 'after', v_ids[cardinality(v_ids)]),
                   v_deleted, NULL, NULL)::autopilot.job_step;
    END IF;

    v_ids := ARRAY(
        SELECT r.id FROM autopilot.job_runs AS r
        WHERE r.id > v_after
        ORDER BY r.id
        LIMIT p_limit
    );
    DELETE FROM autopilot.job_runs AS r
    WHERE r.id = ANY(v_ids) AND r.status <> 'running' AND r.finished_at < v_runs_cutoff;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN ROW(
        -- runs start in id order: the first run started after the cutoff ends the
        -- walk (not the first run kept: a run left 'running' by a crashed session
        -- of a job that never ran again would stop every later cleanup there)
        cardinality(v_ids) < p_limit
        OR EXISTS (SELECT FROM autopilot.job_runs AS r
                   WHERE r.id = ANY(v_ids) AND r.started_at >= v_runs_cutoff),
        jsonb_build_object('phase', 'job_runs', 'after', v_ids[cardinality(v_ids)]),
        v_deleted, NULL, NULL
    )::autopilot.job_step;
END;
$$;

COMMENT ON FUNCTION autopilot._cleanup_old_jobs_batch(jsonb, integer) IS
'old-job-cleanup, one batch: deletes finished runner jobs past jobs.completed_retention / jobs.discarded_retention, then ledger runs past job_runs.retention.';
