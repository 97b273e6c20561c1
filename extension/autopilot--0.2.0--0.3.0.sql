-- autopilot 0.2.0 -> 0.3.0: the runner's queue in SQL (enqueue, claim, complete, fail, snooze,
-- cancel, retry, heartbeat, release, rescue-orphaned-jobs), NOTIFY on enqueue, every finished
-- runner job in job_runs, and the settings of the backups. The functions are the same SQL as the fresh 0.3.0
-- script's.
\echo Use "ALTER EXTENSION autopilot UPDATE TO '0.3.0'" (or "autopilot upgrade") to load this file. \quit

CREATE OR REPLACE FUNCTION autopilot.version()
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '0.3.0'::text $$;

-- job_runs: a runner attempt interrupted by cancel() is recorded as cancelled
ALTER TABLE autopilot.job_runs DROP CONSTRAINT job_runs_status_check;
ALTER TABLE autopilot.job_runs ADD CONSTRAINT job_runs_status_check CHECK (
    status IN ('running', 'succeeded', 'failed', 'skipped', 'abandoned', 'cancelled')
);

-- the columns' meaning in the runner's queue (the same comments as a fresh 0.3.0 install)
COMMENT ON COLUMN autopilot.job_runs.trigger IS 'pg_cron (a scheduled run), manual (autopilot.run_job or the CLI), runner (an attempt of a runner job that ended: completed, failed, snoozed, cancelled or rescued).';
COMMENT ON COLUMN autopilot.job_runs.status IS
'running, succeeded, failed; skipped (database side: another run held the job''s lock; runner side: the job snoozed); abandoned (database side: the session ended mid-run, found by the next run; runner side: its runner stopped heartbeating, found by rescue-orphaned-jobs); cancelled (a runner job cancelled while executing).';
COMMENT ON COLUMN autopilot.jobs.errors IS 'The error of each failed attempt, oldest first: [{"attempt", "at", "error", "node"}] (node: the runner that ran it).';
COMMENT ON COLUMN autopilot.jobs.priority IS '0 (runs first) to 9: claim() takes due jobs by priority, then by scheduled_at.';
COMMENT ON COLUMN autopilot.jobs.attempt IS
'How many times the job has been claimed; never goes back down, so (id, attempt) names one attempt. snooze() and release() raise max_attempts instead, so that those claims are not used up.';
COMMENT ON COLUMN autopilot.jobs.attempted_by IS 'The node name of the runner that claimed the job last (hostname:pid by default).';
COMMENT ON COLUMN autopilot.jobs.heartbeat_at IS
'The last heartbeat of the runner executing the job; rescue-orphaned-jobs takes back a job without one for jobs.rescue_after.';

-- rescue-orphaned-jobs: executing jobs by their last heartbeat
CREATE INDEX jobs_executing_idx ON autopilot.jobs (heartbeat_at)
WHERE state = 'executing';

-- functions (sql/manifest.txt order), the jobs triggers with them

-- sql/functions/queue/_notify_jobs_available.sql
CREATE FUNCTION autopilot._notify_jobs_available()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- @plpgsql_check_options: newtable = new_rows
--
-- Statement trigger on autopilot.jobs (after INSERT and UPDATE): one
-- NOTIFY autopilot_jobs per queue in which the statement made a job ready to
-- run now (inserted, retried or rescued), payload the queue's name, so that an
-- idle runner LISTENing starts it at once instead of at its next poll. Delivered
-- at commit; PostgreSQL folds identical notifications of one transaction. Jobs
-- due later are found by the runners' polling.
BEGIN
    PERFORM pg_notify('autopilot_jobs', q.queue)
    FROM (
        SELECT DISTINCT n.queue
        FROM new_rows AS n
        WHERE n.state IN ('available', 'scheduled', 'retryable') AND n.scheduled_at <= now()
    ) AS q;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION autopilot._notify_jobs_available() IS
'Private: statement trigger on autopilot.jobs; NOTIFY autopilot_jobs (payload: the queue) for each queue in which a statement made a job ready to run now.';

CREATE TRIGGER jobs_notify_insert_trg
AFTER INSERT ON autopilot.jobs
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._notify_jobs_available();

CREATE TRIGGER jobs_notify_update_trg
AFTER UPDATE ON autopilot.jobs
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._notify_jobs_available();

