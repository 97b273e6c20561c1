CREATE FUNCTION autopilot.enqueue(
    p_worker text,
    p_args jsonb DEFAULT '{}',
    p_queue text DEFAULT 'default',
    p_priority integer DEFAULT 0,
    p_scheduled_at timestamptz DEFAULT NULL,
    p_max_attempts integer DEFAULT 20,
    p_unique_key text DEFAULT NULL,
    p_meta jsonb DEFAULT '{}',
    p_depends_on bigint[] DEFAULT NULL
)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Adds a job to autopilot.jobs and returns its id: available now, or scheduled
-- when p_scheduled_at is in the future. Priority 0 runs first (0-9). With a
-- unique key, a job whose key is already held by an unfinished job
-- (available, scheduled, executing, retryable) is not added: the unfinished
-- job's id is returned. The dedupe is the partial unique index
-- jobs_unique_key_idx, so concurrent enqueues of one key leave one row (no
-- check-then-insert race). A runner LISTENing on autopilot_jobs hears of a job
-- available now at commit (NOTIFY here, not in a trigger on jobs: a statement
-- trigger's transition table on every one-job insert cost more than the NOTIFY).
-- With p_depends_on (ids of jobs enqueued before), the job is waiting until
-- all of those have completed (complete_many releases it).
DECLARE
    v_id bigint;
    v_queue text := coalesce(p_queue, 'default');
    v_depends_on bigint[] := nullif(p_depends_on, '{}');
    v_state text := CASE WHEN p_scheduled_at > now() THEN 'scheduled' ELSE 'available' END;
BEGIN
    IF p_worker IS NULL OR p_worker = '' THEN
        RAISE EXCEPTION 'a job needs a worker name' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- nested, not AND: a role that never names a dependency needs no EXECUTE on _dependencies_met
    -- (a function in an expression is checked when the expression starts, whatever runs of it)
    IF v_depends_on IS NOT NULL THEN
        IF NOT autopilot._dependencies_met(v_depends_on) THEN
            v_state := 'waiting';
        END IF;
    END IF;
    IF p_unique_key IS NULL THEN
        -- nothing to dedupe on: a plain insert (ON CONFLICT would make it a speculative insertion,
        -- one more lock and WAL record on the queue's hot path)
        INSERT INTO autopilot.jobs AS j (
            queue, worker, args, state, priority, max_attempts, unique_key, meta, scheduled_at, depends_on
        )
        VALUES (
            v_queue, p_worker, coalesce(p_args, '{}'), v_state,
            coalesce(p_priority, 0), coalesce(p_max_attempts, 20), NULL, coalesce(p_meta, '{}'),
            greatest(coalesce(p_scheduled_at, now()), now()), v_depends_on
        )
        RETURNING j.id INTO v_id;
    ELSE
        FOR v_try IN 1 .. 10 LOOP
            INSERT INTO autopilot.jobs AS j (
                queue, worker, args, state, priority, max_attempts, unique_key, meta, scheduled_at, depends_on
            )
            VALUES (
                v_queue, p_worker, coalesce(p_args, '{}'), v_state,
                coalesce(p_priority, 0), coalesce(p_max_attempts, 20), p_unique_key, coalesce(p_meta, '{}'),
                greatest(coalesce(p_scheduled_at, now()), now()), v_depends_on
            )
            ON CONFLICT (unique_key)
            WHERE unique_key IS NOT NULL AND state IN ('available', 'scheduled', 'executing', 'retryable', 'waiting')
            DO NOTHING
            RETURNING j.id INTO v_id;
            EXIT WHEN v_id IS NOT NULL;
            -- the key is held: that job's id, and nothing added (nothing to announce)
            SELECT j.id INTO v_id
            FROM autopilot.jobs AS j
            WHERE j.unique_key = p_unique_key
              AND j.state IN ('available', 'scheduled', 'executing', 'retryable', 'waiting');
            IF v_id IS NOT NULL THEN
                RETURN v_id;
            END IF;
            -- the holder finished between the two statements: try again
        END LOOP;
        IF v_id IS NULL THEN
            RAISE EXCEPTION 'could not enqueue % with unique key %: its holder keeps changing', p_worker, p_unique_key
            USING ERRCODE = 'serialization_failure';
        END IF;
    END IF;
    -- a job added: an idle runner hears of it at commit when it can run now
    IF v_state = 'available' THEN
        PERFORM pg_notify('autopilot_jobs', v_queue);
    END IF;
    RETURN v_id;
END;
$$;

COMMENT ON FUNCTION autopilot.enqueue(text, jsonb, text, integer, timestamptz, integer, text, jsonb, bigint[]) IS
'Adds a runner job (worker, args, queue, priority 0-9 with 0 first, run at, max attempts, unique key, meta, the jobs it waits for) and returns its id; with a unique key held by an unfinished job, returns that job''s id and adds nothing.';
