CREATE FUNCTION autopilot.complete_many(p_ids bigint[], p_attempts integer[])
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
-- each call planned for its batch: a generic plan, not knowing the batch's size, matches every locked
-- row against the whole batch in a nested loop (500 x 500 comparisons per call)
SET plan_cache_mode = force_custom_plan
AS $$
-- Marks jobs completed -- each only while it is still executing the attempt
-- given beside it (p_ids[i] at attempt p_attempts[i]): a job cancelled, or
-- rescued and claimed again meanwhile, is left alone. Each completed job's
-- attempt is recorded in autopilot.job_runs (side runner, succeeded), with the
-- worker's summary of the attempt as its message where it left one; the jobs
-- waiting for them (depends_on) are released once all they wait for has
-- completed. Returns how many were completed. One statement for a runner's
-- whole batch.
DECLARE
    v_jobs autopilot.jobs [];
    v_messages text [];
BEGIN
    IF cardinality(p_ids) IS DISTINCT FROM cardinality(p_attempts) THEN
        RAISE EXCEPTION 'complete_many: % job ids but % attempts', cardinality(p_ids), cardinality(p_attempts)
        USING ERRCODE = 'array_subscript_error';
    END IF;
    WITH mine AS (
        -- locked in id order, as heartbeat() locks them (no deadlock between the two), through the
        -- primary key alone: bounded by the batch whatever the statistics say about how many jobs are
        -- executing (a condition on the state here would let the planner walk jobs_executing_idx and
        -- match every row against the whole batch). A locked row is its latest version: its state
        -- and attempt are checked below, against the batch's, by a hash join.
        SELECT j.id, j.attempt, j.state
        FROM autopilot.jobs AS j
        WHERE j.id = ANY(p_ids)
        ORDER BY j.id
        FOR NO KEY UPDATE OF j
    ),

    done AS (
        UPDATE autopilot.jobs AS j
        SET state = 'completed',
            completed_at = now()
        FROM mine
        INNER JOIN unnest(p_ids, p_attempts) AS u (id, attempt) ON mine.id = u.id AND mine.attempt = u.attempt
        WHERE
            j.id = mine.id
            AND mine.state = 'executing'
        RETURNING j.*
    )

    SELECT
        coalesce(array_agg(d::autopilot.jobs), '{}'),
        coalesce(array_agg(
            CASE
                -- the worker's own summary of this attempt (QueueClient.record_result), when it gave one
                WHEN (d.meta -> 'result' ->> 'attempt')::integer = d.attempt THEN d.meta -> 'result' ->> 'text'
                ELSE format('job %s (%s) completed by %s, attempt %s', d.id, d.worker, d.attempted_by, d.attempt)
            END
        ), '{}')
    INTO v_jobs, v_messages
    FROM done AS d;
    -- a new statement, so a new snapshot: it sees a waiting job whose enqueue held a lock on one of
    -- these jobs (autopilot._dependencies_met) until it committed
    PERFORM autopilot._release_dependents(ARRAY(SELECT j.id FROM unnest(v_jobs) AS j));
    RETURN autopilot._record_runner_attempts(v_jobs, 'succeeded', v_messages);
END;
$$;

COMMENT ON FUNCTION autopilot.complete_many(bigint[], integer[]) IS
'Completes the given jobs (each only while still executing the given attempt), recording each attempt in autopilot.job_runs; returns how many were completed.';