COMMENT ON TRIGGER jobs_notify_insert_trg ON autopilot.jobs IS
'New jobs ready now: NOTIFY autopilot_jobs with their queue.';
COMMENT ON TRIGGER jobs_notify_update_trg ON autopilot.jobs IS
'Jobs retried or rescued, ready now: NOTIFY autopilot_jobs with their queue.';

-- sql/functions/queue/enqueue.sql
CREATE FUNCTION autopilot.enqueue(
    p_worker text,
    p_args jsonb DEFAULT '{}',
    p_queue text DEFAULT 'default',
    p_priority integer DEFAULT 0,
    p_scheduled_at timestamptz DEFAULT NULL,
    p_max_attempts integer DEFAULT 20,
    p_unique_key text DEFAULT NULL,
    p_meta jsonb DEFAULT '{}'
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
-- available now at commit.
DECLARE
    v_id bigint;
BEGIN
    IF p_worker IS NULL OR p_worker = '' THEN
        RAISE EXCEPTION 'a job needs a worker name' USING ERRCODE = '22023';
    END IF;
    FOR v_try IN 1 .. 10 LOOP
        INSERT INTO autopilot.jobs AS j (
            queue, worker, args, state, priority, max_attempts, unique_key, meta, scheduled_at
        )
        VALUES (
            coalesce(p_queue, 'default'), p_worker, coalesce(p_args, '{}'),
            CASE WHEN p_scheduled_at > now() THEN 'scheduled' ELSE 'available' END,
            coalesce(p_priority, 0), coalesce(p_max_attempts, 20), p_unique_key, coalesce(p_meta, '{}'),
            greatest(coalesce(p_scheduled_at, now()), now())
        )
        ON CONFLICT (unique_key)
        WHERE unique_key IS NOT NULL AND state IN ('available', 'scheduled', 'executing', 'retryable')
        DO NOTHING
        RETURNING j.id INTO v_id;
        IF v_id IS NOT NULL THEN
            RETURN v_id;
        END IF;
        SELECT j.id INTO v_id
        FROM autopilot.jobs AS j
        WHERE j.unique_key = p_unique_key
          AND j.state IN ('available', 'scheduled', 'executing', 'retryable');
        IF v_id IS NOT NULL THEN
            RETURN v_id;
        END IF;
        -- the holder finished between the two statements: try again
    END LOOP;
    RAISE EXCEPTION 'could not enqueue % with unique key %: its holder keeps changing', p_worker, p_unique_key
    USING ERRCODE = '40001';
END;
$$;

COMMENT ON FUNCTION autopilot.enqueue(text, jsonb, text, integer, timestamptz, integer, text, jsonb) IS
'Adds a runner job (worker, args, queue, priority 0-9 with 0 first, run at, max attempts, unique key, meta) and returns its id; with a unique key held by an unfinished job, returns that job''s id and adds nothing.';

-- sql/functions/queue/enqueue_many.sql
CREATE FUNCTION autopilot.enqueue_many(p_jobs jsonb)
RETURNS SETOF bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Adds many jobs in one statement: p_jobs is a JSON array of objects with the
-- keys of autopilot.enqueue() -- worker (required), args, queue, priority,
-- scheduled_at, max_attempts, unique_key, meta. Returns the ids of the jobs
-- added; a job whose unique key is held by an unfinished job is skipped.
BEGIN
    IF jsonb_typeof(p_jobs) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'enqueue_many takes a JSON array of jobs, not %', coalesce(jsonb_typeof(p_jobs), 'NULL')
        USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    INSERT INTO autopilot.jobs AS j (
        queue, worker, args, state, priority, max_attempts, unique_key, meta, scheduled_at
    )
    SELECT
        coalesce(x.queue, 'default'),
        x.worker,
        coalesce(x.args, '{}'),
        CASE WHEN x.scheduled_at > now() THEN 'scheduled' ELSE 'available' END,
        coalesce(x.priority, 0),
        coalesce(x.max_attempts, 20),
        x.unique_key,
        coalesce(x.meta, '{}'),
        greatest(coalesce(x.scheduled_at, now()), now())
    FROM jsonb_to_recordset(p_jobs) AS x (
        worker text, args jsonb, queue text, priority smallint, scheduled_at timestamptz,
        max_attempts integer, unique_key text, meta jsonb
    )
    ON CONFLICT (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('available', 'scheduled', 'executing', 'retryable')
    DO NOTHING
    RETURNING j.id;
END;
$$;

COMMENT ON FUNCTION autopilot.enqueue_many(jsonb) IS
'Adds the jobs of a JSON array (each an object with enqueue()''s keys; worker required) in one statement; returns the ids added (jobs whose unique key is held by an unfinished job are skipped).';

-- sql/functions/queue/claim.sql
CREATE FUNCTION autopilot.claim(p_queue text, p_node text, p_limit integer DEFAULT 1)
RETURNS SETOF autopilot.jobs
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Takes up to p_limit jobs of queue p_queue that are due (available, or
-- scheduled / retryable with scheduled_at reached), priority first (0 before
-- 9), then oldest, and marks them executing by p_node: attempt + 1,
-- attempted_at, heartbeat_at. Returns them in that order. FOR UPDATE SKIP
-- LOCKED: concurrent claimers never wait for each other and never take the
-- same job. The runner must then heartbeat() them, and finish each with
-- complete(), fail(), snooze() -- or rescue_orphaned_jobs() takes them back
-- once the heartbeats stop.
DECLARE
    v_ids bigint [] := ARRAY[]::bigint [];
BEGIN
    IF p_node IS NULL OR p_node = '' THEN
        RAISE EXCEPTION 'claim needs the claiming runner''s node name' USING ERRCODE = '22023';
    END IF;
    IF coalesce(p_limit, 0) <= 0 THEN
        RETURN;
    END IF;
    -- One priority at a time (jobs_priority_check: 0-9), each a range scan of jobs_claim_idx
    -- over (queue, priority, scheduled_at <= now()) that reads due jobs only: over the whole
    -- queue at once, the scan would also read every job scheduled for later (or backing off)
    -- whenever fewer than p_limit are due -- each idle poll. The ids are collected into an
    -- array, each batch once (a subquery the planner could rescan would skip the rows it
    -- locked the first time and lock others), and the update finds them by primary key.
    FOR v_priority IN 0 .. 9 LOOP
        EXIT WHEN cardinality(v_ids) >= p_limit;
        v_ids := v_ids || ARRAY(
            SELECT c.id
            FROM autopilot.jobs AS c
            WHERE c.queue = p_queue
              AND c.priority = v_priority
              AND c.state IN ('available', 'scheduled', 'retryable')
              AND c.scheduled_at <= now()
            ORDER BY c.scheduled_at, c.id
            LIMIT p_limit - cardinality(v_ids)
            FOR UPDATE SKIP LOCKED
        );
    END LOOP;
    IF cardinality(v_ids) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH claimed AS (
        UPDATE autopilot.jobs AS j
        SET state = 'executing',
            attempt = j.attempt + 1,
            attempted_at = now(),
            attempted_by = p_node,
            heartbeat_at = now()
        WHERE j.id = ANY(v_ids)
        RETURNING j.*
    )

    SELECT * FROM claimed AS c
    ORDER BY c.priority, c.scheduled_at, c.id;
END;
$$;

COMMENT ON FUNCTION autopilot.claim(text, text, integer) IS
'Claims up to p_limit due jobs of a queue for runner node p_node (priority, then age; FOR UPDATE SKIP LOCKED) and returns them in that order, now executing with their attempt counted.';

-- sql/functions/queue/_record_runner_attempts.sql
CREATE FUNCTION autopilot._record_runner_attempts(p_jobs autopilot.jobs[], p_status text, p_messages text[])
RETURNS bigint
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    -- How an ended runner attempt lands in the ledger, whoever ends it (complete, fail, snooze,
    -- cancel, rescue): one job_runs row per job of p_jobs (as the job stands after the change),
    -- named after its catalog entry or else its worker, with p_messages[i] for p_jobs[i].
    WITH recorded AS (
        INSERT INTO autopilot.job_runs (
            job_name, side, trigger, status, started_at, finished_at, message, details, backend_pid
        )
        SELECT
            coalesce(j.meta ->> 'catalog', j.worker),
            'runner',
            'runner',
            p_status,
            j.attempted_at,
            greatest(clock_timestamp(), j.attempted_at),
            p_messages[j.ordinality],
            jsonb_build_object(
                'job_id', j.id, 'worker', j.worker, 'queue', j.queue, 'attempt', j.attempt,
                'node', j.attempted_by, 'state', j.state
            ),
            NULL
        FROM unnest(p_jobs) WITH ORDINALITY AS j
        RETURNING 1
    )

    SELECT count(*) FROM recorded
$$;

COMMENT ON FUNCTION autopilot._record_runner_attempts(autopilot.jobs[], text, text[]) IS
'Private: records ended runner attempts in autopilot.job_runs (side runner), one row per job with its message; returns how many.';

-- sql/functions/queue/complete_many.sql
CREATE FUNCTION autopilot.complete_many(p_ids bigint[], p_attempts integer[])
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Marks jobs completed -- each only while it is still executing the attempt
-- given beside it (p_ids[i] at attempt p_attempts[i]): a job cancelled, or
-- rescued and claimed again meanwhile, is left alone. Each completed job's
-- attempt is recorded in autopilot.job_runs (side runner, succeeded). Returns
-- how many were completed. One statement for a runner's whole batch.
DECLARE
    v_jobs autopilot.jobs [];
    v_messages text [];
BEGIN
    IF cardinality(p_ids) IS DISTINCT FROM cardinality(p_attempts) THEN
        RAISE EXCEPTION 'complete_many: % job ids but % attempts', cardinality(p_ids), cardinality(p_attempts)
        USING ERRCODE = '2202E';
    END IF;
    WITH done AS (
        UPDATE autopilot.jobs AS j
        SET state = 'completed',
            completed_at = now()
        -- by primary key, then the attempt: bounded by the batch, whatever the statistics say
        -- about how many jobs are executing
        WHERE j.id = ANY(p_ids)
          AND j.state = 'executing'
          AND (j.id, j.attempt) IN (SELECT u.id, u.attempt FROM unnest(p_ids, p_attempts) AS u (id, attempt))
        RETURNING j.*
    )

    SELECT
        coalesce(array_agg(d::autopilot.jobs), '{}'),
        coalesce(array_agg(
            format('job %s (%s) completed by %s, attempt %s', d.id, d.worker, d.attempted_by, d.attempt)
        ), '{}')
    INTO v_jobs, v_messages
    FROM done AS d;
    RETURN autopilot._record_runner_attempts(v_jobs, 'succeeded', v_messages);
END;
$$;

COMMENT ON FUNCTION autopilot.complete_many(bigint[], integer[]) IS
'Completes the given jobs (each only while still executing the given attempt), recording each attempt in autopilot.job_runs; returns how many were completed.';

-- sql/functions/queue/complete.sql
CREATE FUNCTION autopilot.complete(p_id bigint, p_attempt integer)
RETURNS boolean
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    -- one job: complete_many() of one
    SELECT autopilot.complete_many(ARRAY[p_id], ARRAY[p_attempt]) = 1
$$;

COMMENT ON FUNCTION autopilot.complete(bigint, integer) IS
'Completes one job while it is still executing the given attempt (recorded in autopilot.job_runs); false when it no longer is (cancelled, or rescued and claimed again).';

-- sql/functions/queue/fail.sql
CREATE FUNCTION autopilot.fail(p_id bigint, p_attempt integer, p_error text, p_discard boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Records a failed attempt of an executing job: the error is appended to
-- jobs.errors ({"attempt", "at", "error"}) and the attempt to job_runs (side
-- runner, failed). The job is then retryable, due after an exponential
-- backoff with jitter -- jobs.backoff_base * 2^(attempt - 1), at most
-- jobs.backoff_max, times a random factor in [0.8, 1.0], so never longer than
-- jobs.backoff_max and still spread out at that cap -- or discarded when
-- it has used max_attempts, or when p_discard says retrying cannot help (a
-- worker this runner does not have). Returns the new state, or NULL when the
-- job is no longer executing that attempt (cancelled, or rescued and claimed
-- again) and nothing was changed.
DECLARE
    -- in seconds, as double precision: 2^(attempt - 1) of a long base overflows an interval
    v_base double precision := date_part('epoch', autopilot.get_setting('jobs.backoff_base')::interval);
    v_max double precision := date_part('epoch', autopilot.get_setting('jobs.backoff_max')::interval);
    v_job autopilot.jobs;
    v_error text := coalesce(nullif(p_error, ''), 'failed without a message');
BEGIN
    UPDATE autopilot.jobs AS j
    SET state = CASE WHEN p_discard OR j.attempt >= j.max_attempts THEN 'discarded' ELSE 'retryable' END,
        discarded_at = CASE WHEN p_discard OR j.attempt >= j.max_attempts THEN now() END,
        scheduled_at = CASE
            WHEN p_discard OR j.attempt >= j.max_attempts THEN j.scheduled_at
            ELSE now() + make_interval(
                secs => least(v_base * power(2::double precision, least(j.attempt - 1, 60)), v_max)
                * (0.8 + random() * 0.2)
            )
        END,
        errors = j.errors || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempt, 'at', now(), 'error', v_error, 'node', j.attempted_by
        ))
    WHERE j.id = p_id AND j.attempt = p_attempt AND j.state = 'executing'
    RETURNING j.* INTO v_job;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;

    PERFORM autopilot._record_runner_attempts(
        ARRAY[v_job], 'failed',
        ARRAY[format(
            'job %s (%s), attempt %s of %s: %s%s', v_job.id, v_job.worker, v_job.attempt, v_job.max_attempts,
            v_error,
            CASE WHEN v_job.state = 'discarded' THEN ' (discarded)'
                ELSE format(' (retrying at %s)', v_job.scheduled_at) END
        )]
    );
    RETURN v_job.state;
END;
$$;

COMMENT ON FUNCTION autopilot.fail(bigint, integer, text, boolean) IS
'Records a failed attempt (error kept in jobs.errors and job_runs); the job becomes retryable after exponential backoff with jitter (settings jobs.backoff_base, jobs.backoff_max), or discarded past max_attempts or when p_discard; returns the new state, NULL if the job no longer runs that attempt.';

-- sql/functions/queue/snooze.sql
CREATE FUNCTION autopilot.snooze(p_id bigint, p_attempt integer, p_for interval)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- An executing job asks to run again later without using up an attempt: it
-- is scheduled p_for from now and max_attempts grows by one (as in Oban).
-- The attempt number itself never goes back down: a later claim is a new
-- attempt, so a complete() or fail() still holding this one can never match
-- it. The attempt is recorded in job_runs as skipped. False when the job no
-- longer executes that attempt.
DECLARE
    v_job autopilot.jobs;
BEGIN
    IF p_for IS NULL OR p_for < interval '0' THEN
        RAISE EXCEPTION 'snooze needs a delay of zero or more, not %', p_for USING ERRCODE = '22023';
    END IF;
    UPDATE autopilot.jobs AS j
    SET state = 'scheduled',
        scheduled_at = now() + p_for,
        max_attempts = j.max_attempts + 1
    WHERE j.id = p_id AND j.attempt = p_attempt AND j.state = 'executing'
    RETURNING j.* INTO v_job;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM autopilot._record_runner_attempts(
        ARRAY[v_job], 'skipped',
        ARRAY[format('job %s (%s) snoozed until %s', v_job.id, v_job.worker, v_job.scheduled_at)]
    );
    RETURN true;
END;
$$;

COMMENT ON FUNCTION autopilot.snooze(bigint, integer, interval) IS
'Reschedules an executing job p_for from now without using up an attempt (max_attempts + 1; recorded in job_runs as skipped); false when it no longer executes that attempt.';

-- sql/functions/queue/cancel.sql
CREATE FUNCTION autopilot.cancel(p_id bigint, p_reason text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Cancels an unfinished job (available, scheduled, retryable or executing).
-- A job executing is cancelled in the table at once; its runner learns it at
-- its next heartbeat (heartbeat() no longer returns the job) and its
-- complete() or fail() then change nothing. The interrupted attempt is
-- recorded in job_runs as cancelled. False when the job is finished already or
-- does not exist.
DECLARE
    v_job autopilot.jobs;
    v_was text;
BEGIN
    SELECT j.state INTO v_was FROM autopilot.jobs AS j WHERE j.id = p_id FOR UPDATE;
    UPDATE autopilot.jobs AS j
    SET state = 'cancelled',
        cancelled_at = now(),
        errors = CASE WHEN p_reason IS NULL THEN j.errors ELSE j.errors || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempt, 'at', now(), 'error', 'cancelled: ' || p_reason
        )) END
    WHERE j.id = p_id AND j.state IN ('available', 'scheduled', 'retryable', 'executing')
    RETURNING j.* INTO v_job;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF v_was = 'executing' THEN
        PERFORM autopilot._record_runner_attempts(
            ARRAY[v_job], 'cancelled',
            ARRAY[format(
                'job %s (%s) cancelled while executing on %s%s', v_job.id, v_job.worker, v_job.attempted_by,
                coalesce(': ' || p_reason, '')
            )]
        );
    END IF;
    RETURN true;
END;
$$;

COMMENT ON FUNCTION autopilot.cancel(bigint, text) IS
'Cancels an unfinished job (an executing one too: its runner finds out at its next heartbeat); false when the job is already finished or unknown.';

-- sql/functions/queue/retry.sql
CREATE FUNCTION autopilot.retry(p_id bigint)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Makes a job that is not executing available now: a discarded, cancelled or
-- completed job runs again (given one more attempt when it had used them
-- all), a retryable or scheduled one runs at once. Its errors are kept. False
-- when the job is executing, already available, or unknown. A job whose unique key has meanwhile
-- been taken by another unfinished job cannot run again beside it:
-- unique_violation, naming that job.
DECLARE
    v_holder bigint;
BEGIN
    UPDATE autopilot.jobs AS j
    SET state = 'available',
        scheduled_at = now(),
        max_attempts = greatest(j.max_attempts, j.attempt + 1),
        completed_at = NULL,
        cancelled_at = NULL,
        discarded_at = NULL
    WHERE j.id = p_id AND j.state IN ('scheduled', 'retryable', 'discarded', 'cancelled', 'completed');
    RETURN FOUND;
EXCEPTION
    WHEN unique_violation THEN
        SELECT h.id INTO v_holder
        FROM autopilot.jobs AS h
        WHERE h.unique_key = (SELECT j.unique_key FROM autopilot.jobs AS j WHERE j.id = p_id)
          AND h.state IN ('available', 'scheduled', 'executing', 'retryable');
        RAISE EXCEPTION 'job % cannot run again: %', p_id,
            CASE
                WHEN v_holder IS NULL THEN 'another job held its unique key a moment ago'
                ELSE format('job %s holds its unique key and is unfinished', v_holder)
            END
        USING ERRCODE = '23505', HINT = 'Wait for that job to finish, or cancel it; then retry.';
END;
$$;

COMMENT ON FUNCTION autopilot.retry(bigint) IS
'Makes a job that is not executing (scheduled, retryable, discarded, cancelled, completed) available now, with one more attempt if it had used them all; false when executing, already available, or unknown.';

-- sql/functions/queue/heartbeat.sql
CREATE FUNCTION autopilot.heartbeat(p_ids bigint[], p_attempts integer[], p_node text)
RETURNS SETOF bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- A runner's heartbeat for the jobs it is executing (p_ids[i] at attempt
-- p_attempts[i]): refreshes heartbeat_at of each job still executing that
-- attempt on p_node and returns their ids. A job missing from the result was
-- cancelled, or rescued after a heartbeat came too late -- even if this node
-- has claimed it again since, as a later attempt: stop the attempt, its
-- completion would change nothing.
BEGIN
    IF cardinality(p_ids) IS DISTINCT FROM cardinality(p_attempts) THEN
        RAISE EXCEPTION 'heartbeat: % job ids but % attempts', cardinality(p_ids), cardinality(p_attempts)
        USING ERRCODE = '2202E';
    END IF;
    RETURN QUERY
    UPDATE autopilot.jobs AS j
    SET heartbeat_at = now()
    -- by primary key, then the attempt, as complete_many
    WHERE j.id = ANY(p_ids)
      AND j.state = 'executing'
      AND j.attempted_by = p_node
      AND (j.id, j.attempt) IN (SELECT u.id, u.attempt FROM unnest(p_ids, p_attempts) AS u (id, attempt))
    RETURNING j.id;
END;
$$;

COMMENT ON FUNCTION autopilot.heartbeat(bigint[], integer[], text) IS
'Refreshes heartbeat_at of the jobs runner node p_node is executing, each at the attempt given beside it, and returns the ids still its own (a missing id was cancelled or rescued, perhaps claimed again as a later attempt).';

-- sql/functions/queue/release.sql
CREATE FUNCTION autopilot.release(p_ids bigint[], p_attempts integer[])
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Gives back jobs a runner claimed but never started (it claims a few ahead
-- of its free slots, and is stopping): each, while still executing the given
-- attempt, is available again at once, and max_attempts grows by one so that
-- the attempt is not used up. The attempt number never goes back down: the
-- next claim is a new attempt, which a repeated release() (a retry after a
-- lost reply) or a stale complete() cannot touch. Nothing goes to job_runs:
-- no attempt ran. Returns how many were released.
DECLARE
    v_count bigint;
BEGIN
    IF cardinality(p_ids) IS DISTINCT FROM cardinality(p_attempts) THEN
        RAISE EXCEPTION 'release: % job ids but % attempts', cardinality(p_ids), cardinality(p_attempts)
        USING ERRCODE = '2202E';
    END IF;
    UPDATE autopilot.jobs AS j
    SET state = 'available',
        max_attempts = j.max_attempts + 1,
        scheduled_at = least(j.scheduled_at, now())
    WHERE j.id = ANY(p_ids)
      AND j.state = 'executing'
      AND (j.id, j.attempt) IN (SELECT u.id, u.attempt FROM unnest(p_ids, p_attempts) AS u (id, attempt));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;

COMMENT ON FUNCTION autopilot.release(bigint[], integer[]) IS
'Gives back claimed jobs that never started (each while still executing the given attempt): available at once, the attempt not used up (max_attempts + 1), nothing in job_runs; returns how many.';

-- sql/functions/queue/rescue_orphaned_jobs.sql
CREATE FUNCTION autopilot.rescue_orphaned_jobs()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- rescue-orphaned-jobs. A job executing whose runner has not heartbeaten for
-- jobs.rescue_after (killed, its host gone, its connection lost) is taken
-- back: retryable at once, or discarded when it has used max_attempts. The
-- reason is appended to jobs.errors and the lost attempt recorded in job_runs
-- as abandoned. SKIP LOCKED: a job a runner is finishing right now is left for
-- the next run. A runner that comes back too late finds (heartbeat) that the
-- job is no longer its own, and its completion changes nothing.
DECLARE
    v_after interval := autopilot.get_setting('jobs.rescue_after')::interval;
    v_ids bigint [];
    v_jobs autopilot.jobs [];
    v_messages text [];
    v_retried bigint;
    v_discarded bigint;
BEGIN
    -- The ids are picked once into an array, then the update finds them by primary key
    -- (as claim does): whatever the statistics say about how many jobs are executing, the
    -- plan stays bounded by the orphans. claim() always sets heartbeat_at, so the scan is a
    -- range of jobs_executing_idx; attempted_at is the fallback for a row without one.
    v_ids := ARRAY(
        SELECT o.id
        FROM autopilot.jobs AS o
        WHERE o.state = 'executing'
          AND (
              o.heartbeat_at < now() - v_after
              OR (o.heartbeat_at IS NULL AND o.attempted_at < now() - v_after)
          )
        FOR UPDATE SKIP LOCKED
    );
    WITH rescued AS (
        UPDATE autopilot.jobs AS j
        SET state = CASE WHEN j.attempt >= j.max_attempts THEN 'discarded' ELSE 'retryable' END,
            discarded_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END,
            scheduled_at = CASE WHEN j.attempt >= j.max_attempts THEN j.scheduled_at ELSE now() END,
            errors = j.errors || jsonb_build_array(jsonb_build_object(
                'attempt', j.attempt, 'at', now(), 'node', j.attempted_by,
                'error', format(
                    'orphaned: runner %s stopped heartbeating (last at %s)', j.attempted_by,
                    coalesce(j.heartbeat_at, j.attempted_at)
                )
            ))
        WHERE j.id = ANY(v_ids)
        RETURNING j.*
    )

    SELECT
        coalesce(array_agg(r::autopilot.jobs), '{}'),
        coalesce(array_agg(format(
            'job %s (%s), attempt %s: runner %s stopped heartbeating; %s', r.id, r.worker, r.attempt,
            r.attempted_by, CASE WHEN r.state = 'discarded' THEN 'discarded' ELSE 'retrying now' END
        )), '{}'),
        count(*) FILTER (WHERE r.state = 'retryable'),
        count(*) FILTER (WHERE r.state = 'discarded')
    INTO v_jobs, v_messages, v_retried, v_discarded
    FROM rescued AS r;
    PERFORM autopilot._record_runner_attempts(v_jobs, 'abandoned', v_messages);

    RETURN jsonb_build_object(
        'rows_affected', v_retried + v_discarded,
        'message', format(
            'rescued %s orphaned %s: %s to retry, %s discarded (no heartbeat for %s)',
            v_retried + v_discarded, CASE WHEN v_retried + v_discarded = 1 THEN 'job' ELSE 'jobs' END,
            v_retried, v_discarded, v_after
        ),
        'retried', v_retried,
        'discarded', v_discarded
    );
END;
$$;

COMMENT ON FUNCTION autopilot.rescue_orphaned_jobs() IS
'rescue-orphaned-jobs: executing jobs whose runner stopped heartbeating for jobs.rescue_after go back to retryable (or discarded past max_attempts), the reason in jobs.errors and the attempt in job_runs as abandoned. Returns the job summary.';

REVOKE ALL ON FUNCTION autopilot._notify_jobs_available() FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.enqueue(text, jsonb, text, integer, timestamptz, integer, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.enqueue_many(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.claim(text, text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot._record_runner_attempts(autopilot.jobs[], text, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.complete_many(bigint[], integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.complete(bigint, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.fail(bigint, integer, text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.snooze(bigint, integer, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.cancel(bigint, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.retry(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.heartbeat(bigint[], integer[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.release(bigint[], integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.rescue_orphaned_jobs() FROM PUBLIC;

INSERT INTO autopilot.settings (name, value_type, default_value, min_value, max_value, description)
VALUES
(
    'jobs.backoff_base', 'interval', '15 seconds', '0', NULL,
    'A runner job that fails is retried after jobs.backoff_base * 2^(attempt - 1) (at most jobs.backoff_max), '
    || 'less up to 20% of jitter.'
),
(
    'jobs.backoff_max', 'interval', '1 hour', '0', NULL,
    'The longest wait before a failed runner job is retried.'
),
(
    'jobs.rescue_after', 'interval', '2 minutes', '10 seconds', NULL,
    'rescue-orphaned-jobs takes back an executing runner job whose runner has not heartbeaten for this long '
    || '(runners heartbeat every few seconds).'
),
(
    'backups.directory', 'text', '/var/backups/autopilot', NULL, NULL,
    'Where the runner writes pg_dump backups (a directory of the runner''s host, created 0700).'
),
(
    'backups.databases', 'text', '', NULL, NULL,
    'Comma-separated databases the backup jobs dump; empty: the database autopilot is installed in.'
),
(
    'backups.format', 'text', 'custom', NULL, NULL,
    'pg_dump format: custom (one file) or directory (with backups.parallel_jobs).'
),
(
    'backups.parallel_jobs', 'integer', '1', '1', '64',
    'pg_dump --jobs for the directory format.'
),
(
    'backups.lock_wait_timeout', 'interval', '5 minutes', '1 second', NULL,
    'pg_dump --lock-wait-timeout: a backup waiting longer than this for a table lock fails (and is retried).'
),
(
    'backups.hourly_keep', 'integer', '24', '1', '10000',
    'Verified hourly backups kept; older ones are deleted only after a new one is verified.'
),
(
    'backups.daily_keep', 'integer', '30', '1', '10000',
    'Verified daily backups kept; older ones are deleted only after a new one is verified.'
),
(
    'backups.manual_keep', 'integer', '10', '1', '10000',
    'Verified manual backups (autopilot runner backup) kept.'
),
(
    'backups.overdue_after', 'interval', '2 hours', '1 minute', NULL,
    'autopilot status flags the backups as overdue when the last verified one is older than this.'
)
ON CONFLICT (name) DO UPDATE
    SET
        value_type = excluded.value_type,
        default_value = excluded.default_value,
        min_value = excluded.min_value,
        max_value = excluded.max_value,
        description = excluded.description;

INSERT INTO autopilot.job_catalog (
    name, side, kind, schedule, target, requires_local_pg_cron, only_when_armed, description
)
VALUES
(
    'rescue-orphaned-jobs', 'database', 'function', '* * * * *', 'autopilot.rescue_orphaned_jobs',
    false, false,
    'Take back runner jobs whose runner stopped heartbeating (retry them, or discard past max attempts).'
);
