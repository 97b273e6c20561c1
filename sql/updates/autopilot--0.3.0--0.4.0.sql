-- autopilot 0.3.0 -> 0.4.0: security and fault fixes. Each section below is the same SQL as the
-- fresh 0.4.0 script's for the objects it changes.
\echo Use "ALTER EXTENSION autopilot UPDATE TO '0.4.0'" (or "autopilot upgrade") to load this file. \quit

CREATE OR REPLACE FUNCTION autopilot.version()
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '0.4.0'::text $$;

-- pg_cron runs: the tick each was fired for; a run queued behind an overrun and more than one
-- interval late is recorded as skipped (_run_start); run_scheduled_job pins its search path
-- in every transaction it starts
ALTER TABLE autopilot.job_runs ADD COLUMN scheduled_for timestamptz;
COMMENT ON COLUMN autopilot.job_runs.scheduled_for IS
'A pg_cron run: the tick of its schedule it was fired for (a run pg_cron queued while an earlier one overran started later than its tick). NULL for other runs.';

-- sql/functions/cron/_cron_field_values.sql
CREATE FUNCTION autopilot._cron_field_values(p_field text, p_position integer)
RETURNS integer[]
LANGUAGE plpgsql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
-- The values one field of a valid five-field cron expression stands for, the way
-- pg_cron reads it: lists, ranges, steps, month and weekday names; weekday 7 is
-- Sunday (0). p_position: 1 minute, 2 hour, 3 day of month, 4 month, 5 day of week.
-- The expression is validated before it reaches the catalog (cron_expression_error);
-- "$" (the last day of the month) stands for no fixed day: _cron_ticks reads it.
DECLARE
    c_low constant integer[] := ARRAY[0, 0, 1, 1, 0];
    c_high constant integer[] := ARRAY[59, 23, 31, 12, 7];
    c_months constant text[] := ARRAY['jan', 'feb', 'mar', 'apr', 'may', 'jun',
                                      'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
    c_days constant text[] := ARRAY['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
    v_item text;
    v_parts text[];
    v_bounds text[];
    v_numbers integer[];
    v_values integer[] := ARRAY[]::integer[];
BEGIN
    IF p_field = '$' THEN
        RETURN ARRAY[]::integer[];
    END IF;
    FOREACH v_item IN ARRAY string_to_array(lower(p_field), ',') LOOP
        v_parts := regexp_match(v_item, '^([^/]+)(?:/([0-9]+))?$');
        IF v_parts[1] = '*' THEN
            v_numbers := ARRAY[c_low[p_position], c_high[p_position]];
        ELSE
            v_bounds := string_to_array(v_parts[1], '-');
            SELECT array_agg(
                CASE
                    WHEN b ~ '^[0-9]+$' THEN b::integer
                    WHEN p_position = 4 THEN array_position(c_months, b)
                    ELSE array_position(c_days, b) - 1
                END
                ORDER BY o
            )
            INTO v_numbers
            FROM unnest(v_bounds) WITH ORDINALITY AS u (b, o);
            IF cardinality(v_numbers) = 1 THEN
                v_numbers := v_numbers || v_numbers[1];
            END IF;
        END IF;
        v_values := v_values || ARRAY(
            SELECT CASE WHEN p_position = 5 AND g = 7 THEN 0 ELSE g END
            FROM generate_series(v_numbers[1], v_numbers[2], coalesce(v_parts[2]::integer, 1)) AS g
        );
    END LOOP;
    RETURN ARRAY(SELECT DISTINCT v FROM unnest(v_values) AS v ORDER BY v);
END;
$$;

COMMENT ON FUNCTION autopilot._cron_field_values(text, integer) IS
'Private: the sorted values one field of a valid cron expression stands for (position 1 minute, 2 hour, 3 day of month, 4 month, 5 day of week with Sunday 0), read as pg_cron reads it; none for "$".';

-- sql/functions/cron/_cron_fields.sql
CREATE FUNCTION autopilot._cron_fields(p_schedule text)
RETURNS text[]
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- pg_cron skips blanks and empty lines before a schedule and ignores white space after it;
    -- a macro is the five fields pg_cron gives it (@weekly: Sunday 00:00)
    SELECT regexp_split_to_array(
        CASE t.schedule
            WHEN '@yearly' THEN '0 0 1 1 *'
            WHEN '@annually' THEN '0 0 1 1 *'
            WHEN '@monthly' THEN '0 0 1 * *'
            WHEN '@weekly' THEN '0 0 * * 0'
            WHEN '@daily' THEN '0 0 * * *'
            WHEN '@midnight' THEN '0 0 * * *'
            WHEN '@hourly' THEN '0 * * * *'
            ELSE t.schedule
        END,
        '[ \t]+'
    )
    FROM (SELECT regexp_replace(regexp_replace(p_schedule, '^[ \t\n]+', ''), '[[:space:]]+$', '') AS schedule) AS t
$$;

COMMENT ON FUNCTION autopilot._cron_fields(text) IS
'Private: the five fields of a valid five-field schedule or macro as pg_cron reads them (white space around it dropped, a macro expanded: @weekly is 0 0 * * 0); what _cron_ticks and _schedule_interval compute from.';

-- sql/functions/cron/_cron_ticks.sql
CREATE FUNCTION autopilot._cron_ticks(p_schedule text, p_after timestamptz, p_until timestamptz)
RETURNS SETOF timestamptz
LANGUAGE plpgsql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
-- The minutes at which pg_cron fires a schedule (in UTC), after p_after and up to
-- p_until, in order; at most two days are looked at (callers ask about minutes).
-- As in pg_cron, when day of month and day of week are both restricted (neither
-- starts with *), a day matches either; otherwise it must match both. A macro is
-- the five fields pg_cron gives it (@weekly: Sunday 00:00); "$" as the day of month
-- is its last day. A seconds schedule has no ticks: pg_cron (1.5+) starts it N
-- seconds after its previous start, whatever the clock, and never queues more than
-- one run behind, so there is nothing to catch up on. The schedule is valid
-- (cron_expression_error); @reboot never reaches the catalog.
DECLARE
    v_fields text[] := autopilot._cron_fields(p_schedule);
    v_last_day boolean := v_fields[3] = '$';
    v_either_day boolean := NOT (starts_with(v_fields[3], '*')
                                 OR starts_with(v_fields[5], '*'));
    v_from timestamp := date_trunc('minute', p_after AT TIME ZONE 'UTC') + interval '1 minute';
    v_to timestamp := least(p_until AT TIME ZONE 'UTC', v_from + interval '2 days');
    v_minutes integer[];
    v_hours integer[];
    v_doms integer[];
    v_months integer[];
    v_dows integer[];
BEGIN
    IF p_schedule ~* '^[ \t\n]*[0-9]+[[:space:]]*seconds?[[:space:]]*$' THEN
        RETURN;
    END IF;
    v_minutes := autopilot._cron_field_values(v_fields[1], 1);
    v_hours := autopilot._cron_field_values(v_fields[2], 2);
    v_doms := autopilot._cron_field_values(v_fields[3], 3);
    v_months := autopilot._cron_field_values(v_fields[4], 4);
    v_dows := autopilot._cron_field_values(v_fields[5], 5);
    RETURN QUERY
    SELECT d.m AT TIME ZONE 'UTC'
    FROM (
        SELECT
            g.m,
            extract(DAY FROM g.m)::integer = ANY(v_doms)
            OR (v_last_day AND extract(DAY FROM g.m + interval '1 day') = 1) AS dom_matches,
            extract(DOW FROM g.m)::integer = ANY(v_dows) AS dow_matches
        FROM generate_series(v_from, v_to, interval '1 minute') AS g (m)
        WHERE extract(MINUTE FROM g.m)::integer = ANY(v_minutes)
          AND extract(HOUR FROM g.m)::integer = ANY(v_hours)
          AND extract(MONTH FROM g.m)::integer = ANY(v_months)
    ) AS d
    WHERE CASE WHEN v_either_day THEN d.dom_matches OR d.dow_matches ELSE d.dom_matches AND d.dow_matches END
    ORDER BY d.m;
END;
$$;

COMMENT ON FUNCTION autopilot._cron_ticks(text, timestamptz, timestamptz) IS
'Private: the minutes (UTC) after p_after and up to p_until at which pg_cron fires the schedule (five fields or a macro), in order; none for a seconds schedule; looks at two days at most.';

REVOKE ALL ON FUNCTION autopilot._cron_field_values(text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot._cron_fields(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot._cron_ticks(text, timestamptz, timestamptz) FROM PUBLIC;

-- sql/functions/core/_run_start.sql
CREATE OR REPLACE FUNCTION autopilot._run_start(p_name text, p_manual boolean, p_session_lock boolean)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Takes the job's lock and opens a run in the ledger; returns its id. Records a
-- skipped run and returns NULL when another run holds the lock, or when pg_cron
-- started this run more than one interval after the tick it was fired for (it
-- queued the run while an earlier one overran): no pile-up of catch-up runs.
DECLARE
    v_job autopilot.job_definitions := autopilot._catalog_job(p_name);
    v_key bigint := autopilot._job_lock_key(p_name);
    v_trigger text := CASE
        WHEN p_manual THEN 'manual'
        WHEN current_setting('application_name') = 'pg_cron' THEN 'pg_cron'
        ELSE 'manual'
    END;
    v_locked boolean;
    v_run_id bigint;
    v_tick timestamptz;
    v_later_tick timestamptz;
BEGIN
    IF p_session_lock THEN
        v_locked := pg_try_advisory_lock(v_key);
    ELSE
        v_locked := pg_try_advisory_xact_lock(v_key);
    END IF;

    IF NOT v_locked THEN
        INSERT INTO autopilot.job_runs AS r (job_name, side, trigger, status, finished_at, message)
        VALUES (p_name, v_job.side, v_trigger, 'skipped', clock_timestamp(),
                format('skipped: another run of %s is still in progress', p_name))
        RETURNING r.id INTO v_run_id;
        RAISE NOTICE 'autopilot job % skipped: another run is still in progress (ledger run %)', p_name, v_run_id;
        RETURN NULL;
    END IF;

    IF v_trigger = 'pg_cron' THEN
        -- pg_cron 1.4 queues the ticks that pass while a run overruns and starts them back to
        -- back afterwards, so the lock never sees them overlap. A queued run is fired for the
        -- first tick after the previous run's, if that tick came before the previous run ended
        -- (an abandoned run's end is not known: it does not count).
        SELECT t.tick INTO v_tick
        FROM (
            SELECT r.scheduled_for, r.finished_at
            FROM autopilot.job_runs AS r
            WHERE r.job_name = p_name AND r.trigger = 'pg_cron' AND r.scheduled_for IS NOT NULL
              AND r.status IN ('succeeded', 'failed', 'skipped')
            ORDER BY r.started_at DESC
            LIMIT 1
        ) AS prev
        CROSS JOIN LATERAL autopilot._cron_ticks(v_job.schedule, prev.scheduled_for,
                                                 least(prev.finished_at, now())) AS t (tick)
        ORDER BY t.tick
        LIMIT 1;
        IF v_tick IS NULL THEN
            -- fired on time: its tick is the minute it started in
            v_tick := date_trunc('minute', now());
        ELSE
            -- more than one interval late (a later tick has passed too): it does nothing
            SELECT t.tick INTO v_later_tick
            FROM autopilot._cron_ticks(v_job.schedule, v_tick, now()) AS t (tick)
            LIMIT 1;
        END IF;
        IF v_later_tick IS NOT NULL THEN
            INSERT INTO autopilot.job_runs AS r (job_name, side, trigger, status, finished_at, scheduled_for, message)
            VALUES (p_name, v_job.side, v_trigger, 'skipped', clock_timestamp(), v_tick,
                    format('skipped: caught up after an overrun (fired for the %s UTC tick, started %s later, after the %s tick had passed)',
                           to_char(v_tick AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
                           date_trunc('second', now() - v_tick),
                           to_char(v_later_tick AT TIME ZONE 'UTC', 'HH24:MI')))
            RETURNING r.id INTO v_run_id;
            RAISE NOTICE 'autopilot job % skipped: it was fired for the % tick, more than one interval ago (ledger run %)',
                p_name, v_tick, v_run_id;
            IF p_session_lock THEN
                PERFORM pg_advisory_unlock(v_key);
            END IF;
            RETURN NULL;
        END IF;
    END IF;

    -- holding the lock, any run of this job still marked running was cut short
    UPDATE autopilot.job_runs
    SET status = 'abandoned',
        finished_at = greatest(started_at, clock_timestamp()),
        message = 'the session running it ended before the run finished'
    WHERE job_name = p_name AND status = 'running';

    INSERT INTO autopilot.job_runs AS r (job_name, side, trigger, scheduled_for)
    VALUES (p_name, v_job.side, v_trigger, v_tick)
    RETURNING r.id INTO v_run_id;
    RETURN v_run_id;
END;
$$;

COMMENT ON FUNCTION autopilot._run_start(text, boolean, boolean) IS
'Private: takes a job''s advisory lock (session or transaction level) and opens a ledger run; records a skipped run and returns NULL when another run holds the lock, or when a pg_cron run starts more than one interval after the tick it was fired for (caught up after an overrun).';

-- sql/functions/core/run_scheduled_job.sql
-- A procedure, so that a batched job commits between batches: no batch holds
-- its locks long. A procedure that commits cannot carry SET search_path
-- (PostgreSQL forbids transaction control there), yet pg_cron runs it as a
-- privileged role in a session whose search_path the database's owner can set
-- (ALTER DATABASE ... SET search_path = public, ...). So its types are
-- schema-qualified (they are resolved when the body is compiled, before any
-- statement runs), and every transaction it starts pins the search path first,
-- for that transaction only (set_config(..., true)): no function, operator or
-- type in the body is ever looked up in a schema another role can write, and
-- the caller's session keeps its own setting.
-- A run past its job's timeout stops: between batches by itself, in a step when
-- it is cancelled (the next scheduled run of any job cancels it, see
-- autopilot._cancel_timed_out_runs; "autopilot run" sets statement_timeout for
-- the CALL). It is recorded timed_out and re-raised as query_canceled.
-- A transient failure of a step (serialization failure, deadlock, lock not
-- available) is retried within the run, after a backoff that doubles, up to the
-- job's max_attempts: each attempt is a ledger row of its own (attempt 1, 2,
-- ...); a batched job goes on from its last committed batch. The timeout covers
-- the whole run, every attempt and backoff included.
CREATE OR REPLACE PROCEDURE autopilot.run_scheduled_job(p_name text, p_manual boolean DEFAULT false)
LANGUAGE plpgsql
AS $$
DECLARE
    v_run_id bigint;
    v_step autopilot.job_step;
    v_cursor pg_catalog.jsonb;
    v_rows bigint := 0;
    v_batches integer := 0;
    v_state pg_catalog.text;
    v_message pg_catalog.text;
    v_detail pg_catalog.text;
    v_hint pg_catalog.text;
    -- a statement_timeout of the caller's session fires this long after the CALL started
    v_called_at pg_catalog.timestamptz := pg_catalog.statement_timestamp();
    v_job autopilot.job_definitions;
    v_timeout pg_catalog.interval;
    v_timed_out boolean := false;
    v_attempt integer := 1;
    v_max_attempts integer;
    v_wait pg_catalog.interval;
BEGIN
    -- fails at once inside a transaction block, before any lock is taken
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    PERFORM autopilot._cancel_timed_out_runs();
    -- its marks on the cancelled runs' rows, which they wait for to record themselves
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF NOT p_manual AND autopilot._skips_today(p_name) THEN
        RETURN;
    END IF;
    IF (autopilot._catalog_job(p_name)).kind = 'statement' THEN
        PERFORM autopilot._run_job_step(p_name, NULL);
    END IF;

    v_run_id := autopilot._run_start(p_name, p_manual, true);
    v_job := autopilot._catalog_job(p_name);
    v_timeout := v_job.timeout;
    v_max_attempts := CASE WHEN v_job.kind IN ('function', 'batched') THEN v_job.max_attempts ELSE 1 END;
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF v_run_id IS NULL THEN
        RETURN;
    END IF;

    <<attempts>>
    LOOP
    LOOP
        BEGIN
            IF v_wait IS NOT NULL THEN
                -- the backoff before a retry: a cancel (timeout) while it lasts is caught below
                PERFORM pg_catalog.pg_sleep(pg_catalog.date_part('epoch', v_wait));
                v_wait := NULL;
            END IF;
            v_step := autopilot._run_job_step(p_name, v_cursor);
        EXCEPTION
            -- a cancel is no error OTHERS catches: it is a timeout when it came past the deadline
            WHEN query_canceled OR OTHERS THEN
                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE,
                                        v_message = MESSAGE_TEXT,
                                        v_detail = PG_EXCEPTION_DETAIL,
                                        v_hint = PG_EXCEPTION_HINT;
                v_timed_out := v_state = '57014' AND clock_timestamp() >= v_called_at + v_timeout;
        END;
        EXIT WHEN v_state IS NOT NULL;
        v_rows := v_rows + coalesce(v_step.rows_affected, 0);
        v_batches := v_batches + 1;
        v_cursor := v_step.cursor;
        COMMIT;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        EXIT WHEN v_step.done;
        IF clock_timestamp() >= v_called_at + v_timeout THEN
            -- past the timeout between two batches: the committed ones stay
            v_state := '57014';
            v_timed_out := true;
            EXIT;
        END IF;
    END LOOP;
    EXIT attempts WHEN v_state IS NULL OR v_timed_out OR v_state NOT IN ('40001', '40P01', '55P03')
        OR v_attempt >= v_max_attempts;
    -- a transient failure: this attempt is recorded failed, the next one starts after the backoff
    v_wait := v_job.retry_backoff * power(2, v_attempt - 1);
    IF clock_timestamp() + v_wait >= v_called_at + v_timeout THEN
        v_message := format('%s (attempt %s of %s, not retried: the next attempt would start past the timeout of %s)',
                            v_message, v_attempt, v_max_attempts, v_timeout);
        EXIT attempts;
    END IF;
    PERFORM autopilot._run_finish(
        v_run_id, 'failed', v_rows,
        format('%s (attempt %s of %s, retried after %s)', v_message, v_attempt, v_max_attempts, v_wait),
        v_state,
        jsonb_build_object('detail', v_detail, 'batches_committed', v_batches, 'retry_after', v_wait::text)
    );
    v_attempt := v_attempt + 1;
    -- the run's start: the timeout of every attempt counts from it (autopilot._cancel_timed_out_runs)
    INSERT INTO autopilot.job_runs AS r (job_name, side, trigger, scheduled_for, attempt, details)
    SELECT p.job_name, p.side, p.trigger, p.scheduled_for, v_attempt,
           jsonb_build_object('run_started_at', v_called_at)
    FROM autopilot.job_runs AS p
    WHERE p.id = v_run_id
    RETURNING r.id INTO v_run_id;
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    v_state := NULL;
    v_message := NULL;
    v_detail := NULL;
    v_hint := NULL;
    v_rows := 0;
    v_batches := 0;
    END LOOP attempts;

    IF v_timed_out THEN
        v_message := format('timed out after %s (timeout %s); %s %s committed',
                            date_trunc('second', clock_timestamp() - v_called_at), v_timeout, v_batches,
                            CASE WHEN v_batches = 1 THEN 'batch' ELSE 'batches' END);
        v_detail := NULL;
        v_hint := format('autopilot.set_job_timeout(%L, ...) gives the job more time.', p_name);
        PERFORM autopilot._run_finish(v_run_id, 'timed_out', v_rows, v_message, v_state,
                                      jsonb_build_object('timeout', v_timeout::text, 'batches_committed', v_batches));
    ELSIF v_state IS NOT NULL THEN
        PERFORM autopilot._run_finish(v_run_id, 'failed', v_rows, v_message, v_state,
                                      jsonb_build_object('detail', v_detail, 'batches_committed', v_batches));
    ELSE
        PERFORM autopilot._run_finish(
            v_run_id, 'succeeded', v_rows,
            coalesce(v_step.message, format('%s rows in %s %s', v_rows, v_batches, CASE WHEN v_batches = 1 THEN 'batch' ELSE 'batches' END)),
            NULL,
            coalesce(v_step.details, '{}') || jsonb_build_object('batches', v_batches)
        );
    END IF;
    PERFORM pg_advisory_unlock(autopilot._job_lock_key(p_name));
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);

    IF v_state IS NOT NULL THEN
        -- the run is in the ledger; re-raise the job's own error so pg_cron records it too
        RAISE EXCEPTION USING ERRCODE = v_state,
                              MESSAGE = CASE WHEN v_timed_out THEN format('autopilot job %s %s', p_name, v_message) ELSE v_message END,
                              DETAIL = coalesce(v_detail, ''), HINT = coalesce(v_hint, '');
    END IF;
END;
$$;

-- (LT01 is silenced on the next line: sqlfluff's postgres dialect reads the argument list in
-- COMMENT ON PROCEDURE as a separate bracket and wants a space before it.)
COMMENT ON PROCEDURE autopilot.run_scheduled_job(text, boolean) IS -- noqa: LT01
'The command pg_cron runs for every database-side and runner-side catalog job (CALL autopilot.run_scheduled_job(''name'')): ledger run committed first, a COMMIT after every batch, a failure recorded and then re-raised so that cron.job_run_details shows it too; a run past its job''s timeout (autopilot.set_job_timeout) stops and is recorded timed_out. Must be CALLed outside a transaction block. p_manual => true (the CLI) ignores a weekday restriction.';

-- invariants and indexes: a task is held only by an agent with its skills; every foreign key
-- indexed on its referencing side; the retry jitter described as fail() does it

-- The README's "a task can only be held by an agent with its skills" is enforced by the
-- triggers on autopilot.tasks and autopilot.agents since 0.2.0, but the 0.1.0 -> 0.2.0 upgrade
-- (frozen) never checked the rows it found, and triggers can be bypassed (session_replication_role
-- = replica). As 0.2.0 did for capacity: refuse with the offending rows, change nothing.
DO $$
DECLARE
    v_count bigint;
    v_rows text;
BEGIN
    SELECT
        count(*),
        string_agg(
            format('task %s (%s) held by agent %s (id %s) lacks %s',
                   o.task_id, o.status, o.agent_name, o.agent_id, array_to_string(o.missing, ', ')),
            '; ' ORDER BY o.task_id
        ) FILTER (WHERE o.n <= 20)
    INTO v_count, v_rows
    FROM (
        SELECT
            t.id AS task_id,
            t.status,
            a.id AS agent_id,
            a.name AS agent_name,
            ARRAY(
                SELECT r.skill FROM unnest(t.required_skills) AS r (skill)
                EXCEPT
                SELECT s.skill FROM unnest(a.skills) AS s (skill)
                ORDER BY 1
            ) AS missing,
            row_number() OVER (ORDER BY t.id) AS n
        FROM autopilot.tasks AS t
        INNER JOIN autopilot.agents AS a ON t.agent_id = a.id
        WHERE t.status IN ('assigned', 'running') AND NOT t.required_skills <@ a.skills
    ) AS o;
    IF v_count > 0 THEN
        RAISE EXCEPTION 'autopilot 0.4.0 requires every assigned or running task to be held by an agent with all its required skills, and % tasks are not', v_count
            USING ERRCODE = 'check_violation',
                  DETAIL = v_rows || CASE WHEN v_count > 20 THEN format('; and %s more', v_count - 20) ELSE '' END,
                  HINT = 'Give those agents the missing skills (UPDATE autopilot.agents SET skills = ...), or set '
                      || 'those tasks back to pending (status ''pending'', agent_id NULL), then upgrade again. '
                      || 'Nothing was changed.';
    END IF;
END;
$$;

-- deleting tasks: ON DELETE SET NULL found each deleted task's analysis rows by scanning the table
CREATE INDEX analysis_results_task_id_idx ON autopilot.analysis_results (task_id)
WHERE task_id IS NOT NULL;

UPDATE autopilot.settings
SET
    description
    = 'A runner job that fails is retried after jobs.backoff_base * 2^(attempt - 1) (at most jobs.backoff_max), '
    || 'times a random factor between 0.8 and 1.0 (jitter: up to 20% sooner, never later).'
WHERE name = 'jobs.backoff_base';


-- backups: settings validated when set: backups.directory must be an absolute path (the new value
-- type path: never empty or relative, so never the runner's working directory) and backups.format one
-- of its allowed values (the new column settings.allowed_values). sql/schema/tables/settings.sql,
-- sql/settings/defaults.sql, sql/functions/core/_setting_value_error.sql, sql/functions/core/set_setting.sql
ALTER TABLE autopilot.settings ADD COLUMN allowed_values text[];
ALTER TABLE autopilot.settings DROP CONSTRAINT settings_value_type_check;
ALTER TABLE autopilot.settings ADD CONSTRAINT settings_value_type_check CHECK (
    value_type IN ('integer', 'numeric', 'interval', 'boolean', 'text', 'path')
);
COMMENT ON COLUMN autopilot.settings.value_type IS
'One of integer, numeric, interval, boolean, text, path (an absolute path without ..); autopilot.set_setting() casts and range-checks against it.';
COMMENT ON COLUMN autopilot.settings.allowed_values IS
'The only values autopilot.set_setting() accepts (case-sensitive); NULL for any value of the type.';

UPDATE autopilot.settings SET value_type = 'path'
WHERE name = 'backups.directory';
UPDATE autopilot.settings SET allowed_values = ARRAY['custom', 'directory']
WHERE name = 'backups.format';

CREATE OR REPLACE FUNCTION autopilot._setting_value_error(
    p_type text, p_value text, p_min text, p_max text
)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- NULL when p_value is a valid value of type p_type within [p_min, p_max], else why not.
-- A path is absolute, without a .. component or a control character.
DECLARE
    v_below boolean := false;
    v_above boolean := false;
BEGIN
    IF p_value IS NULL THEN
        RETURN 'a value is required';
    END IF;
    BEGIN
        CASE p_type
            WHEN 'integer' THEN
                v_below := p_min IS NOT NULL AND p_value::bigint < p_min::bigint;
                v_above := p_max IS NOT NULL AND p_value::bigint > p_max::bigint;
            WHEN 'numeric' THEN
                v_below := p_min IS NOT NULL AND p_value::numeric < p_min::numeric;
                v_above := p_max IS NOT NULL AND p_value::numeric > p_max::numeric;
            WHEN 'interval' THEN
                v_below := p_min IS NOT NULL AND p_value::interval < p_min::interval;
                v_above := p_max IS NOT NULL AND p_value::interval > p_max::interval;
            WHEN 'boolean' THEN
                PERFORM p_value::boolean;
            WHEN 'path' THEN
                -- a directory of the runner's host: never relative (the runner's working directory)
                IF p_value !~ '^/' THEN
                    RETURN format('%L is not an absolute path', p_value);
                ELSIF p_value ~ '(^|/)\.\.(/|$)' OR p_value ~ '[[:cntrl:]]' THEN
                    RETURN format('%L has a .. component or a control character', p_value);
                END IF;
            ELSE
                NULL;
        END CASE;
    EXCEPTION
        WHEN data_exception THEN
            RETURN format('%L is not a valid %s', p_value, p_type);
    END;
    IF v_below THEN
        RETURN format('%s is below the minimum %s', p_value, p_min);
    ELSIF v_above THEN
        RETURN format('%s is above the maximum %s', p_value, p_max);
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION autopilot._setting_value_error(text, text, text, text) IS
'Private: NULL when a value is valid for a setting''s type and range, else the reason (used by set_setting and by the settings'' own check).';

CREATE OR REPLACE FUNCTION autopilot.set_setting(p_name text, p_value text)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_setting autopilot.settings;
    v_error text;
BEGIN
    SELECT * INTO v_setting FROM autopilot.settings WHERE name = p_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown autopilot setting "%"', p_name
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT name FROM autopilot.settings lists the settings.';
    END IF;
    v_error := autopilot._setting_value_error(
        v_setting.value_type, p_value, v_setting.min_value, v_setting.max_value
    );
    IF v_error IS NOT NULL THEN
        RAISE EXCEPTION 'invalid value for setting "%": %', p_name, v_error
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('%s is of type %s, allowed range [%s, %s].',
                                  p_name, v_setting.value_type,
                                  coalesce(v_setting.min_value, '-'),
                                  coalesce(v_setting.max_value, '-')),
                  HINT = CASE v_setting.value_type
                      WHEN 'path' THEN 'Give an absolute path, such as ' || v_setting.default_value || '.'
                      ELSE 'SELECT * FROM autopilot.settings shows each setting''s type and range.'
                  END;
    END IF;
    IF NOT p_value = ANY(coalesce(v_setting.allowed_values, ARRAY[p_value])) THEN
        RAISE EXCEPTION 'invalid value for setting "%": % is not one of %', p_name,
            pg_catalog.quote_literal(p_value),
            pg_catalog.array_to_string(v_setting.allowed_values, ', ')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = pg_catalog.format('%s accepts only: %s.', p_name,
                                           pg_catalog.array_to_string(v_setting.allowed_values, ', '));
    END IF;
    INSERT INTO autopilot.setting_values AS sv (name, value)
    VALUES (p_name, p_value)
    ON CONFLICT (name) DO UPDATE
        SET value = excluded.value, updated_at = now(), updated_by = current_user;
    RETURN p_value;
END;
$$;

COMMENT ON FUNCTION autopilot.set_setting(text, text) IS
'Sets a setting after checking its type, range and allowed values (invalid_parameter_value otherwise); kept across upgrades and pg_dump/restore. Returns the value.';


-- named ERRCODEs: every RAISE names its condition instead of its SQLSTATE (the codes are
-- unchanged): the functions of sql/functions/{queue,graph,centralcloud} that raise.

-- sql/functions/queue/enqueue.sql
-- (p_depends_on added: a new signature, so the old function is dropped first; the grant
-- statements that name it must name the new one)
DROP FUNCTION autopilot.enqueue(text, jsonb, text, integer, timestamptz, integer, text, jsonb);
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

-- sql/functions/queue/enqueue_many.sql
CREATE OR REPLACE FUNCTION autopilot.enqueue_many(p_jobs jsonb)
RETURNS SETOF bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Adds many jobs in one statement: p_jobs is a JSON array of objects with the
-- keys of autopilot.enqueue() -- worker (required), args, queue, priority,
-- scheduled_at, max_attempts, unique_key, meta, depends_on (an array of ids of
-- jobs enqueued before: the job waits until they have completed). Returns the
-- ids of the jobs added; a job whose unique key is held by an unfinished job is
-- skipped. One NOTIFY autopilot_jobs per queue that got a job available now.
DECLARE
    v_depends_on bigint[];
    v_ids bigint[];
    v_queues text[];
BEGIN
    IF jsonb_typeof(p_jobs) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'enqueue_many takes a JSON array of jobs, not %', coalesce(jsonb_typeof(p_jobs), 'NULL')
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- every dependency of the batch, checked and locked at once (none: no work at all)
    v_depends_on := ARRAY(
        SELECT DISTINCT d.id::bigint
        FROM jsonb_array_elements(p_jobs) AS x (job)
        CROSS JOIN LATERAL jsonb_array_elements_text(
            CASE WHEN jsonb_typeof(x.job -> 'depends_on') = 'array' THEN x.job -> 'depends_on' ELSE '[]' END
        ) AS d (id)
    );
    IF cardinality(v_depends_on) > 0 THEN
        PERFORM autopilot._dependencies_met(v_depends_on);
    END IF;
    WITH added AS (
        INSERT INTO autopilot.jobs AS j (
            queue, worker, args, state, priority, max_attempts, unique_key, meta, scheduled_at, depends_on
        )
        SELECT
            coalesce(x.queue, 'default'),
            x.worker,
            coalesce(x.args, '{}'),
            CASE
                WHEN
                    cardinality(v_depends_on) > 0
                    AND EXISTS (
                        SELECT FROM autopilot.jobs AS d
                        WHERE d.id = ANY(x.depends_on) AND d.state <> 'completed'
                    )
                    THEN 'waiting'
                WHEN x.scheduled_at > now() THEN 'scheduled'
                ELSE 'available'
            END,
            coalesce(x.priority, 0),
            coalesce(x.max_attempts, 20),
            x.unique_key,
            coalesce(x.meta, '{}'),
            greatest(coalesce(x.scheduled_at, now()), now()),
            nullif(x.depends_on, '{}')
        FROM jsonb_to_recordset(p_jobs) AS x (
            worker text, args jsonb, queue text, priority smallint, scheduled_at timestamptz,
            max_attempts integer, unique_key text, meta jsonb, depends_on bigint[]
        )
        ON CONFLICT (unique_key)
        WHERE unique_key IS NOT NULL AND state IN ('available', 'scheduled', 'executing', 'retryable', 'waiting')
        DO NOTHING
        RETURNING j.id, j.queue, j.state
    )

    SELECT
        array_agg(a.id ORDER BY a.id),
        array_agg(DISTINCT a.queue) FILTER (WHERE a.state = 'available')
    INTO v_ids, v_queues
    FROM added AS a;
    PERFORM pg_notify('autopilot_jobs', q.queue) FROM unnest(v_queues) AS q (queue);
    RETURN QUERY SELECT i.id FROM unnest(v_ids) AS i (id);
END;
$$;

COMMENT ON FUNCTION autopilot.enqueue_many(jsonb) IS
'Adds the jobs of a JSON array (each an object with enqueue()''s keys; worker required) in one statement; returns the ids added (jobs whose unique key is held by an unfinished job are skipped).';

-- sql/functions/queue/claim.sql
CREATE OR REPLACE FUNCTION autopilot.claim(p_queue text, p_node text, p_limit integer DEFAULT 1)
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
        RAISE EXCEPTION 'claim needs the claiming runner''s node name' USING ERRCODE = 'invalid_parameter_value';
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

-- sql/functions/queue/heartbeat.sql
CREATE OR REPLACE FUNCTION autopilot.heartbeat(p_ids bigint[], p_attempts integer[], p_node text)
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
        USING ERRCODE = 'array_subscript_error';
    END IF;
    -- the rows are locked in id order, as complete_many() locks them: a heartbeat over thousands
    -- of jobs (a seq scan, heap order) and a batch of completions (an index scan) would otherwise
    -- take their locks in different orders and deadlock
    RETURN QUERY
    WITH mine AS (
        SELECT j.id
        FROM autopilot.jobs AS j
        -- by primary key, then the attempt, as complete_many
        WHERE j.id = ANY(p_ids)
          AND j.state = 'executing'
          AND j.attempted_by = p_node
          AND (j.id, j.attempt) IN (SELECT u.id, u.attempt FROM unnest(p_ids, p_attempts) AS u (id, attempt))
        ORDER BY j.id
        FOR NO KEY UPDATE OF j
    )

    UPDATE autopilot.jobs AS j
    SET heartbeat_at = now()
    FROM mine
    WHERE j.id = mine.id
    RETURNING j.id;
END;
$$;

-- sql/functions/queue/complete_many.sql
CREATE OR REPLACE FUNCTION autopilot.complete_many(p_ids bigint[], p_attempts integer[])
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

-- sql/functions/queue/snooze.sql
CREATE OR REPLACE FUNCTION autopilot.snooze(p_id bigint, p_attempt integer, p_for interval)
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
        RAISE EXCEPTION 'snooze needs a delay of zero or more, not %', p_for USING ERRCODE = 'invalid_parameter_value';
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

-- sql/functions/queue/release.sql
CREATE OR REPLACE FUNCTION autopilot.release(p_ids bigint[], p_attempts integer[])
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
        USING ERRCODE = 'array_subscript_error';
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

-- sql/functions/queue/retry.sql
CREATE OR REPLACE FUNCTION autopilot.retry(p_id bigint)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Makes a job that is not executing available now: a discarded, cancelled or
-- completed job runs again (given one more attempt when it had used them
-- all), a retryable or scheduled one runs at once. Its errors are kept. A job
-- whose dependencies (depends_on) have not all completed is waiting again
-- instead, until they have. False
-- when the job is executing, already available, or unknown. A job whose unique key has meanwhile
-- been taken by another unfinished job cannot run again beside it:
-- unique_violation, naming that job.
DECLARE
    v_holder bigint;
BEGIN
    UPDATE autopilot.jobs AS j
    SET state = CASE WHEN autopilot._dependencies_met(j.depends_on) THEN 'available' ELSE 'waiting' END,
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
          AND h.state IN ('available', 'scheduled', 'executing', 'retryable', 'waiting');
        RAISE EXCEPTION 'job % cannot run again: %', p_id,
            CASE
                WHEN v_holder IS NULL THEN 'another job held its unique key a moment ago'
                ELSE format('job %s holds its unique key and is unfinished', v_holder)
            END
        USING ERRCODE = 'unique_violation', HINT = 'Wait for that job to finish, or cancel it; then retry.';
END;
$$;

-- sql/functions/graph/_pagerank_sql.sql
CREATE OR REPLACE FUNCTION autopilot._pagerank_sql(
    p_node_ids bigint[],
    p_sources bigint[],
    p_targets bigint[],
    p_weights double precision[],
    p_damping double precision,
    p_tolerance double precision,
    p_max_iterations integer,
    OUT ranks double precision[],
    OUT iterations integer,
    OUT delta double precision,
    OUT ignored_edges bigint
)
LANGUAGE plpgsql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
-- PageRank's power iteration in SQL: the same computation, arguments, results
-- and errors as the compiled autopilot._pagerank_kernel, for servers where the
-- extension's library cannot be loaded (installed as a plain schema, or by a
-- role that may not create C functions). Each iteration is one join and one
-- aggregate over every edge: expect seconds per iteration on a million edges.
DECLARE
    v_count integer := coalesce(cardinality(p_node_ids), 0);
    v_edge_source integer [];
    v_edge_target integer [];
    v_edge_share double precision [];
    v_dangling integer [];
    v_next double precision [];
    v_base double precision;
BEGIN
    IF num_nulls(p_node_ids, p_sources, p_targets, p_weights, p_damping, p_tolerance, p_max_iterations) > 0 THEN
        RAISE EXCEPTION '_pagerank_sql: no argument may be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT (p_damping >= 0 AND p_damping < 1) THEN
        RAISE EXCEPTION 'pagerank damping must be at least 0 and less than 1, not %', p_damping
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT (p_tolerance > 0 AND p_tolerance < 'infinity') THEN
        RAISE EXCEPTION 'pagerank tolerance must be a positive number, not %', p_tolerance
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_max_iterations < 1 THEN
        RAISE EXCEPTION 'pagerank max_iterations must be at least 1, not %', p_max_iterations
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF array_position(p_node_ids, NULL) IS NOT NULL OR array_position(p_sources, NULL) IS NOT NULL
        OR array_position(p_targets, NULL) IS NOT NULL OR array_position(p_weights, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'pagerank arrays must not contain NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF cardinality(p_sources) <> cardinality(p_targets) OR cardinality(p_sources) <> cardinality(p_weights) THEN
        RAISE EXCEPTION 'sources, targets and weights differ in length (%, % and %)',
            cardinality(p_sources), cardinality(p_targets), cardinality(p_weights)
        USING ERRCODE = 'array_subscript_error';
    END IF;
    IF EXISTS (
        SELECT
        FROM unnest(p_node_ids) WITH ORDINALITY AS n (id, position)
        WHERE n.position > 1 AND n.id <= p_node_ids[n.position - 1]
    ) THEN
        RAISE EXCEPTION 'node_ids must be ascending and unique' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT FROM unnest(p_weights) AS w (weight) WHERE NOT (w.weight > 0 AND w.weight < 'infinity')) THEN
        RAISE EXCEPTION 'pagerank edge weights must be positive and finite' USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- edges as positions in p_node_ids, each with its damped share of its source's rank
    WITH nodes AS (
        SELECT
            n.id,
            n.position::integer AS position
        FROM unnest(p_node_ids) WITH ORDINALITY AS n (id, position)
    ),

    edges AS (
        SELECT
            s.position AS source,
            t.position AS target,
            e.weight
        FROM unnest(p_sources, p_targets, p_weights) AS e (source_id, target_id, weight)
        INNER JOIN nodes AS s ON e.source_id = s.id
        INNER JOIN nodes AS t ON e.target_id = t.id
    ),

    out_weight AS (
        SELECT
            e.source,
            sum(e.weight) AS total
        FROM edges AS e
        GROUP BY e.source
    )

    SELECT
        coalesce(array_agg(e.source), '{}'),
        coalesce(array_agg(e.target), '{}'),
        coalesce(array_agg(p_damping * e.weight / o.total), '{}')
    INTO v_edge_source, v_edge_target, v_edge_share
    FROM edges AS e
    INNER JOIN out_weight AS o ON e.source = o.source;

    ignored_edges := cardinality(p_sources) - cardinality(v_edge_source);

    SELECT coalesce(array_agg(g.position), '{}')
    INTO v_dangling
    FROM generate_series(1, v_count) AS g (position)
    WHERE g.position <> ALL(v_edge_source);

    iterations := 0;
    delta := 0;
    IF v_count = 0 THEN
        ranks := '{}';
        RETURN;
    END IF;
    ranks := array_fill(1.0::double precision / v_count, ARRAY[v_count]);

    WHILE iterations < p_max_iterations LOOP
        SELECT (1 - p_damping) / v_count + p_damping * coalesce(sum(ranks[d.position]), 0) / v_count
        INTO v_base
        FROM unnest(v_dangling) AS d (position);

        SELECT array_agg(v_base + coalesce(i.inflow, 0) ORDER BY g.position)
        INTO v_next
        FROM generate_series(1, v_count) AS g (position)
        LEFT JOIN (
            SELECT
                e.target,
                sum(ranks[e.source] * e.share) AS inflow
            FROM unnest(v_edge_source, v_edge_target, v_edge_share) AS e (source, target, share)
            GROUP BY e.target
        ) AS i ON g.position = i.target;

        SELECT sum(abs(u.new_rank - u.old_rank))
        INTO delta
        FROM unnest(v_next, ranks) AS u (new_rank, old_rank);

        ranks := v_next;
        iterations := iterations + 1;
        EXIT WHEN delta < p_tolerance;
    END LOOP;
END;
$$;

-- sql/functions/graph/recalculate_all_pagerank.sql
CREATE OR REPLACE FUNCTION autopilot.recalculate_all_pagerank()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- pagerank. PageRank of every node of autopilot.graph_nodes, per codebase, over
-- the weighted edges of autopilot.graph_edges, with networkx.pagerank's
-- semantics: damping pagerank.damping, edge weights normalised per source, the
-- rank of dangling nodes spread uniformly over the codebase, isolated nodes
-- included (they keep the teleport share). It stops when the absolute L1 change
-- of an iteration is below pagerank.tolerance (not networkx's N * tol, which
-- stops far from convergence on large graphs) and fails, writing nothing, when
-- pagerank.max_iterations are not enough. An edge whose target is in another
-- codebase is not part of either graph: skipped, and counted in the summary.
--
-- Each codebase's nodes and edges are read in one statement (one snapshot);
-- the power iteration runs in the compiled autopilot._pagerank_kernel where it
-- is installed, else in autopilot._pagerank_sql; the scores are written back
-- in this transaction, so readers see all of a run's scores or none of them.
DECLARE
    v_damping double precision := autopilot.get_setting('pagerank.damping')::double precision;
    v_tolerance double precision := autopilot.get_setting('pagerank.tolerance')::double precision;
    v_max_iterations integer := autopilot.get_setting('pagerank.max_iterations')::integer;
    v_kernel regproc := to_regprocedure(
        'autopilot._pagerank_kernel(bigint[], bigint[], bigint[], double precision[], '
        || 'double precision, double precision, integer)'
    )::regproc;
    v_compiled boolean := v_kernel IS NOT NULL;
    v_codebase text;
    v_node_ids bigint [];
    v_sources bigint [];
    v_targets bigint [];
    v_weights double precision [];
    v_ranks double precision [];
    v_iterations integer;
    v_delta double precision;
    v_skipped bigint;
    v_written bigint;
    v_codebases jsonb := '{}'::jsonb;
    v_codebase_count integer := 0;
    v_nodes bigint := 0;
    v_edges bigint := 0;
    v_ignored bigint := 0;
    v_updated bigint := 0;
    v_max_iterations_used integer := 0;
    v_max_delta double precision := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(autopilot._job_lock_key('pagerank'));

    FOR v_codebase IN SELECT DISTINCT n.codebase FROM autopilot.graph_nodes AS n ORDER BY n.codebase LOOP
        WITH nodes AS MATERIALIZED (
            SELECT n.id
            FROM autopilot.graph_nodes AS n
            WHERE n.codebase = v_codebase
        )

        SELECT
            (SELECT coalesce(array_agg(n.id ORDER BY n.id), '{}') FROM nodes AS n),
            coalesce(array_agg(e.source_id), '{}'),
            coalesce(array_agg(e.target_id), '{}'),
            coalesce(array_agg(e.weight), '{}')
        INTO v_node_ids, v_sources, v_targets, v_weights
        FROM autopilot.graph_edges AS e
        INNER JOIN nodes AS s ON e.source_id = s.id;

        IF v_compiled THEN
            -- dynamic, only because the function does not exist in every install (nothing may
            -- resolve its name where it is absent); v_kernel is its regproc, not user input
            EXECUTE format(
                'SELECT k.ranks, k.iterations, k.delta, k.ignored_edges FROM %s($1, $2, $3, $4, $5, $6, $7) AS k',
                v_kernel
            )
            INTO v_ranks, v_iterations, v_delta, v_skipped
            USING v_node_ids, v_sources, v_targets, v_weights, v_damping, v_tolerance, v_max_iterations;
        ELSE
            SELECT k.ranks, k.iterations, k.delta, k.ignored_edges
            INTO v_ranks, v_iterations, v_delta, v_skipped
            FROM autopilot._pagerank_sql(
                v_node_ids, v_sources, v_targets, v_weights, v_damping, v_tolerance, v_max_iterations
            ) AS k;
        END IF;

        IF v_delta >= v_tolerance THEN
            -- the remedy is in the message itself: the ledger (job_runs.message) keeps only that
            RAISE EXCEPTION
                'pagerank of codebase % did not converge in % iterations (pagerank.max_iterations): '
                'the last changed the ranks by % (L1), pagerank.tolerance is %; no score was written',
                v_codebase, v_iterations, v_delta, v_tolerance
            USING
                ERRCODE = 'program_limit_exceeded',
                HINT = 'Raise pagerank.max_iterations (or pagerank.tolerance) with autopilot.set_setting().';
        END IF;

        UPDATE autopilot.graph_nodes AS n
        SET pagerank = r.pagerank
        FROM unnest(v_node_ids, v_ranks) AS r (id, pagerank)
        WHERE n.id = r.id AND n.pagerank IS DISTINCT FROM r.pagerank;
        GET DIAGNOSTICS v_written = ROW_COUNT;

        v_codebases := v_codebases || jsonb_build_object(v_codebase, jsonb_build_object(
            'nodes', cardinality(v_node_ids),
            'edges', cardinality(v_sources) - v_skipped,
            'cross_codebase_edges', v_skipped,
            'iterations', v_iterations,
            'final_change', v_delta
        ));
        v_codebase_count := v_codebase_count + 1;
        v_nodes := v_nodes + cardinality(v_node_ids);
        v_edges := v_edges + cardinality(v_sources) - v_skipped;
        v_ignored := v_ignored + v_skipped;
        v_updated := v_updated + v_written;
        v_max_iterations_used := greatest(v_max_iterations_used, v_iterations);
        v_max_delta := greatest(v_max_delta, v_delta);
    END LOOP;

    RETURN jsonb_build_object(
        'rows_affected', v_updated,
        'message', format(
            'PageRank of %s %s in %s %s (%s edges) converged in at most %s iterations (final L1 change %s)%s',
            v_nodes, CASE WHEN v_nodes = 1 THEN 'node' ELSE 'nodes' END,
            v_codebase_count, CASE WHEN v_codebase_count = 1 THEN 'codebase' ELSE 'codebases' END,
            v_edges, v_max_iterations_used, v_max_delta,
            CASE WHEN v_ignored > 0 THEN format('; %s cross-codebase edges skipped', v_ignored) ELSE '' END
        ),
        'kernel', CASE WHEN v_compiled THEN 'compiled' ELSE 'sql' END,
        'nodes', v_nodes,
        'edges', v_edges,
        'cross_codebase_edges', v_ignored,
        'iterations', v_max_iterations_used,
        'final_change', v_max_delta,
        'damping', v_damping,
        'tolerance', v_tolerance,
        'codebases', v_codebases
    );
END;
$$;

-- sql/functions/centralcloud/sync_learning_to_centralcloud.sql
CREATE OR REPLACE FUNCTION autopilot.sync_learning_to_centralcloud()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- centralcloud-sync (instance side). Pushes every learned pattern changed since
-- the last successful push to the central database, tagged with this
-- instance's centralcloud.instance_id, through postgres_fdw: the connection
-- and credentials are the DBA's foreign server (setting centralcloud.server,
-- default autopilot_central) and user mapping, never a table of ours.
--
-- What is sent is each changed pattern's running totals (occurrences,
-- successes, failures, mean score and its weight, first/last seen,
-- codebases), not increments: the central database keeps the newest totals of
-- each instance and pattern and sums over instances (merge_central_patterns),
-- so sending a row twice can never double-count.
--
-- Changed since the last push: learned_patterns.changed_xid is the transaction
-- that last wrote the row; a run sends the rows with changed_xid in [last
-- horizon, xmin of its snapshot) -- every transaction below that xmin has
-- ended, so nothing committed below it can still appear -- and advances the
-- horizon in the same transaction. The remote INSERT commits just before the
-- local transaction; if the central database is unreachable or refuses the
-- rows, the run fails, nothing advances, and the next run sends it all. The
-- first run, and the first run after a restore into another cluster (whose
-- transaction ids mean nothing here), sends every pattern.
--
-- Checked first: the central database's autopilot.centralcloud_info, which
-- must speak centralcloud protocol 1. Not configured (no such foreign server):
-- nothing to do, and the run says so. Deleted patterns are not propagated: the
-- central database keeps what an instance last sent.
DECLARE
    c_protocol CONSTANT integer := 1;
    c_info CONSTANT text := 'autopilot._centralcloud_info';
    c_inbox CONSTANT text := 'autopilot._centralcloud_inbox';
    v_server text := autopilot.get_setting('centralcloud.server');
    v_instance text := autopilot.get_setting('centralcloud.instance_id');
    v_system_identifier bigint := (pg_catalog.pg_control_system()).system_identifier;
    v_mark autopilot.learning_watermarks;
    v_full boolean;
    v_horizon xid8;
    v_central_version text;
    v_central_protocol integer;
    v_sent bigint;
    v_relabelled bigint := 0;
    v_detail text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_foreign_server AS s WHERE s.srvname = v_server) THEN
        RETURN jsonb_build_object(
            'rows_affected', 0,
            'message', format(
                'not configured: there is no foreign server %I (setting centralcloud.server); nothing sent',
                v_server
            ),
            'configured', false
        );
    END IF;
    IF v_instance = '' THEN
        RAISE EXCEPTION 'centralcloud.instance_id is not set: the central database tells instances apart by it'
        USING
            ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Give this database a name unique among the instances: '
            || 'SELECT autopilot.set_setting(''centralcloud.instance_id'', ''...'');';
    END IF;

    -- one run at a time: the central database orders an instance's rows by arrival
    INSERT INTO autopilot.learning_watermarks (name) VALUES ('centralcloud-sync')
    ON CONFLICT (name) DO NOTHING;
    SELECT w.* INTO STRICT v_mark
    FROM autopilot.learning_watermarks AS w
    WHERE w.name = 'centralcloud-sync'
    FOR UPDATE;

    v_full := v_mark.system_identifier IS DISTINCT FROM v_system_identifier;
    IF v_full THEN
        -- no writer in flight: every pattern is committed and visible, and sent
        LOCK TABLE autopilot.learned_patterns IN SHARE MODE;
    END IF;
    v_horizon := pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot());
    IF NOT v_full THEN
        v_horizon := greatest(v_horizon, v_mark.horizon);
    END IF;

    -- links to the central tables for this transaction only (nothing to dump or upgrade)
    EXECUTE format(
        'CREATE FOREIGN TABLE %s (extension_version text, protocol integer) SERVER %I '
        || 'OPTIONS (schema_name %L, table_name %L)',
        c_info, v_server, 'autopilot', 'centralcloud_info'
    );
    EXECUTE format(
        'CREATE FOREIGN TABLE %s (instance_id text, pattern_type text, pattern_key text, occurrences bigint, '
        || 'successes bigint, failures bigint, mean_score double precision, score_count bigint, '
        || 'first_seen_at timestamptz, last_seen_at timestamptz, codebases text[]) SERVER %I '
        || 'OPTIONS (schema_name %L, table_name %L, batch_size %L)',
        c_inbox, v_server, 'autopilot', 'central_pattern_inbox', '1000'
    );

    BEGIN
        EXECUTE format('SELECT i.extension_version, i.protocol FROM %s AS i', c_info)
        INTO v_central_version, v_central_protocol;
        IF v_central_protocol IS DISTINCT FROM c_protocol THEN
            RAISE EXCEPTION
                'the central database runs autopilot % (centralcloud protocol %); this instance runs autopilot % '
                '(protocol %): nothing sent',
                v_central_version, v_central_protocol, autopilot.version(), c_protocol
            USING ERRCODE = 'feature_not_supported', HINT = 'Upgrade autopilot where it is older, so that both speak one protocol.';
        END IF;

        EXECUTE format(
            'INSERT INTO %s (instance_id, pattern_type, pattern_key, occurrences, successes, failures, mean_score, '
            || 'score_count, first_seen_at, last_seen_at, codebases) '
            || 'SELECT $1, p.pattern_type, p.pattern_key, p.occurrences, p.successes, p.failures, p.mean_score, '
            || 'p.score_count, p.first_seen_at, p.last_seen_at, p.codebases FROM autopilot.learned_patterns AS p '
            || 'WHERE $4 OR (p.changed_xid >= $2 AND p.changed_xid < $3)',
            c_inbox
        ) USING v_instance, v_mark.horizon, v_horizon, v_full;
        GET DIAGNOSTICS v_sent = ROW_COUNT;
    EXCEPTION
        WHEN connection_exception THEN
            GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
            RAISE EXCEPTION
                'cannot reach the central database through foreign server % (nothing sent; the next run sends it): %',
                v_server, concat_ws(': ', SQLERRM, nullif(v_detail, ''))
            USING
                ERRCODE = SQLSTATE,
                HINT = 'Check the foreign server''s host, port and dbname, and the user mapping for '
                || current_user || '.';
        WHEN undefined_table OR undefined_column THEN
            RAISE EXCEPTION
                'the database behind foreign server % has no autopilot 0.2.0 or later to receive patterns '
                '(nothing sent): %', v_server, SQLERRM
            USING
                ERRCODE = SQLSTATE,
                HINT = 'Install or upgrade autopilot in the central database (autopilot install / upgrade).';
    END;

    IF v_full THEN
        -- every pattern is sent; marks at or above the new horizon came from another cluster's
        -- transaction ids (or are this run's neighbours') and must not be sent again for nothing
        UPDATE autopilot.learned_patterns AS p
        SET changed_xid = '0'
        WHERE p.changed_xid >= v_horizon;
        GET DIAGNOSTICS v_relabelled = ROW_COUNT;
    END IF;

    UPDATE autopilot.learning_watermarks AS w
    SET horizon = v_horizon,
        system_identifier = v_system_identifier,
        rows_total = w.rows_total + v_sent,
        runs = w.runs + 1,
        updated_at = now()
    WHERE w.name = 'centralcloud-sync';

    EXECUTE format('DROP FOREIGN TABLE %s, %s', c_info, c_inbox);

    RETURN jsonb_build_object(
        'rows_affected', v_sent,
        'message', format(
            'sent %s changed %s to the central database (autopilot %s) as instance %s%s',
            v_sent, CASE WHEN v_sent = 1 THEN 'pattern' ELSE 'patterns' END, v_central_version, v_instance,
            CASE WHEN v_full THEN ' (first push from this cluster: every pattern)' ELSE '' END
        ),
        'configured', true,
        'instance_id', v_instance,
        'server', v_server,
        'central_version', v_central_version,
        'full', v_full,
        'relabelled', v_relabelled,
        'horizon', v_horizon::text,
        'previous_horizon', v_mark.horizon::text
    );
END;
$$;

-- runner-side catalog jobs whose worker does not ship with the runner are disabled by default, with
-- the reason (job_catalog.disabled_reason); a runner job's success is its worker's, not its enqueue's
ALTER TABLE autopilot.job_catalog ADD COLUMN disabled_reason text;
COMMENT ON COLUMN autopilot.job_catalog.disabled_reason IS
'Why the job ships disabled (no worker for its target ships with this version of the runner), shown by autopilot status; NULL: enabled by default. A DBA enables it with autopilot.set_job_enabled (autopilot schedule NAME --enable).';
UPDATE autopilot.job_catalog AS c
SET
    disabled_reason
    = format('no %s worker ships with the runner: enable the job when yours loads one (--worker-module)', c.target)
WHERE c.name IN (
    'registry-sync', 'code-ingest', 'graph-populate',
    'planning-seed'
);

-- sql/schema/views/job_definitions.sql
CREATE OR REPLACE VIEW autopilot.job_definitions AS
SELECT
    c.name,
    c.side,
    c.kind,
    coalesce(a.schedule, o.schedule, c.schedule) AS schedule,
    c.schedule AS default_schedule,
    coalesce(o.enabled, c.disabled_reason IS NULL) AS enabled,
    c.only_on_dow,
    c.target,
    c.args,
    c.queue,
    c.run_at_startup,
    c.description,
    autopilot._job_unavailable_reason(c.kind, c.target, c.requires_local_pg_cron)
        AS unavailable_reason,
    'autopilot:' || c.name AS cron_jobname,
    CASE
        WHEN c.kind = 'statement' THEN coalesce(a.command, c.target)
        ELSE format('CALL autopilot.run_scheduled_job(%L)', c.name)
    END AS cron_command,
    c.only_when_armed,
    a.armed_at,
    -- what pg_cron's entry should say: enabled, runnable here, and armed when it must be
    coalesce(o.enabled, c.disabled_reason IS NULL)
    AND autopilot._job_unavailable_reason(c.kind, c.target, c.requires_local_pg_cron) IS NULL
    AND (NOT c.only_when_armed OR a.job_name IS NOT NULL) AS active,
    -- why it ships disabled, while the DBA has not enabled or disabled it
    CASE WHEN o.enabled IS NULL THEN c.disabled_reason END AS disabled_reason
FROM autopilot.job_catalog AS c
LEFT JOIN autopilot.job_overrides AS o ON c.name = o.job_name
LEFT JOIN autopilot.job_arming AS a ON c.name = a.job_name;

COMMENT ON VIEW autopilot.job_definitions IS
'The catalog with the DBA''s overrides applied: the schedule and state each job should have in pg_cron, the pg_cron job name and command, why a job cannot run here (unavailable_reason), and whether pg_cron should run it (active). A job''s own arming (autopilot.job_arming) wins over overrides while it lasts.';

-- sql/schema/views/job_status.sql
CREATE OR REPLACE VIEW autopilot.job_status AS
SELECT
    d.name,
    d.side,
    d.kind,
    d.schedule,
    d.enabled,
    d.only_on_dow,
    d.run_at_startup,
    d.unavailable_reason,
    d.cron_jobname,
    last_run.id AS last_run_id,
    last_run.trigger AS last_trigger,
    last_run.status AS last_status,
    last_run.started_at AS last_started_at,
    last_run.finished_at AS last_finished_at,
    last_run.finished_at - last_run.started_at AS last_duration,
    last_run.rows_affected AS last_rows_affected,
    last_run.message AS last_message,
    last_success.started_at AS last_success_at,
    d.disabled_reason
FROM autopilot.job_definitions AS d
LEFT JOIN LATERAL (
    SELECT
        r.id,
        r.trigger,
        r.status,
        r.started_at,
        r.finished_at,
        r.rows_affected,
        r.message
    FROM autopilot.job_runs AS r
    WHERE r.job_name = d.name
    ORDER BY r.started_at DESC
    LIMIT 1
) AS last_run ON true
LEFT JOIN LATERAL (
    SELECT r.started_at
    FROM autopilot.job_runs AS r
    -- a runner job succeeds when its worker does: the run that enqueued it is not a success of it
    WHERE r.job_name = d.name AND r.status = 'succeeded' AND (d.side = 'database' OR r.trigger = 'runner')
    ORDER BY r.started_at DESC
    LIMIT 1
) AS last_success ON true;

COMMENT ON VIEW autopilot.job_status IS
'Every catalog job with its effective schedule and state, its last run and its last successful run from the ledger (for a runner-side job, the last attempt its worker completed: enqueueing it is no success), and why it ships disabled (autopilot status adds pg_cron''s view and the next run time).';

-- metrics-refresh's triggers on autopilot.tasks, autopilot.jobs and autopilot.job_runs run one trigger
-- function (there was one per table); the six triggers are re-created on it, their transition
-- tables named after their table
DROP TRIGGER tasks_metrics_insert_trg ON autopilot.tasks;
DROP TRIGGER tasks_metrics_update_trg ON autopilot.tasks;
DROP TRIGGER jobs_metrics_insert_trg ON autopilot.jobs;
DROP TRIGGER jobs_metrics_update_trg ON autopilot.jobs;
DROP TRIGGER job_runs_metrics_insert_trg ON autopilot.job_runs;
DROP TRIGGER job_runs_metrics_update_trg ON autopilot.job_runs;

-- sql/functions/agents/_mark_metrics_pending.sql
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

REVOKE ALL ON FUNCTION autopilot._mark_metrics_pending() FROM PUBLIC;

DROP FUNCTION autopilot._mark_task_metrics_pending();
DROP FUNCTION autopilot._mark_job_metrics_pending();
DROP FUNCTION autopilot._mark_run_metrics_pending();

-- metrics-refresh: p50 and p95 computed once per (subject, hour), by one percentile_cont over both
-- fractions, instead of from a window ranking every row and four filtered aggregates

-- sql/functions/agents/refresh_performance_metrics.sql
CREATE OR REPLACE FUNCTION autopilot.refresh_performance_metrics()
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

-- code intelligence: codebases with their files and symbols; code chunks gain their lines, symbol,
-- kind, language, embedding key and a full-text vector over code tokens; hybrid search
-- (search_code) and the code graph (populate_code_graph); code-ingest and graph-populate ship
-- their workers, so their catalog rows are no longer disabled.

-- sql/functions/search/_code_tokens.sql
CREATE FUNCTION autopilot._code_tokens(p_text text)
RETURNS text
LANGUAGE sql
IMMUTABLE
STRICT
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- camelCase and HTTPServer split into words, then every run of non-alphanumerics
    -- (snake_case underscores, dots, operators) becomes a blank
    SELECT pg_catalog.regexp_replace(
    pg_catalog.regexp_replace(
        pg_catalog.regexp_replace(p_text, '([[:lower:][:digit:]])([[:upper:]])', '\1 \2', 'g'),
        '([[:upper:]]+)([[:upper:]][[:lower:]])', '\1 \2', 'g'
    ),
    '[^[:alnum:]]+', ' ', 'g'
    )
$$;

COMMENT ON FUNCTION autopilot._code_tokens(text) IS
'Code text as words for full-text search: identifiers split on camelCase, snake_case and dots (getHTTPResponse_code: get HTTP Response code); used by code_chunks.search_vector and search_code''s query.';

-- sql/schema/tables/code_chunks.sql
ALTER TABLE autopilot.code_chunks
ADD COLUMN start_line integer,
ADD COLUMN end_line integer,
ADD COLUMN symbol text,
ADD COLUMN kind text,
ADD COLUMN language text,
ADD COLUMN embedding_key text,
ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    pg_catalog.to_tsvector('simple'::regconfig, autopilot._code_tokens(content))
) STORED,
ADD CONSTRAINT code_chunks_lines_check CHECK (start_line >= 1 AND end_line >= start_line);

-- search_code's full-text half, over current chunks only
CREATE INDEX code_chunks_search_idx ON autopilot.code_chunks USING gin (search_vector)
WHERE superseded_at IS NULL;
-- the embedding cache: a chunk whose key was embedded before (any file, any run) reuses that vector
CREATE INDEX code_chunks_embedding_key_idx ON autopilot.code_chunks (embedding_key)
WHERE embedding_key IS NOT NULL;

COMMENT ON COLUMN autopilot.code_chunks.symbol IS
'The definition the chunk holds, qualified (Class.method); NULL for module-level code between definitions.';
COMMENT ON COLUMN autopilot.code_chunks.embedding_key IS
'sha256 of embedding model id, chunker version and content: the embedding is computed once per key and reused by every chunk with that key.';
COMMENT ON COLUMN autopilot.code_chunks.search_vector IS
'Full-text vector of the content with identifiers split into words (autopilot._code_tokens), for search_code.';

-- sql/schema/tables/codebases.sql
CREATE TABLE autopilot.codebases (
    name text NOT NULL,
    root_path text NOT NULL,
    include_globs text[] NOT NULL DEFAULT '{}',
    exclude_globs text[] NOT NULL DEFAULT '{}',
    enabled boolean NOT NULL DEFAULT true,
    last_commit text,
    last_ingested_at timestamptz,
    last_summary jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT codebases_pkey PRIMARY KEY (name),
    -- a name goes into advisory-lock keys, logs and file names: keep it plain
    CONSTRAINT codebases_name_check CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    CONSTRAINT codebases_root_path_check CHECK (left(root_path, 1) = '/')
);

COMMENT ON TABLE autopilot.codebases IS
'Source trees that code-ingest parses, chunks and embeds (autopilot codebase add/list/remove/ingest).';
COMMENT ON COLUMN autopilot.codebases.root_path IS
'Absolute path of the tree on the runner''s machine. A git work tree is listed with git (.gitignore holds); otherwise walked without following symlinks out of it.';
COMMENT ON COLUMN autopilot.codebases.include_globs IS
'Glob patterns (** for any depth) a file''s path relative to the root must match one of; empty: every file.';
COMMENT ON COLUMN autopilot.codebases.exclude_globs IS 'Glob patterns of paths never ingested.';
COMMENT ON COLUMN autopilot.codebases.last_commit IS 'HEAD of the work tree at the last complete ingest (NULL outside git).';
COMMENT ON COLUMN autopilot.codebases.last_summary IS
'Counts of the last ingest: files seen, parsed, unchanged, skipped by reason, removed, chunks, embeddings, syntax errors.';

-- sql/schema/tables/code_files.sql
CREATE TABLE autopilot.code_files (
    codebase text NOT NULL,
    file_path text NOT NULL,
    language text,
    module_name text,
    content_hash text NOT NULL,
    size_bytes bigint NOT NULL,
    chunker_version text,
    syntax_errors integer NOT NULL DEFAULT 0,
    status text NOT NULL DEFAULT 'ingested',
    skip_reason text,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    graph_pending boolean NOT NULL DEFAULT true,
    CONSTRAINT code_files_pkey PRIMARY KEY (codebase, file_path),
    CONSTRAINT code_files_codebase_fkey FOREIGN KEY (codebase)
    REFERENCES autopilot.codebases (name) ON DELETE CASCADE,
    CONSTRAINT code_files_status_check CHECK (status IN ('ingested', 'skipped', 'removed')),
    CONSTRAINT code_files_skip_reason_check CHECK ((status = 'skipped') = (skip_reason IS NOT NULL)),
    CONSTRAINT code_files_size_check CHECK (size_bytes >= 0),
    CONSTRAINT code_files_syntax_errors_check CHECK (syntax_errors >= 0)
);

-- graph-populate: the files whose symbols changed since its last run
CREATE INDEX code_files_graph_pending_idx ON autopilot.code_files (codebase)
WHERE graph_pending;
-- graph-populate: import targets by module name
CREATE INDEX code_files_module_name_idx ON autopilot.code_files (codebase, module_name)
WHERE module_name IS NOT NULL;

COMMENT ON TABLE autopilot.code_files IS
'One row per file code-ingest has seen: the content hash that lets an unchanged file go unparsed, and why a file was skipped.';
COMMENT ON COLUMN autopilot.code_files.content_hash IS 'sha256 of the file''s bytes when last read.';
COMMENT ON COLUMN autopilot.code_files.chunker_version IS
'The chunker that cut the file''s chunks: a new chunker version re-parses every file once.';
COMMENT ON COLUMN autopilot.code_files.module_name IS
'The name other files import this one by (Python: dotted module; JavaScript/TypeScript: path without extension), matched by graph-populate.';
COMMENT ON COLUMN autopilot.code_files.graph_pending IS
'Set by code-ingest whenever the file''s symbols change (parsed again, removed, skipped); graph-populate brings such files'' nodes and edges up to date and clears it.';
COMMENT ON COLUMN autopilot.code_files.status IS
'ingested (its chunks and symbols are current), skipped (skip_reason: binary, too large, unreadable, unknown language), removed (gone from the tree).';

-- sql/schema/tables/code_symbols.sql
CREATE TABLE autopilot.code_symbols (
    id bigint GENERATED ALWAYS AS IDENTITY,
    codebase text NOT NULL,
    file_path text NOT NULL,
    role text NOT NULL,
    name text NOT NULL,
    kind text,
    line integer NOT NULL,
    CONSTRAINT code_symbols_pkey PRIMARY KEY (id),
    CONSTRAINT code_symbols_file_fkey FOREIGN KEY (codebase, file_path)
    REFERENCES autopilot.code_files (codebase, file_path) ON DELETE CASCADE,
    CONSTRAINT code_symbols_role_check CHECK (role IN ('definition', 'reference', 'import')),
    CONSTRAINT code_symbols_line_check CHECK (line >= 1)
);

-- per file: replaced in the file's transaction (and the foreign key's cascade)
CREATE INDEX code_symbols_file_idx ON autopilot.code_symbols (codebase, file_path);
-- graph-populate: resolving references and imports to definitions by name
CREATE INDEX code_symbols_name_idx ON autopilot.code_symbols (codebase, role, name);

COMMENT ON TABLE autopilot.code_symbols IS
'Definitions, references and imports found in each ingested file (tree-sitter tags queries), the input of graph-populate.';
COMMENT ON COLUMN autopilot.code_symbols.name IS
'definition: the qualified name (Class.method); reference: the name used; import: the module imported.';

-- sql/schema/tables/graph_nodes.sql
-- graph-populate: the nodes of one file, and the definitions of one name
CREATE INDEX graph_nodes_file_idx ON autopilot.graph_nodes (codebase, (attributes ->> 'file'));
CREATE INDEX graph_nodes_name_idx ON autopilot.graph_nodes (codebase, (attributes ->> 'name'))
WHERE kind <> 'file';


-- sql/functions/search/_inner_product.sql
-- The compiled inner product (src/vector.c) exists only where it can: in an
-- extension install (CREATE EXTENSION / ALTER EXTENSION UPDATE, the library
-- installed beside the control file) by a superuser (C functions are untrusted).
-- Installed as a plain schema, or by another role, _nearest_chunks() sums the
-- products in SQL (same results, slower).
DO $do$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'autopilot')
        OR NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user) THEN
        RETURN;
    END IF;
    CREATE FUNCTION autopilot._inner_product(p_left real [], p_right real [])
    RETURNS double precision
    LANGUAGE c
    IMMUTABLE
    STRICT
    PARALLEL SAFE
    -- no SET search_path, unlike every other function: C code that resolves no name has nothing to
    -- pin, and a SET clause is a GUC save and restore on every call (100,000 chunks: 62 -> 105 ms)
    AS '$libdir/autopilot', 'autopilot_inner_product';

    COMMENT ON FUNCTION autopilot._inner_product(real [], real []) IS
    'Private: the inner product of two embeddings, compiled (src/vector.c); their cosine when both are unit '
    'length. Vectors of two sizes are an error.';
EXCEPTION
    WHEN undefined_file THEN
        RAISE NOTICE 'autopilot''s library is not installed on this server: code search will rank in SQL, slower'
        USING HINT = 'Install the library (make install) before CREATE EXTENSION autopilot to use the compiled kernel.';
END;
$do$;

-- sql/functions/search/_vector_index.sql
CREATE FUNCTION autopilot._vector_index(p_embedding_model text)
RETURNS TABLE (index_name text, index_oid regclass, dimensions integer, vector_schema name)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- One row: the name autopilot.create_vector_index() gives the HNSW index of
-- p_embedding_model's chunks (code_chunks_hnsw_, the model name's letters and
-- digits, and 8 hex digits of its sha256, so that two models never share a
-- name); and, when that index is usable by autopilot._nearest_chunks, the
-- index, its dimensions and the schema of the vector extension (else NULLs).
-- Usable: valid and ready (not a half-built CONCURRENTLY one), HNSW over one
-- column of the extension's vector type with its vector_ip_ops, and pgvector
-- 0.8.0 or later (iterative scans). Names are compared in the catalogs,
-- never resolved through search_path. PL/pgSQL, not SQL: every search calls
-- it, and PL/pgSQL keeps the plan of the catalog join for the session.
BEGIN
    index_name := concat_ws(
        '_',
        'code_chunks_hnsw',
        nullif(
            btrim(
                translate(
                    left(regexp_replace(p_embedding_model, '[^A-Za-z0-9]+', '_', 'g'), 32),
                    'ABCDEFGHIJKLMNOPQRSTUVWXYZ',
                    'abcdefghijklmnopqrstuvwxyz'
                ),
                '_'
            ),
            ''
        ),
        left(encode(sha256(convert_to(p_embedding_model, 'UTF8')), 'hex'), 8)
    );
    SELECT ic.oid::regclass, a.atttypmod, n.nspname
    INTO index_oid, dimensions, vector_schema
    FROM pg_class AS ic
    INNER JOIN pg_index AS i ON ic.oid = i.indexrelid
    INNER JOIN pg_attribute AS a ON ic.oid = a.attrelid AND a.attnum = 1
    INNER JOIN pg_extension AS e ON e.extname = 'vector'
    INNER JOIN pg_namespace AS n ON e.extnamespace = n.oid
    WHERE
        ic.relname = index_name
        AND ic.relnamespace = 'autopilot'::regnamespace
        AND i.indrelid = 'autopilot.code_chunks'::regclass
        AND i.indisvalid
        AND i.indisready
        AND i.indnatts = 1
        AND ic.relam = (SELECT am.oid FROM pg_am AS am WHERE am.amname = 'hnsw')
        AND a.atttypid = (
            SELECT t.oid FROM pg_type AS t WHERE t.typname = 'vector' AND t.typnamespace = e.extnamespace
        )
        AND i.indclass[0] = (
            SELECT oc.oid FROM pg_opclass AS oc
            WHERE oc.opcname = 'vector_ip_ops' AND oc.opcnamespace = e.extnamespace AND oc.opcmethod = ic.relam
        )
        AND a.atttypmod > 0
        AND e.extversion ~ '^[0-9]+\.[0-9]+\.[0-9]+$'
        AND string_to_array(e.extversion, '.')::integer [] >= ARRAY[0, 8, 0];
    RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION autopilot._vector_index(text) IS
'Private: the name of the HNSW index of one embedding model''s chunks and, when it is usable by code search (valid, HNSW with vector_ip_ops, pgvector 0.8.0 or later), the index, its dimensions and the vector extension''s schema.';

-- sql/functions/search/_nearest_chunks.sql
CREATE FUNCTION autopilot._nearest_chunks(
    p_query real[],
    p_embedding_model text,
    p_codebase text,
    p_limit integer
)
RETURNS TABLE (chunk_id bigint, similarity double precision)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- The top p_limit current chunks by cosine to p_query (embeddings are stored
-- unit-length: the inner product is the cosine), among the chunks of
-- p_embedding_model only (two models' vectors are never compared), in one
-- codebase or all, most similar first.
--
-- Approximate, through pgvector's HNSW, where autopilot.create_vector_index()
-- made the model's index and pgvector 0.8+ is installed: iterative scans go on
-- past the chunks the codebase filter drops (hnsw.iterative_scan), and the
-- search list is at least 100 and p_limit long (hnsw.ef_search; a higher value
-- the session set is kept); both are set for the query only, the caller's
-- values restored. Should the scan still return fewer than p_limit chunks while
-- more qualify (it stops at hnsw.max_scan_tuples), the exact path answers.
-- The extension's type and operator are named with its schema, looked up in
-- pg_extension: never resolved through search_path.
--
-- Exact otherwise: the sum runs in the compiled autopilot._inner_product
-- where it is installed, else in SQL (same results, about 60 times slower).
DECLARE
    v_kernel regproc := to_regprocedure('autopilot._inner_product(real[], real[])')::regproc;
    v_schema name;
    v_dimensions integer;
    v_type text;
    v_operator text;
    v_ef_search text;
    v_iterative_scan text;
    v_ids bigint[];
    v_similarities double precision[];
BEGIN
    SELECT x.vector_schema, x.dimensions INTO v_schema, v_dimensions
    FROM autopilot._vector_index(p_embedding_model) AS x;
    IF v_schema IS NOT NULL AND array_ndims(p_query) = 1 AND cardinality(p_query) = v_dimensions
        AND p_limit > 0 THEN
        v_ef_search := current_setting('hnsw.ef_search', true);
        v_iterative_scan := current_setting('hnsw.iterative_scan', true);
        IF v_ef_search IS NULL OR v_iterative_scan IS NULL THEN
            -- pgvector's library is not loaded in this session yet: load it (a cast does), so that
            -- its settings exist and hold their configured values, to be restored after the query
            EXECUTE format('SELECT %L::%I.vector', '[0]', v_schema);
            v_ef_search := current_setting('hnsw.ef_search');
            v_iterative_scan := current_setting('hnsw.iterative_scan');
        END IF;
        PERFORM set_config(
            'hnsw.ef_search', least(1000, greatest(100, p_limit, v_ef_search::integer))::text, true
        );
        -- relaxed order: results may come slightly out of order, so they are sorted again below
        PERFORM set_config('hnsw.iterative_scan', 'relaxed_order', true);
        -- the type and the operator of the extension, named with its schema
        v_type := format('%I.vector(%s)', v_schema, v_dimensions);
        v_operator := format('%I.<#>', v_schema);
        EXECUTE format(
            'SELECT array_agg(h.id ORDER BY h.similarity DESC, h.id),
                    array_agg(h.similarity ORDER BY h.similarity DESC, h.id)
             FROM (
                 SELECT c.id, -(c.embedding::%s OPERATOR(%s) $1::%s) AS similarity
                 FROM autopilot.code_chunks AS c
                 WHERE c.embedding_model = %L AND c.superseded_at IS NULL
                   AND ($2::text IS NULL OR c.codebase = $2)
                 ORDER BY c.embedding::%s OPERATOR(%s) $1::%s
                 LIMIT $3
             ) AS h',
            v_type, v_operator, v_type,
            -- a literal, so that the planner matches the index's predicate (the parameters of a
            -- dynamic query are constants to the planner too: the codebase test folds away)
            p_embedding_model,
            v_type, v_operator, v_type
        ) INTO v_ids, v_similarities USING p_query, p_codebase, p_limit;
        PERFORM set_config('hnsw.ef_search', v_ef_search, true);
        PERFORM set_config('hnsw.iterative_scan', v_iterative_scan, true);
        IF coalesce(cardinality(v_ids), 0) = p_limit OR NOT EXISTS (
            SELECT FROM autopilot.code_chunks AS c
            WHERE
                c.embedding_model = p_embedding_model
                AND c.superseded_at IS NULL
                AND c.embedding IS NOT NULL
                AND (p_codebase IS NULL OR c.codebase = p_codebase)
                AND c.id <> ALL(coalesce(v_ids, '{}'))
        ) THEN
            RETURN QUERY SELECT u.id, u.similarity FROM unnest(v_ids, v_similarities) AS u (id, similarity);
            RETURN;
        END IF;
    END IF;

    IF v_kernel IS NOT NULL THEN
        -- dynamic, only because the function does not exist in every install; v_kernel is its
        -- regproc, not user input
        RETURN QUERY EXECUTE format(
            'SELECT c.id, %s(c.embedding, $1) AS similarity
             FROM autopilot.code_chunks AS c
             WHERE c.superseded_at IS NULL AND c.embedding_model = $2
               AND ($3 IS NULL OR c.codebase = $3)
             ORDER BY similarity DESC, c.id
             LIMIT $4',
            v_kernel
        ) USING p_query, p_embedding_model, p_codebase, p_limit;
        RETURN;
    END IF;
    RETURN QUERY
    SELECT
        c.id,
        (SELECT sum(u.a::double precision * u.b) FROM unnest(c.embedding, p_query) AS u (a, b)) AS similarity
    FROM autopilot.code_chunks AS c
    WHERE
        c.superseded_at IS NULL
        AND c.embedding_model = p_embedding_model
        AND (p_codebase IS NULL OR c.codebase = p_codebase)
    ORDER BY similarity DESC, c.id
    LIMIT p_limit;
END;
$$;

COMMENT ON FUNCTION autopilot._nearest_chunks(real[], text, text, integer) IS
'Private: the top-k current code chunks of one embedding model by cosine to a query vector: approximate through the model''s HNSW index (create_vector_index, pgvector 0.8+) where it exists, else exact (compiled kernel where installed, SQL otherwise).';

-- sql/functions/search/search_code.sql
CREATE FUNCTION autopilot.search_code(
    p_query_embedding real[],
    p_query_text text,
    p_codebase text DEFAULT NULL,
    p_limit integer DEFAULT 10,
    p_embedding_model text DEFAULT NULL
)
RETURNS TABLE (
    codebase text,
    file_path text,
    start_line integer,
    end_line integer,
    symbol text,
    kind text,
    score double precision,
    vector_rank integer,
    text_rank integer,
    chunk_id bigint
)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- Hybrid search over the current code chunks: the nearest chunks by embedding
-- (autopilot._nearest_chunks) and the best by full text over code tokens
-- (identifiers split), fused by weighted reciprocal rank:
--   score = 1/(60 + vector rank) + w/(60 + text rank), a missing rank adding nothing.
-- The text half takes the chunks holding any query word and ranks them by the
-- inverse document frequencies of the words they hold, summed (BM25's idf over
-- the chunks searched: one rare word outweighs several common ones), then by
-- ts_rank_cd. w is 1 when the query names code (a single word, or a word in
-- snake_case, camelCase, dotted or called: the text half finds names); for a
-- sentence, w is 0.5 and English stop words are left out ("a", "the", "into" are
-- in every chunk): the embedding reads a sentence better than its words do
-- (bench/code_search.py: with equal weights and every word, the words of the
-- query set's sentences, common in code, pushed targets out of the first five
-- that the embedding alone ranked there).
-- Either half may be omitted (NULL embedding, NULL or empty text). The
-- embedding is compared only with chunks of p_embedding_model; when that is
-- NULL, the one model the chunks in scope have (an error if they have several:
-- pass the model the query was embedded with).
DECLARE
    v_depth integer;
    v_model text := p_embedding_model;
    v_models bigint;
    v_dimensions integer;
    v_words text [];
    v_content_words text [];
    v_any tsquery;
    v_chunks bigint;
    v_text_weight double precision := 1;
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'search_code: p_limit must be between 1 and 1000, not %', p_limit
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_query_embedding IS NULL AND nullif(btrim(p_query_text), '') IS NULL THEN
        RAISE EXCEPTION 'search_code needs a query embedding, a query text, or both'
        USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- each half ranks more than it returns, so that fusion can promote a chunk both halves like
    v_depth := greatest(50, p_limit * 5);

    IF p_query_embedding IS NOT NULL AND v_model IS NULL THEN
        SELECT min(c.embedding_model), count(DISTINCT c.embedding_model)
        INTO v_model, v_models
        FROM autopilot.code_chunks AS c
        WHERE c.superseded_at IS NULL AND c.embedding_model IS NOT NULL
          AND (p_codebase IS NULL OR c.codebase = p_codebase);
        IF v_models > 1 THEN
            RAISE EXCEPTION 'search_code: the chunks searched are embedded with % models', v_models
            USING
                ERRCODE = 'ambiguous_parameter',
                HINT = 'Pass p_embedding_model, the model the query embedding was made with.';
        END IF;
    END IF;
    IF p_query_embedding IS NOT NULL THEN
        SELECT array_length(c.embedding, 1) INTO v_dimensions
        FROM autopilot.code_chunks AS c
        WHERE c.superseded_at IS NULL AND c.embedding_model = v_model
        LIMIT 1;
        IF v_dimensions <> coalesce(array_length(p_query_embedding, 1), 0) THEN
            RAISE EXCEPTION 'search_code: the query embedding has % dimensions, the chunks of model % have %',
                coalesce(array_length(p_query_embedding, 1), 0), v_model, v_dimensions
            USING ERRCODE = 'data_exception', HINT = 'Embed the query with the chunks'' model.';
        END IF;
    END IF;
    IF nullif(btrim(p_query_text), '') IS NOT NULL THEN
        -- the query's words as the chunks' search_vector holds them, and those that are not
        -- English stop words
        SELECT
            array_agg(u.lexeme ORDER BY u.lexeme),
            array_agg(u.lexeme ORDER BY u.lexeme) FILTER (WHERE ts_lexize('english_stem', u.lexeme) <> '{}')
        INTO v_words, v_content_words
        FROM unnest(to_tsvector('simple'::regconfig, autopilot._code_tokens(p_query_text))) AS u;
        -- a sentence: several words, none shaped like code (snake_case, camelCase, a.b, a::b, call()
        IF cardinality(v_words) > 1
            AND p_query_text !~ '[[:alnum:]]_|_[[:alnum:]]|[[:lower:]][[:upper:]]|[[:alnum:]][.:]+[[:alpha:]_]|[[:alnum:]]\('
            THEN
            v_text_weight := 0.5;
            v_words := coalesce(v_content_words, v_words);
        END IF;
        -- any word may match (a sentence rarely has all its words in one chunk)
        v_any := nullif(array_to_string(ARRAY(SELECT quote_literal(w) FROM unnest(v_words) AS w), ' | '), '')::tsquery;
        SELECT count(*) INTO v_chunks
        FROM autopilot.code_chunks AS c
        WHERE c.superseded_at IS NULL AND (p_codebase IS NULL OR c.codebase = p_codebase);
    END IF;

    RETURN QUERY
    WITH vector_hits AS (
        SELECT n.chunk_id, row_number() OVER (ORDER BY n.similarity DESC, n.chunk_id)::integer AS rank
        FROM autopilot._nearest_chunks(p_query_embedding, v_model, p_codebase, v_depth) AS n
        WHERE p_query_embedding IS NOT NULL
    ),

    -- each query word, with the chunks holding it: one index scan per word (materialized, or the
    -- planner may run the scan again for each chunk found)
    word_hits AS MATERIALIZED (
        SELECT h.ids, cardinality(h.ids) AS frequency
        FROM unnest(v_words) AS w (word)
        CROSS JOIN LATERAL (
            SELECT ARRAY(
                SELECT t.id
                FROM autopilot.code_chunks AS t
                WHERE
                    t.superseded_at IS NULL
                    AND t.search_vector @@ to_tsquery('simple'::regconfig, quote_literal(w.word))
                    AND (p_codebase IS NULL OR t.codebase = p_codebase)
            ) AS ids
        ) AS h
    ),

    text_scores AS (
        SELECT
            h.chunk_id,
            -- rounded: chunks holding the same words tie exactly, whatever the order of the sum
            round(sum(ln(1 + (v_chunks - w.frequency + 0.5) / (w.frequency + 0.5)))::numeric, 9) AS weight
        FROM word_hits AS w
        CROSS JOIN LATERAL unnest(w.ids) AS h (chunk_id)
        GROUP BY h.chunk_id
    ),

    text_hits AS (
        SELECT
            s.chunk_id,
            row_number() OVER (
                ORDER BY s.weight DESC, ts_rank_cd(t.search_vector, v_any) DESC, s.chunk_id
            )::integer AS rank
        FROM text_scores AS s
        INNER JOIN autopilot.code_chunks AS t ON s.chunk_id = t.id
        ORDER BY s.weight DESC, ts_rank_cd(t.search_vector, v_any) DESC, s.chunk_id
        LIMIT v_depth
    ),

    fused AS (
        SELECT
            coalesce(v.chunk_id, t.chunk_id) AS chunk_id,
            v.rank AS vector_rank,
            t.rank AS text_rank,
            coalesce(1.0 / (60 + v.rank), 0) + coalesce(v_text_weight / (60 + t.rank), 0) AS score
        FROM vector_hits AS v
        FULL JOIN text_hits AS t ON v.chunk_id = t.chunk_id
    )

    SELECT
        c.codebase,
        c.file_path,
        c.start_line,
        c.end_line,
        c.symbol,
        c.kind,
        f.score::double precision,
        f.vector_rank,
        f.text_rank,
        c.id
    FROM fused AS f
    INNER JOIN autopilot.code_chunks AS c ON f.chunk_id = c.id
    ORDER BY f.score DESC, c.id
    LIMIT p_limit;
END;
$$;

COMMENT ON FUNCTION autopilot.search_code(real[], text, text, integer, text) IS
'Hybrid code search: nearest chunks by embedding and full text over code tokens (rarer query words first), fused by reciprocal rank, the text half weighing half for a sentence; each row has its path, lines, symbol, score and both ranks.';

-- sql/functions/search/create_vector_index.sql
CREATE FUNCTION autopilot.create_vector_index(
    p_embedding_model text,
    p_m integer DEFAULT 16,
    p_ef_construction integer DEFAULT 128
)
RETURNS regclass
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Creates, where the vector extension (pgvector 0.8.0 or later) is installed,
-- the HNSW index through which autopilot._nearest_chunks (and so search_code)
-- finds the nearest chunks of one embedding model without comparing the query
-- with every chunk; returns it. Idempotent: an existing usable index is
-- returned as it is (whatever its m and ef_construction).
--
-- The index is partial, over the current chunks of that model only, on the
-- expression embedding::vector(N) with vector_ip_ops: embeddings are stored
-- unit-length, so the inner product ranks as the cosine does, and it is the
-- very score the exact path ranks by (no normalization in the index, a chunk
-- whose vector is not unit-length ranks the same way in both). One index per
-- model: a model has one dimension, and two models' vectors are never compared.
--
-- CREATE INDEX in a function cannot be CONCURRENTLY: the build holds a lock
-- that blocks writes to code_chunks (code-ingest waits; searches do not) for
-- as long as it takes (about a minute for 100,000 chunks x 384 on two cores;
-- raise maintenance_work_mem in the session first so the graph fits in
-- memory). pg_dump does not dump it in extension mode (the table belongs to
-- the extension): call this again after a restore. Until it exists, search
-- ranks every chunk exactly.
DECLARE
    v_index record;
    v_schema name;
    v_version text;
    v_chunks bigint;
    v_min integer;
    v_max integer;
    v_models text;
BEGIN
    IF p_embedding_model IS NULL THEN
        RAISE EXCEPTION 'create_vector_index needs an embedding model'
        USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_m IS NULL OR p_ef_construction IS NULL THEN
        RAISE EXCEPTION 'create_vector_index: p_m and p_ef_construction must not be NULL'
        USING ERRCODE = 'null_value_not_allowed', HINT = 'Leave them out for pgvector''s defaults, 16 and 64.';
    END IF;
    SELECT n.nspname, e.extversion INTO v_schema, v_version
    FROM pg_extension AS e
    INNER JOIN pg_namespace AS n ON e.extnamespace = n.oid
    WHERE e.extname = 'vector';
    IF v_schema IS NULL THEN
        RAISE EXCEPTION 'the vector extension (pgvector) is not installed in this database'
        USING
            ERRCODE = 'undefined_object',
            HINT = 'CREATE EXTENSION vector (pgvector 0.8.0 or later), then call create_vector_index again. '
            || 'Until then code search ranks every chunk exactly.';
    END IF;
    IF v_version !~ '^[0-9]+\.[0-9]+\.[0-9]+$'
        OR string_to_array(v_version, '.')::integer [] < ARRAY[0, 8, 0] THEN
        RAISE EXCEPTION 'pgvector % is installed: code search needs 0.8.0 or later (iterative index scans)', v_version
        USING
            ERRCODE = 'feature_not_supported',
            HINT = 'Install pgvector 0.8 or later on the server, then ALTER EXTENSION vector UPDATE.';
    END IF;

    -- conflicts with itself (two calls build one index) and with writes, as the build does anyway
    LOCK TABLE autopilot.code_chunks IN SHARE ROW EXCLUSIVE MODE;
    SELECT * INTO v_index FROM autopilot._vector_index(p_embedding_model);
    IF v_index.index_oid IS NOT NULL THEN
        RAISE NOTICE 'index autopilot.% exists, skipping', v_index.index_name;
        RETURN v_index.index_oid;
    END IF;
    IF to_regclass(format('autopilot.%I', v_index.index_name)) IS NOT NULL THEN
        RAISE EXCEPTION 'autopilot.% exists but code search cannot use it', v_index.index_name
        USING
            ERRCODE = 'duplicate_object',
            DETAIL = 'It is not a valid HNSW index with vector_ip_ops (a build interrupted, or made by hand).',
            HINT = format('Drop it (SELECT autopilot.drop_vector_index(%L)), then create it again.', p_embedding_model);
    END IF;

    SELECT count(*), min(array_length(c.embedding, 1)), max(array_length(c.embedding, 1))
    INTO v_chunks, v_min, v_max
    FROM autopilot.code_chunks AS c
    WHERE c.embedding_model = p_embedding_model AND c.superseded_at IS NULL AND c.embedding IS NOT NULL;
    IF v_chunks = 0 THEN
        SELECT string_agg(DISTINCT format('%L', c.embedding_model), ', ') INTO v_models
        FROM autopilot.code_chunks AS c
        WHERE c.superseded_at IS NULL AND c.embedding IS NOT NULL;
        RAISE EXCEPTION 'no current code chunk is embedded with model %', p_embedding_model
        USING
            ERRCODE = 'no_data_found',
            DETAIL = format('Models of the current chunks: %s.', coalesce(v_models, 'none')),
            HINT = 'Ingest a codebase with that model first, or name one of the models listed.';
    END IF;
    IF v_min IS DISTINCT FROM v_max THEN
        RAISE EXCEPTION 'the current chunks of model % have embeddings of % to % dimensions',
            p_embedding_model, v_min, v_max
        USING ERRCODE = 'data_exception', HINT = 'Re-embed the codebase: a model has one dimension.';
    END IF;
    IF v_max > 2000 THEN
        RAISE EXCEPTION 'pgvector''s HNSW indexes vectors of up to 2000 dimensions; model % has %',
            p_embedding_model, v_max
        USING
            ERRCODE = 'feature_not_supported',
            HINT = 'Code search keeps ranking the chunks of this model exactly.';
    END IF;

    -- names in the extension's schema are qualified, never resolved through search_path
    EXECUTE format(
        'CREATE INDEX IF NOT EXISTS %I ON autopilot.code_chunks USING hnsw '
        '((embedding::%I.vector(%s)) %I.vector_ip_ops) WITH (m = %s, ef_construction = %s) '
        'WHERE embedding_model = %L AND superseded_at IS NULL',
        v_index.index_name, v_schema, v_max, v_schema, p_m, p_ef_construction, p_embedding_model
    );
    RETURN (SELECT x.index_oid FROM autopilot._vector_index(p_embedding_model) AS x);
END;
$$;

COMMENT ON FUNCTION autopilot.create_vector_index(text, integer, integer) IS
'Where pgvector 0.8+ is installed: creates (if missing) the partial HNSW index (vector_ip_ops on embedding::vector(N)) over the current chunks of one embedding model, through which code search finds their nearest chunks approximately; returns it. Not CONCURRENTLY: the build blocks writes to code_chunks while it runs.';

-- sql/functions/search/drop_vector_index.sql
CREATE FUNCTION autopilot.drop_vector_index(p_embedding_model text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Drops the HNSW index autopilot.create_vector_index() made for one embedding
-- model, usable or not (a build interrupted leaves an invalid one); returns
-- whether there was one. Code search of that model ranks exactly from then on.
-- DROP INDEX in a function cannot be CONCURRENTLY: it waits for the searches
-- running on code_chunks and blocks new ones until it is done (a moment); at
-- top level, DROP INDEX CONCURRENTLY autopilot.<name> does not.
DECLARE
    v_name text;
BEGIN
    IF p_embedding_model IS NULL THEN
        RAISE EXCEPTION 'drop_vector_index needs an embedding model'
        USING ERRCODE = 'null_value_not_allowed';
    END IF;
    v_name := (SELECT x.index_name FROM autopilot._vector_index(p_embedding_model) AS x);
    IF NOT EXISTS (
        SELECT FROM pg_index AS i
        WHERE
            i.indexrelid = to_regclass(format('autopilot.%I', v_name))
            AND i.indrelid = 'autopilot.code_chunks'::regclass
    ) THEN
        RETURN false;
    END IF;
    EXECUTE format('DROP INDEX autopilot.%I', v_name);
    RETURN true;
END;
$$;

COMMENT ON FUNCTION autopilot.drop_vector_index(text) IS
'Drops the HNSW index of one embedding model''s code chunks (made by create_vector_index), if there is one; returns whether it did. Search of that model ranks exactly again.';

-- sql/functions/graph/_code_graph_nodes.sql
CREATE FUNCTION autopilot._code_graph_nodes(p_codebase text, p_files text[])
RETURNS TABLE (node_key text, kind text, attributes jsonb)
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT
        f.file_path,
        'file',
        jsonb_build_object(
            'file', f.file_path, 'name', coalesce(f.module_name, f.file_path), 'language', f.language
        )
    FROM autopilot.code_files AS f
    WHERE f.codebase = p_codebase AND f.file_path = ANY(p_files) AND f.status = 'ingested'
    UNION ALL
    SELECT d.node_key, d.kind, d.attributes
    FROM (
        SELECT DISTINCT ON (s.file_path, s.name)
            s.file_path || '#' || s.name AS node_key,
            coalesce(s.kind, 'definition') AS kind,
            jsonb_build_object(
                'file', s.file_path,
                'name', regexp_replace(s.name, '^.*[.]', ''),
                'qualified', s.name,
                'line', s.line
            ) AS attributes
        FROM autopilot.code_symbols AS s
        INNER JOIN autopilot.code_files AS f ON s.codebase = f.codebase AND s.file_path = f.file_path
        WHERE
            s.codebase = p_codebase AND s.file_path = ANY(p_files) AND s.role = 'definition'
            AND f.status = 'ingested'
        ORDER BY s.file_path, s.name, s.line
    ) AS d
$$;

COMMENT ON FUNCTION autopilot._code_graph_nodes(text, text[]) IS
'Private: the graph nodes the given files of a codebase should have now: one per ingested file, one per definition it holds (its first, when a name is defined twice).';

-- sql/functions/graph/populate_code_graph.sql
CREATE FUNCTION autopilot.populate_code_graph(p_codebase text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
-- graph-populate for one codebase, set-based and incremental by file: only
-- the files code-ingest marked graph_pending (parsed again, removed, skipped)
-- get their nodes rewritten, and only the files whose edges can have changed
-- get their edges rebuilt: the changed files, the files referring to a name
-- a changed file defines or defined, and the files importing a changed file.
--
-- Nodes: one per file (kind 'file', key its path) and one per definition
-- (kind function / class / method ..., key path#Qualified.name). Edges, which
-- PageRank follows from source to target:
--   file -> file        imports (weight: import statements)
--   file -> definition  calls (weight: uses of the name, shared among
--                       the definitions of that name; names defined in more
--                       than 20 places are too common to say anything)
--   definition -> file  defined_in (a file is as central as what it defines)
-- Node ids and their PageRank survive a run; one transaction, so readers see
-- a graph before or after the run, never half of it.
DECLARE
    v_changed text [];
    v_names text [];
    v_sources text [];
    v_nodes_deleted bigint;
    v_nodes_written bigint;
    v_edges_deleted bigint;
    v_edges_written bigint := 0;
    v_count bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(autopilot._job_lock_key('graph-populate:' || p_codebase));

    SELECT coalesce(array_agg(f.file_path ORDER BY f.file_path), '{}')
    INTO v_changed
    FROM autopilot.code_files AS f
    WHERE f.codebase = p_codebase AND f.graph_pending;
    IF cardinality(v_changed) = 0 THEN
        RETURN jsonb_build_object('codebase', p_codebase, 'changed_files', 0);
    END IF;

    -- names the changed files define, before this run (their nodes) and after (their symbols)
    SELECT coalesce(array_agg(DISTINCT d.name), '{}')
    INTO v_names
    FROM (
        SELECT n.attributes ->> 'name' AS name
        FROM autopilot.graph_nodes AS n
        WHERE n.codebase = p_codebase AND n.attributes ->> 'file' = ANY(v_changed) AND n.kind <> 'file'
        UNION ALL
        SELECT regexp_replace(s.name, '^.*[.]', '')
        FROM autopilot.code_symbols AS s
        WHERE s.codebase = p_codebase AND s.file_path = ANY(v_changed) AND s.role = 'definition'
    ) AS d;

    SELECT coalesce(array_agg(DISTINCT x.file_path), '{}')
    INTO v_sources
    FROM (
        SELECT unnest(v_changed) AS file_path
        UNION ALL
        SELECT s.file_path
        FROM autopilot.code_symbols AS s
        WHERE s.codebase = p_codebase AND s.role = 'reference' AND s.name = ANY(v_names)
        UNION ALL
        SELECT s.file_path
        FROM autopilot.code_symbols AS s
        INNER JOIN autopilot.code_files AS f
            ON s.codebase = f.codebase AND s.name = f.module_name
        WHERE s.codebase = p_codebase AND s.role = 'import' AND f.file_path = ANY(v_changed)
    ) AS x;

    DELETE FROM autopilot.graph_nodes AS n
    WHERE n.codebase = p_codebase AND n.attributes ->> 'file' = ANY(v_changed)
        AND NOT EXISTS (
            SELECT FROM autopilot._code_graph_nodes(p_codebase, v_changed) AS w WHERE w.node_key = n.node_key
        );
    GET DIAGNOSTICS v_nodes_deleted = ROW_COUNT;

    INSERT INTO autopilot.graph_nodes AS n (codebase, node_key, kind, attributes)
    SELECT p_codebase, w.node_key, w.kind, w.attributes
    FROM autopilot._code_graph_nodes(p_codebase, v_changed) AS w
    ON CONFLICT (codebase, node_key) DO UPDATE
    SET kind = excluded.kind, attributes = excluded.attributes, updated_at = now()
    WHERE (n.kind, n.attributes) IS DISTINCT FROM (excluded.kind, excluded.attributes);
    GET DIAGNOSTICS v_nodes_written = ROW_COUNT;

    DELETE FROM autopilot.graph_edges AS e
    USING autopilot.graph_nodes AS n
    WHERE e.source_id = n.id AND n.codebase = p_codebase AND n.attributes ->> 'file' = ANY(v_sources);
    GET DIAGNOSTICS v_edges_deleted = ROW_COUNT;

    -- definition -> its file
    INSERT INTO autopilot.graph_edges (source_id, target_id, weight, kind)
    SELECT d.id, f.id, 1, 'defined_in'
    FROM autopilot.graph_nodes AS d
    INNER JOIN autopilot.graph_nodes AS f
        ON d.codebase = f.codebase AND f.node_key = d.attributes ->> 'file'
    WHERE d.codebase = p_codebase AND d.kind <> 'file' AND d.attributes ->> 'file' = ANY(v_sources);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_edges_written := v_edges_written + v_count;

    -- file -> the files it imports
    INSERT INTO autopilot.graph_edges (source_id, target_id, weight, kind)
    SELECT src.id, dst.id, count(*), 'imports'
    FROM autopilot.code_symbols AS s
    INNER JOIN autopilot.code_files AS target
        ON s.codebase = target.codebase AND s.name = target.module_name AND target.status = 'ingested'
    INNER JOIN autopilot.graph_nodes AS src ON s.codebase = src.codebase AND s.file_path = src.node_key
    INNER JOIN autopilot.graph_nodes AS dst
        ON target.codebase = dst.codebase AND target.file_path = dst.node_key
    WHERE s.codebase = p_codebase AND s.role = 'import' AND s.file_path = ANY(v_sources) AND src.id <> dst.id
    GROUP BY src.id, dst.id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_edges_written := v_edges_written + v_count;

    -- file -> the definitions it refers to by name
    INSERT INTO autopilot.graph_edges (source_id, target_id, weight, kind)
    WITH refs AS (
        SELECT s.file_path, s.name, sum(s.occurrences) AS uses
        FROM autopilot.code_symbols AS s
        WHERE s.codebase = p_codebase AND s.role = 'reference' AND s.file_path = ANY(v_sources)
        GROUP BY s.file_path, s.name
    ),

    candidates AS (
        SELECT
            d.id,
            d.attributes ->> 'name' AS name,
            count(*) OVER (PARTITION BY d.attributes ->> 'name') AS sharing
        FROM autopilot.graph_nodes AS d
        WHERE d.codebase = p_codebase AND d.kind <> 'file'
            AND d.attributes ->> 'name' IN (SELECT r.name FROM refs AS r)
    )

    SELECT src.id, c.id, sum(r.uses::double precision / c.sharing), 'calls'
    FROM refs AS r
    INNER JOIN candidates AS c ON r.name = c.name AND c.sharing <= 20
    INNER JOIN autopilot.graph_nodes AS src ON src.codebase = p_codebase AND r.file_path = src.node_key
    GROUP BY src.id, c.id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_edges_written := v_edges_written + v_count;

    UPDATE autopilot.code_files AS f
    SET graph_pending = false
    WHERE f.codebase = p_codebase AND f.file_path = ANY(v_changed);

    RETURN jsonb_build_object(
        'codebase', p_codebase,
        'changed_files', cardinality(v_changed),
        'relinked_files', cardinality(v_sources),
        'nodes_deleted', v_nodes_deleted,
        'nodes_written', v_nodes_written,
        'edges_deleted', v_edges_deleted,
        'edges_written', v_edges_written,
        'nodes', (SELECT count(*) FROM autopilot.graph_nodes AS n WHERE n.codebase = p_codebase),
        'edges', (
            SELECT count(*) FROM autopilot.graph_edges AS e
            INNER JOIN autopilot.graph_nodes AS n ON e.source_id = n.id
            WHERE n.codebase = p_codebase
        )
    );
END;
$$;

COMMENT ON FUNCTION autopilot.populate_code_graph(text) IS
'graph-populate for one codebase: brings the code graph (file and definition nodes; imports, calls and defined_in edges) up to date with the files code-ingest changed, set-based and incremental by file; returns a summary.';

REVOKE ALL ON TABLE autopilot.codebases, autopilot.code_files, autopilot.code_symbols FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot._code_tokens(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot._vector_index(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot._nearest_chunks(real[], text, text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.search_code(real[], text, text, integer, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.create_vector_index(text, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.drop_vector_index(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot._code_graph_nodes(text, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.populate_code_graph(text) FROM PUBLIC;
DO $$
BEGIN
    IF to_regprocedure('autopilot._inner_product(real[], real[])') IS NOT NULL THEN
        REVOKE ALL ON FUNCTION autopilot._inner_product(real[], real[]) FROM PUBLIC;
    END IF;
END;
$$;

-- sql/settings/defaults.sql
INSERT INTO autopilot.settings (name, value_type, default_value, min_value, max_value, description)
VALUES
(
    'code_ingest.max_file_bytes', 'integer', '1048576', '1024', '1073741824',
    'code-ingest skips (and counts) files larger than this many bytes.'
),
(
    'embeddings.model', 'text', 'auto', NULL, NULL,
    'The embedder of code-ingest and search: minilm (all-MiniLM-L6-v2, semantic; needs the embeddings extra), '
    || 'hashing (lexical, no dependencies) or auto (minilm where installed, else hashing).'
);
UPDATE autopilot.settings SET allowed_values = ARRAY['auto', 'minilm', 'hashing']
WHERE name = 'embeddings.model';

-- sql/jobs/runner_jobs.sql, sql/jobs/database_jobs.sql: the workers ship; vacuum-analyze covers the new tables
UPDATE autopilot.job_catalog SET disabled_reason = NULL
WHERE name IN ('code-ingest', 'graph-populate', 'planning-seed', 'registry-sync');
UPDATE autopilot.job_catalog
SET
    target = 'VACUUM (ANALYZE) autopilot.agents, autopilot.agent_knowledge, autopilot.agent_knowledge_pending, '
    || 'autopilot.analysis_results, autopilot.analysis_snapshot_analyzers, autopilot.analysis_snapshot_files, '
    || 'autopilot.analysis_snapshot_findings, autopilot.analysis_snapshots, '
    || 'autopilot.backup_metadata, autopilot.backup_metadata_archive, autopilot.central_instance_patterns, '
    || 'autopilot.central_pattern_inbox, autopilot.code_chunks, autopilot.code_files, autopilot.code_symbols, '
    || 'autopilot.codebases, autopilot.global_patterns, '
    || 'autopilot.graph_edges, autopilot.graph_nodes, autopilot.index_maintenance, autopilot.job_arming, '
    || 'autopilot.job_catalog, autopilot.job_overrides, autopilot.job_runs, autopilot.jobs, '
    || 'autopilot.knowledge_artifacts, autopilot.learned_patterns, autopilot.learning_watermarks, '
    || 'autopilot.performance_metrics, autopilot.performance_metrics_pending, '
    || 'autopilot.setting_values, autopilot.settings, autopilot.task_dependencies, autopilot.tasks, '
    || 'autopilot.vector_stats_history'
WHERE name = 'vacuum-analyze';

-- sql/grants/config_dump.sql: the new tables are the user's data, dumped by pg_dump
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'autopilot') THEN
        PERFORM pg_catalog.pg_extension_config_dump('autopilot.codebases'::regclass, '');
        PERFORM pg_catalog.pg_extension_config_dump('autopilot.code_files'::regclass, '');
        PERFORM pg_catalog.pg_extension_config_dump('autopilot.code_symbols'::regclass, '');
        PERFORM pg_catalog.pg_extension_config_dump('autopilot.code_symbols_id_seq'::regclass, '');
    END IF;
END;
$$;


-- job dependencies: a job may wait for others (autopilot.jobs.depends_on, state waiting) and is
-- released when they have all completed; the runner's startup jobs run as a chain in the seed's
-- order (job_catalog.startup_order, autopilot.enqueue_startup_jobs).
-- sql/schema/tables/jobs.sql, sql/schema/tables/job_catalog.sql, sql/jobs/runner_jobs.sql,
-- sql/functions/queue/{_dependencies_met,_release_dependents,cancel,enqueue_startup_jobs}.sql,
-- sql/functions/core/_enqueue_catalog_job.sql, sql/functions/maintenance/_cleanup_old_jobs_batch.sql
-- (enqueue, enqueue_many, complete_many and retry are above, in their sections)
ALTER TABLE autopilot.jobs ADD COLUMN depends_on bigint[];
ALTER TABLE autopilot.jobs DROP CONSTRAINT jobs_state_check;
ALTER TABLE autopilot.jobs ADD CONSTRAINT jobs_state_check CHECK (
    state IN (
        'available', 'scheduled', 'executing', 'retryable', 'waiting',
        'completed', 'discarded', 'cancelled'
    )
);
ALTER TABLE autopilot.jobs ADD CONSTRAINT jobs_waiting_check CHECK (
    state <> 'waiting' OR cardinality(depends_on) > 0
);
DROP INDEX autopilot.jobs_unique_key_idx;
CREATE UNIQUE INDEX jobs_unique_key_idx ON autopilot.jobs (unique_key)
WHERE unique_key IS NOT NULL AND state IN ('available', 'scheduled', 'executing', 'retryable', 'waiting');
CREATE INDEX jobs_waiting_idx ON autopilot.jobs USING gin (depends_on)
WHERE state = 'waiting';
COMMENT ON COLUMN autopilot.jobs.state IS
'available, scheduled, executing, retryable, completed, discarded, cancelled (Oban''s states), and waiting: for the jobs of depends_on to complete.';
COMMENT ON COLUMN autopilot.jobs.depends_on IS
'The jobs this one waits for: it is waiting until all of them have completed, then available (or scheduled, when its scheduled_at is later). A dependency discarded or cancelled holds it; retrying that dependency releases it once it completes.';

ALTER TABLE autopilot.job_catalog ADD COLUMN startup_order smallint;
ALTER TABLE autopilot.job_catalog ADD CONSTRAINT job_catalog_startup_order_check CHECK (
    startup_order IS NULL OR run_at_startup
);
ALTER TABLE autopilot.job_catalog ADD CONSTRAINT job_catalog_startup_order_key UNIQUE (startup_order);
COMMENT ON COLUMN autopilot.job_catalog.startup_order IS
'The startup jobs with an order run as a chain, in that order: each waits (autopilot.jobs.depends_on) for the one before it to complete (autopilot.enqueue_startup_jobs).';
UPDATE autopilot.job_catalog AS c
SET startup_order = o.startup_order
FROM (
    VALUES
    ('knowledge-migration', 1), ('templates-data-load', 2), ('planning-seed', 3),
    ('code-ingest', 4), ('graph-populate', 5), ('rag-setup', 6)
) AS o (name, startup_order)
WHERE c.name = o.name;

-- sql/functions/queue/_dependencies_met.sql
CREATE FUNCTION autopilot._dependencies_met(p_depends_on bigint[])
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Whether every job of p_depends_on has completed (true for none). The jobs are
-- locked FOR SHARE, in id order, until the caller's transaction ends: a
-- dependency completing meanwhile (complete_many locks it FOR NO KEY UPDATE)
-- either finished before, and is seen completed here, or waits for this
-- transaction, and then finds the caller's waiting job to release. A job that
-- does not exist is an error: a dependency is always a job enqueued before.
DECLARE
    v_found integer;
    v_completed integer;
    v_missing bigint;
BEGIN
    IF coalesce(cardinality(p_depends_on), 0) = 0 THEN
        RETURN true;
    END IF;
    SELECT count(*)::integer, count(*) FILTER (WHERE d.state = 'completed')::integer
    INTO v_found, v_completed
    FROM (
        SELECT j.state
        FROM autopilot.jobs AS j
        WHERE j.id = ANY(p_depends_on)
        ORDER BY j.id
        FOR SHARE OF j
    ) AS d;
    IF v_found < (SELECT count(DISTINCT u.id) FROM unnest(p_depends_on) AS u (id)) THEN
        SELECT u.id INTO v_missing
        FROM unnest(p_depends_on) AS u (id)
        WHERE NOT EXISTS (SELECT FROM autopilot.jobs AS j WHERE j.id = u.id)
        ORDER BY u.id
        LIMIT 1;
        RAISE EXCEPTION 'job % named as a dependency does not exist', coalesce(v_missing::text, 'NULL')
        USING
            ERRCODE = 'foreign_key_violation',
            HINT = 'A job can depend only on jobs enqueued before it (their ids, as enqueue() returned them).';
    END IF;
    RETURN v_completed = v_found;
END;
$$;

COMMENT ON FUNCTION autopilot._dependencies_met(bigint[]) IS
'Private: whether all the jobs of a depends_on list have completed, locking them FOR SHARE (no race with their completion); an unknown job id is an error.';

-- sql/functions/queue/_release_dependents.sql
CREATE FUNCTION autopilot._release_dependents(p_completed bigint[])
RETURNS bigint
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    -- The waiting jobs that depend on a job of p_completed (just completed) and
    -- on nothing unfinished any more become available (scheduled, when their
    -- scheduled_at is later); the notify trigger wakes the runners. A dependency
    -- deleted since (old-job-cleanup keeps those of waiting jobs) counts as met.
    -- Returns how many were released. jobs_waiting_idx finds the candidates: with
    -- no job waiting, one probe of an empty index.
    WITH released AS (
        UPDATE autopilot.jobs AS w
        SET state = CASE WHEN w.scheduled_at > now() THEN 'scheduled' ELSE 'available' END
        WHERE
            w.state = 'waiting'
            AND w.depends_on && p_completed
            AND NOT EXISTS (
                SELECT FROM autopilot.jobs AS d
                WHERE d.id = ANY(w.depends_on) AND d.state <> 'completed'
            )
        RETURNING 1
    )

    SELECT count(*) FROM released
$$;

COMMENT ON FUNCTION autopilot._release_dependents(bigint[]) IS
'Private: makes the waiting jobs whose dependencies have all completed (one of them among p_completed) available; returns how many.';

-- sql/functions/queue/cancel.sql
CREATE OR REPLACE FUNCTION autopilot.cancel(p_id bigint, p_reason text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Cancels an unfinished job (available, scheduled, retryable, waiting or executing).
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
    WHERE j.id = p_id AND j.state IN ('available', 'scheduled', 'retryable', 'waiting', 'executing')
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

-- sql/functions/core/_enqueue_catalog_job.sql
CREATE OR REPLACE FUNCTION autopilot._enqueue_catalog_job(p_name text)
RETURNS autopilot.job_step
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- A runner-side catalog entry only enqueues. The unique key dedupes against the
-- unfinished job of the same entry, so a runner that was down for a day finds
-- one pending backup, not twenty-four. A database-side entry with a
-- cron_elsewhere_worker (pg_cron in another database) enqueues that worker.
DECLARE
    v_job autopilot.job_definitions := autopilot._catalog_job(p_name);
    v_key text := 'catalog:' || p_name;
    v_worker text := v_job.target;
    v_queue text := v_job.queue;
    v_args jsonb := v_job.args;
    v_id bigint;
BEGIN
    IF v_job.side = 'database' THEN
        SELECT c.cron_elsewhere_worker INTO v_worker FROM autopilot.job_catalog AS c WHERE c.name = p_name;
        IF v_worker IS NULL THEN
            RAISE EXCEPTION 'autopilot job % runs in the database, not on the runner', p_name
                USING ERRCODE = 'feature_not_supported',
                      HINT = format('Run it with "autopilot run %s" or CALL autopilot.run_scheduled_job(%L).', p_name, p_name);
        END IF;
        v_queue := 'default';
        v_args := '{}';
    END IF;
    INSERT INTO autopilot.jobs AS j (queue, worker, args, unique_key, meta)
    VALUES (v_queue, v_worker, v_args, v_key, jsonb_build_object('catalog', p_name))
    ON CONFLICT (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('available', 'scheduled', 'executing', 'retryable', 'waiting')
    DO NOTHING
    RETURNING j.id INTO v_id;

    IF v_id IS NOT NULL THEN
        PERFORM pg_notify('autopilot_jobs', v_queue);  -- an idle runner starts it at commit
        RETURN ROW(true, NULL, 1, format('enqueued job %s (%s)', v_id, v_worker),
                   jsonb_build_object('job_id', v_id))::autopilot.job_step;
    END IF;
    SELECT j.id INTO v_id
    FROM autopilot.jobs AS j
    WHERE j.unique_key = v_key
      AND j.state IN ('available', 'scheduled', 'executing', 'retryable', 'waiting');
    RETURN ROW(true, NULL, 0, format('job %s (%s) is still pending: not enqueued again', v_id, v_worker),
               jsonb_build_object('job_id', v_id, 'deduplicated', true))::autopilot.job_step;
END;
$$;

COMMENT ON FUNCTION autopilot._enqueue_catalog_job(text) IS
'Private: enqueues the runner job of a runner-side catalog entry (or the cron_elsewhere_worker of a database-side one) into autopilot.jobs, unless one is still unfinished.';

-- sql/functions/maintenance/_cleanup_old_jobs_batch.sql
CREATE OR REPLACE FUNCTION autopilot._cleanup_old_jobs_batch(p_cursor jsonb, p_limit integer)
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

-- sql/functions/queue/enqueue_startup_jobs.sql
CREATE FUNCTION autopilot.enqueue_startup_jobs(p_workers text[])
RETURNS TABLE (job_name text, job_id bigint, depends_on bigint[])
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- What a runner enqueues when it starts: the enabled runner-side catalog jobs
-- that run at startup and whose worker is among p_workers (the workers the
-- runner has), each with the unique key pg_cron's enqueues use (catalog:<name>),
-- so that a job already pending is not added twice. The jobs with a
-- startup_order form a chain in that order, each waiting for the one before it
-- (the seed's order: knowledge-migration, templates-data-load, planning-seed,
-- code-ingest, graph-populate, rag-setup); a link whose worker this runner
-- lacks, or that is disabled, is left out of the chain. Returns the jobs in
-- that order.
DECLARE
    v_entry record;
    v_previous bigint;
BEGIN
    FOR v_entry IN
        SELECT d.name, d.target, d.args, d.queue, c.startup_order
        FROM autopilot.job_definitions AS d
        INNER JOIN autopilot.job_catalog AS c ON d.name = c.name
        WHERE d.side = 'runner' AND d.run_at_startup AND d.enabled AND d.target = ANY(p_workers)
        ORDER BY c.startup_order NULLS LAST, d.name
    LOOP
        job_name := v_entry.name;
        depends_on := CASE WHEN v_entry.startup_order IS NOT NULL AND v_previous IS NOT NULL THEN ARRAY[v_previous] END;
        job_id := autopilot.enqueue(
            v_entry.target, v_entry.args, v_entry.queue,
            p_unique_key => 'catalog:' || v_entry.name,
            p_meta => jsonb_build_object('catalog', v_entry.name),
            p_depends_on => depends_on
        );
        IF v_entry.startup_order IS NOT NULL THEN
            v_previous := job_id;
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION autopilot.enqueue_startup_jobs(text[]) IS
'Enqueues the enabled startup jobs of the runner-side catalog that these workers run (deduplicated by the catalog''s unique keys), those with a startup_order chained in that order; returns each job with the job it waits for.';

REVOKE ALL ON FUNCTION autopilot.enqueue(text, jsonb, text, integer, timestamptz, integer, text, jsonb, bigint[])
FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot._dependencies_met(bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot._release_dependents(bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.enqueue_startup_jobs(text[]) FROM PUBLIC;


-- planning-seed and registry-sync ship their workers: tasks seeded once each from a plan
-- file (tasks.plan_key) with dependencies that task-assignment honours; analysis snapshots per codebase
-- and commit whose changes feed pattern learning. sql/schema/tables/{tasks,task_dependencies,
-- analysis_snapshots,analysis_snapshot_analyzers,analysis_snapshot_files,analysis_snapshot_findings}.sql,
-- sql/functions/agents/{assign_pending_tasks,seed_plan}.sql,
-- sql/functions/learning/record_analysis_snapshot.sql, sql/settings/defaults.sql (their catalog rows
-- and vacuum-analyze are in the code intelligence section above)

-- sql/schema/tables/tasks.sql
ALTER TABLE autopilot.tasks ADD COLUMN plan_key text;
ALTER TABLE autopilot.tasks ADD CONSTRAINT tasks_plan_key_key UNIQUE (plan_key);
COMMENT ON COLUMN autopilot.tasks.plan_key IS
'The key of the plan item this task was seeded from (planning-seed, autopilot.seed_plan); NULL for tasks written otherwise.';

-- sql/schema/tables/task_dependencies.sql
CREATE TABLE autopilot.task_dependencies (
    task_id bigint NOT NULL,
    depends_on_task_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT task_dependencies_pkey PRIMARY KEY (task_id, depends_on_task_id),
    -- a deleted task neither waits nor is waited for
    CONSTRAINT task_dependencies_task_id_fkey FOREIGN KEY (task_id)
    REFERENCES autopilot.tasks (id) ON DELETE CASCADE,
    CONSTRAINT task_dependencies_depends_on_task_id_fkey FOREIGN KEY (depends_on_task_id)
    REFERENCES autopilot.tasks (id) ON DELETE CASCADE,
    CONSTRAINT task_dependencies_self_check CHECK (task_id <> depends_on_task_id)
);

-- deleting a task: its dependents' rows are found through this index
CREATE INDEX task_dependencies_depends_on_task_id_idx ON autopilot.task_dependencies (depends_on_task_id);

COMMENT ON TABLE autopilot.task_dependencies IS
'Tasks that wait for others: task-assignment gives out a pending task only once every task it depends on has succeeded (planning-seed writes them from the plan''s depends_on).';
COMMENT ON COLUMN autopilot.task_dependencies.depends_on_task_id IS
'The task that must reach status succeeded first; while it is pending, assigned, running, failed or cancelled, task_id stays pending (counted as blocked).';

-- sql/schema/tables/analysis_snapshots.sql
CREATE TABLE autopilot.analysis_snapshots (
    id bigint GENERATED ALWAYS AS IDENTITY,
    codebase text NOT NULL,
    commit_sha text,
    digest text NOT NULL,
    files integer NOT NULL,
    findings bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT analysis_snapshots_pkey PRIMARY KEY (id),
    CONSTRAINT analysis_snapshots_codebase_fkey FOREIGN KEY (codebase)
    REFERENCES autopilot.codebases (name) ON DELETE CASCADE,
    CONSTRAINT analysis_snapshots_counts_check CHECK (files >= 0 AND findings >= 0)
);

-- a codebase's snapshots, newest first (the baseline of the next one, pruning)
CREATE INDEX analysis_snapshots_codebase_idx ON autopilot.analysis_snapshots (codebase, id);

COMMENT ON TABLE autopilot.analysis_snapshots IS
'What registry-sync''s analyzers found in a codebase at one commit (autopilot.record_analysis_snapshot): the files in analysis_snapshot_files, the counts per file and rule in analysis_snapshot_findings, each analyzer''s outcome in analysis_snapshot_analyzers.';
COMMENT ON COLUMN autopilot.analysis_snapshots.commit_sha IS 'HEAD of the work tree when the analyzers ran; NULL outside git.';
COMMENT ON COLUMN autopilot.analysis_snapshots.digest IS
'md5 of the analyzers'' outcomes, the files and the counts: a run at the same commit with the same digest records nothing new.';
COMMENT ON COLUMN autopilot.analysis_snapshots.files IS 'Files given to the analyzers.';
COMMENT ON COLUMN autopilot.analysis_snapshots.findings IS 'Findings of every analyzer that succeeded.';

-- sql/schema/tables/analysis_snapshot_analyzers.sql
CREATE TABLE autopilot.analysis_snapshot_analyzers (
    snapshot_id bigint NOT NULL,
    analyzer text NOT NULL,
    status text NOT NULL,
    version text NOT NULL,
    files integer NOT NULL DEFAULT 0,
    findings bigint NOT NULL DEFAULT 0,
    seconds double precision NOT NULL,
    message text,
    CONSTRAINT analysis_snapshot_analyzers_pkey PRIMARY KEY (snapshot_id, analyzer),
    CONSTRAINT analysis_snapshot_analyzers_snapshot_id_fkey FOREIGN KEY (snapshot_id)
    REFERENCES autopilot.analysis_snapshots (id) ON DELETE CASCADE,
    CONSTRAINT analysis_snapshot_analyzers_status_check CHECK (status IN ('ok', 'failed', 'timed_out')),
    CONSTRAINT analysis_snapshot_analyzers_message_check CHECK (status = 'ok' OR message IS NOT NULL),
    CONSTRAINT analysis_snapshot_analyzers_counts_check CHECK (files >= 0 AND findings >= 0 AND seconds >= 0)
);

COMMENT ON TABLE autopilot.analysis_snapshot_analyzers IS
'How each analyzer of a registry-sync snapshot ended: ok (its counts are in analysis_snapshot_findings), failed or timed_out (message says why; it has no counts in the snapshot and its next run is compared with its last ok one).';
COMMENT ON COLUMN autopilot.analysis_snapshot_analyzers.version IS
'The analyzer''s version and options (ruff''s version; the complexity threshold): a snapshot is compared only with one of the same version, else it is a new baseline.';
COMMENT ON COLUMN autopilot.analysis_snapshot_analyzers.files IS 'Files the analyzer read.';
COMMENT ON COLUMN autopilot.analysis_snapshot_analyzers.findings IS 'Its findings in the snapshot (the sum of its counts).';

-- sql/schema/tables/analysis_snapshot_files.sql
CREATE TABLE autopilot.analysis_snapshot_files (
    snapshot_id bigint NOT NULL,
    path text NOT NULL,
    functions integer,
    complexity_total integer,
    complexity_max integer,
    CONSTRAINT analysis_snapshot_files_pkey PRIMARY KEY (snapshot_id, path),
    CONSTRAINT analysis_snapshot_files_snapshot_id_fkey FOREIGN KEY (snapshot_id)
    REFERENCES autopilot.analysis_snapshots (id) ON DELETE CASCADE,
    -- all three or none (the complexity analyzer did not read the file)
    CONSTRAINT analysis_snapshot_files_complexity_check CHECK (
        (functions IS NULL) = (complexity_total IS NULL) AND (functions IS NULL) = (complexity_max IS NULL)
        AND functions >= 0 AND complexity_total >= functions AND complexity_max <= complexity_total
    )
);

COMMENT ON TABLE autopilot.analysis_snapshot_files IS
'The files of a registry-sync snapshot (paths relative to the codebase root), with their cyclomatic complexity when the complexity analyzer read them.';
COMMENT ON COLUMN autopilot.analysis_snapshot_files.functions IS
'Functions, methods and closures in the file (NULL: the complexity analyzer did not read it).';
COMMENT ON COLUMN autopilot.analysis_snapshot_files.complexity_total IS
'Sum of the cyclomatic complexity of its functions (each 1 + its decision points).';
COMMENT ON COLUMN autopilot.analysis_snapshot_files.complexity_max IS 'The most complex function''s cyclomatic complexity.';

-- sql/schema/tables/analysis_snapshot_findings.sql
CREATE TABLE autopilot.analysis_snapshot_findings (
    snapshot_id bigint NOT NULL,
    path text NOT NULL,
    analyzer text NOT NULL,
    rule text NOT NULL,
    findings integer NOT NULL,
    CONSTRAINT analysis_snapshot_findings_pkey PRIMARY KEY (snapshot_id, path, analyzer, rule),
    CONSTRAINT analysis_snapshot_findings_file_fkey FOREIGN KEY (snapshot_id, path)
    REFERENCES autopilot.analysis_snapshot_files (snapshot_id, path) ON DELETE CASCADE,
    CONSTRAINT analysis_snapshot_findings_findings_check CHECK (findings > 0)
);

COMMENT ON TABLE autopilot.analysis_snapshot_findings IS
'How many findings of each rule an analyzer reported in each file of a registry-sync snapshot (a file and rule without findings has no row).';
COMMENT ON COLUMN autopilot.analysis_snapshot_findings.rule IS
'The analyzer''s rule: ruff''s code (F401, invalid-syntax), cyclomatic for the complexity analyzer, the query''s name (bare-except, todo-comment ...).';

-- sql/functions/agents/assign_pending_tasks.sql
CREATE OR REPLACE FUNCTION autopilot.assign_pending_tasks()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- task-assignment. Semantics (README, "Task assignment"):
--
-- 1. Tasks assigned to an agent not seen (last_seen_at NULL, or older than
--    agents.silence_timeout) go back to pending (agent_id, assigned_at cleared).
--    Running tasks are left alone: they may have side effects.
-- 2. Pending tasks go, highest priority first, then oldest (created_at, then
--    id), each to the least-loaded agent that can take it: status active, seen
--    within the timeout, every required skill (required_skills <@ skills),
--    active_tasks < capacity. Least loaded = lowest active_tasks / capacity
--    (double precision), then lowest id -- counting the tasks this run gave it.
--    That is the sequential greedy, computed exactly: it is the unique stable
--    matching of tasks (ranked by order) to agent slots (ranked by the load
--    ratio at which the agent would take it), so it is built from the slot
--    side -- free slots in ratio order, each taking the first remaining task
--    any of its agent's skill sets offers -- over arrays in memory, with the
--    reading and the writing done set-based (one statement each).
--    A pending task that depends on a task not yet succeeded
--    (autopilot.task_dependencies) is not given out: it is counted as
--    blocked, and waits for a later run.
-- 3. Every agent that got tasks gets one NOTIFY autopilot_task_assigned,
--    payload {"agent_id": n, "task_ids": [...]} (at most 256 ids each, a
--    payload stays far below the 8000-byte limit); delivered at commit.
--
-- Locking: the job's advisory lock makes runs exclusive (a second caller waits
-- and then sees the first one's assignments). The agents it plans for are
-- locked (FOR NO KEY UPDATE SKIP LOCKED: an agent another transaction is
-- changing waits for the next run), so their load cannot move under the plan;
-- the tasks it writes are locked the same way (a task the application is
-- changing is left for the next run), and the UPDATE re-checks status and
-- skills on the row it writes. Capacity and skills are also the schema's
-- (agents_active_tasks_check, autopilot._track_agent_load), whoever writes.
DECLARE
    c_none CONSTANT bigint := 9223372036854775807;
    v_timeout interval := autopilot.get_setting('agents.silence_timeout')::interval;
    v_reclaimed bigint;
    -- the agents planned for, in id order: index i everywhere below
    v_agent_ids bigint[];
    v_load integer[];
    v_capacity integer[];
    v_dead boolean[];
    v_busy_agents bigint;
    -- candidates: the first tasks of each skill set (as many as its agents have
    -- free slots), grouped by skill set (g = 1..) and in order within a group
    v_read_ids bigint[];
    v_read_ords bigint[];
    v_read_pos integer[];
    v_task_ids bigint[];
    v_task_ord bigint[];
    v_head integer[];
    v_head_ord bigint[];
    v_group_end integer[];
    -- the skill sets agent i can serve: v_capable[v_capable_first[i] .. v_capable_last[i]]
    v_capable integer[];
    v_capable_first integer[];
    v_capable_last integer[];
    v_pending bigint;
    v_unassignable bigint;
    v_blocked bigint;
    v_left integer;
    -- slots: agent indexes, in the order of the load ratio at which they take a task
    v_slots integer[];
    v_per_agent integer;
    v_cut_key double precision;
    v_cut_agent integer;
    v_batches integer := 0;
    -- the plan
    v_plan_tasks bigint[] := '{}'::bigint[];
    v_plan_agents bigint[] := '{}'::bigint[];
    v_planned integer := 0;
    v_i integer;
    v_h integer;
    v_best integer;
    v_best_ord bigint;
    -- the outcome
    v_assigned bigint;
    v_agents_used bigint;
    v_notifications bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(autopilot._job_lock_key('task-assignment'));

    -- 1. take tasks back from silent agents
    UPDATE autopilot.tasks AS t
    SET status = 'pending', agent_id = NULL, assigned_at = NULL
    FROM autopilot.agents AS a
    WHERE t.agent_id = a.id
      AND t.status = 'assigned'
      AND (a.last_seen_at IS NULL OR a.last_seen_at < now() - v_timeout);
    GET DIAGNOSTICS v_reclaimed = ROW_COUNT;

    -- 2. the agents that can take tasks now, locked
    SELECT
        coalesce(array_agg(e.id ORDER BY e.id), '{}'),
        coalesce(array_agg(e.active_tasks ORDER BY e.id), '{}'),
        coalesce(array_agg(e.capacity ORDER BY e.id), '{}'),
        coalesce(array_agg(false ORDER BY e.id), '{}')
    INTO v_agent_ids, v_load, v_capacity, v_dead
    FROM (
        SELECT a.id, a.active_tasks, a.capacity
        FROM autopilot.agents AS a
        WHERE a.status = 'active'
          AND a.active_tasks < a.capacity
          AND a.last_seen_at >= now() - v_timeout
        ORDER BY a.id
        FOR NO KEY UPDATE SKIP LOCKED
    ) AS e;

    SELECT count(*) - cardinality(v_agent_ids)
    INTO v_busy_agents
    FROM autopilot.agents AS a
    WHERE a.status = 'active'
      AND a.active_tasks < a.capacity
      AND a.last_seen_at >= now() - v_timeout;

    -- 3. the pending tasks waiting for a task that has not succeeded (set-based
    -- from the dependencies: nothing to read when there are none)
    SELECT count(DISTINCT d.task_id)
    INTO v_blocked
    FROM autopilot.task_dependencies AS d
    INNER JOIN autopilot.tasks AS t ON d.task_id = t.id
    INNER JOIN autopilot.tasks AS p ON d.depends_on_task_id = p.id
    WHERE t.status = 'pending' AND p.status <> 'succeeded';

    -- the other pending tasks, by skill set (a set: {b,a} and {a,b,a} are {a,b}).
    -- A skill set's candidates are its first tasks in order, as many as the free
    -- slots of the agents that have every skill in it (it can never use more);
    -- they get positions first_pos .. first_pos + take - 1 of the arrays below.
    WITH pending AS MATERIALIZED (
        SELECT
            t.id,
            t.required_skills,
            row_number() OVER (ORDER BY t.priority DESC, t.created_at ASC, t.id ASC) AS ord
        FROM autopilot.tasks AS t
        WHERE t.status = 'pending'
          AND NOT EXISTS (
              SELECT
              FROM autopilot.task_dependencies AS d
              INNER JOIN autopilot.tasks AS p ON d.depends_on_task_id = p.id
              WHERE d.task_id = t.id AND p.status <> 'succeeded'
          )
    ),

    eligible AS MATERIALIZED (
        SELECT
            e.i::integer AS i,
            a.skills,
            a.capacity - a.active_tasks AS free
        FROM unnest(v_agent_ids) WITH ORDINALITY AS e (id, i)
        INNER JOIN autopilot.agents AS a ON e.id = a.id
    ),

    written AS MATERIALIZED (
        SELECT
            p.required_skills AS written,
            count(*) AS tasks,
            array(SELECT DISTINCT r.skill FROM unnest(p.required_skills) AS r (skill) ORDER BY r.skill) AS skills
        FROM pending AS p
        GROUP BY p.required_skills
    ),

    skill_sets AS MATERIALIZED (
        SELECT
            w.skills,
            sum(w.tasks)::bigint AS tasks,
            (
                SELECT coalesce(sum(e.free), 0)
                FROM eligible AS e
                WHERE w.skills <@ e.skills
            ) AS free,
            EXISTS (
                SELECT
                FROM autopilot.agents AS a
                WHERE a.status = 'active' AND a.capacity > 0 AND w.skills <@ a.skills
            ) AS assignable
        FROM written AS w
        GROUP BY w.skills
    ),

    groups AS MATERIALIZED (
        SELECT
            s.skills,
            row_number() OVER (ORDER BY s.skills)::integer AS g,
            least(s.tasks, s.free)::integer AS take,
            (sum(least(s.tasks, s.free)) OVER (ORDER BY s.skills) - least(s.tasks, s.free) + 1)::integer AS first_pos
        FROM skill_sets AS s
        WHERE s.free > 0
    ),

    candidates AS MATERIALIZED (
        SELECT
            r.id,
            r.ord,
            (r.first_pos + r.rank - 1)::integer AS pos
        FROM (
            SELECT
                p.id,
                p.ord,
                g.take,
                g.first_pos,
                row_number() OVER (PARTITION BY g.g ORDER BY p.ord) AS rank
            FROM pending AS p
            INNER JOIN written AS w ON p.required_skills = w.written
            INNER JOIN groups AS g ON w.skills = g.skills
        ) AS r
        WHERE r.rank <= r.take
    ),

    capable AS MATERIALIZED (
        SELECT
            e.i,
            g.g,
            row_number() OVER (ORDER BY e.i, g.g)::integer AS pos
        FROM eligible AS e
        INNER JOIN groups AS g ON g.skills <@ e.skills
    )

    SELECT
        (SELECT count(*) FROM pending),
        (SELECT coalesce(sum(s.tasks), 0)::bigint FROM skill_sets AS s WHERE NOT s.assignable),
        (SELECT coalesce(array_agg(g.first_pos ORDER BY g.g), '{}') FROM groups AS g),
        (SELECT coalesce(array_agg(g.first_pos + g.take - 1 ORDER BY g.g), '{}') FROM groups AS g),
        (SELECT coalesce(array_agg(c.g ORDER BY c.pos), '{}') FROM capable AS c),
        (
            SELECT coalesce(array_agg(coalesce(b.first_pos, 1) ORDER BY e.i), '{}')
            FROM eligible AS e
            LEFT JOIN (SELECT c.i, min(c.pos) AS first_pos FROM capable AS c GROUP BY c.i) AS b ON e.i = b.i
        ),
        (
            SELECT coalesce(array_agg(coalesce(b.last_pos, 0) ORDER BY e.i), '{}')
            FROM eligible AS e
            LEFT JOIN (SELECT c.i, max(c.pos) AS last_pos FROM capable AS c GROUP BY c.i) AS b ON e.i = b.i
        ),
        -- one aggregate pass: the three arrays are aligned, in no particular order
        coalesce(array_agg(c.id), '{}'),
        coalesce(array_agg(c.ord), '{}'),
        coalesce(array_agg(c.pos), '{}')
    INTO
        v_pending, v_unassignable, v_head, v_group_end, v_capable, v_capable_first, v_capable_last,
        v_read_ids, v_read_ords, v_read_pos
    FROM candidates AS c;

    v_left := cardinality(v_read_ids);
    v_task_ids := array_fill(0::bigint, ARRAY[v_left]);
    v_task_ord := array_fill(0::bigint, ARRAY[v_left]);
    FOR v_p IN 1 .. v_left LOOP
        v_task_ids[v_read_pos[v_p]] := v_read_ids[v_p];
        v_task_ord[v_read_pos[v_p]] := v_read_ords[v_p];
    END LOOP;
    v_head_ord := array_fill(0::bigint, ARRAY[cardinality(v_head)]);
    FOR v_g IN 1 .. cardinality(v_head) LOOP
        v_head_ord[v_g] := v_task_ord[v_head[v_g]];
    END LOOP;

    -- 4. the plan: free slots in the order of the load ratio at which their agent
    -- takes a task (agent i's k-th free slot: (active_tasks + k) / capacity, then
    -- i), each taking the first remaining task of the skill sets agent i serves.
    -- An agent whose slot finds nothing is done: tasks only ever get taken.
    -- Slots come in batches of at most ~2 per candidate (an agent's huge capacity
    -- is never spelled out): a batch holds every slot ordered before the first
    -- one it leaves out, so the order across batches is exact.
    WHILE v_left > 0 LOOP
        v_per_agent := greatest(1, ceil(2.0 * v_left / greatest(cardinality(v_agent_ids), 1)))::integer;

        SELECT (a.load + v_per_agent)::double precision / a.capacity, a.i::integer
        INTO v_cut_key, v_cut_agent
        FROM unnest(v_load, v_capacity, v_dead) WITH ORDINALITY AS a (load, capacity, dead, i)
        WHERE NOT a.dead AND a.capacity - a.load > v_per_agent
        ORDER BY 1, 2
        LIMIT 1;

        SELECT array_agg(s.i ORDER BY s.slot_key, s.i)
        INTO v_slots
        FROM (
            SELECT
                a.i::integer AS i,
                (a.load + k.k)::double precision / a.capacity AS slot_key
            FROM unnest(v_load, v_capacity, v_dead) WITH ORDINALITY AS a (load, capacity, dead, i)
            CROSS JOIN LATERAL generate_series(0, least(a.capacity - a.load, v_per_agent) - 1) AS k (k)
            WHERE NOT a.dead AND a.load < a.capacity
        ) AS s
        WHERE v_cut_agent IS NULL OR (s.slot_key, s.i) < (v_cut_key, v_cut_agent);

        EXIT WHEN v_slots IS NULL;
        v_batches := v_batches + 1;

        FOREACH v_i IN ARRAY v_slots LOOP
            CONTINUE WHEN v_dead[v_i];
            v_best := 0;
            v_best_ord := c_none;
            FOR v_p IN v_capable_first[v_i] .. v_capable_last[v_i] LOOP
                IF v_head_ord[v_capable[v_p]] < v_best_ord THEN
                    v_best := v_capable[v_p];
                    v_best_ord := v_head_ord[v_best];
                END IF;
            END LOOP;
            IF v_best = 0 THEN
                v_dead[v_i] := true;
                CONTINUE;
            END IF;
            v_h := v_head[v_best];
            v_planned := v_planned + 1;
            v_plan_tasks[v_planned] := v_task_ids[v_h];
            v_plan_agents[v_planned] := v_agent_ids[v_i];
            IF v_h = v_group_end[v_best] THEN
                v_head_ord[v_best] := c_none;
            ELSE
                v_head[v_best] := v_h + 1;
                v_head_ord[v_best] := v_task_ord[v_h + 1];
            END IF;
            v_load[v_i] := v_load[v_i] + 1;
            v_left := v_left - 1;
            EXIT WHEN v_left = 0;
        END LOOP;

        EXIT WHEN v_cut_agent IS NULL;
    END LOOP;

    -- 5. write the plan, announce it
    WITH plan AS (
        SELECT p.task_id, p.agent_id
        FROM unnest(v_plan_tasks, v_plan_agents) AS p (task_id, agent_id)
    ),

    claimed AS MATERIALIZED (
        SELECT
            t.id,
            p.agent_id
        FROM autopilot.tasks AS t
        INNER JOIN plan AS p ON t.id = p.task_id
        WHERE t.status = 'pending'
        FOR NO KEY UPDATE OF t SKIP LOCKED
    ),

    assigned AS (
        UPDATE autopilot.tasks AS t
        SET status = 'assigned', agent_id = c.agent_id, assigned_at = now()
        FROM claimed AS c
        WHERE t.id = c.id
          AND t.status = 'pending'
          -- the agent is locked: its skills are as planned; the task's may have changed since
          AND t.required_skills <@ (SELECT a.skills FROM autopilot.agents AS a WHERE a.id = c.agent_id)
          -- and so may its dependencies
          AND NOT EXISTS (
              SELECT
              FROM autopilot.task_dependencies AS d
              INNER JOIN autopilot.tasks AS p ON d.depends_on_task_id = p.id
              WHERE d.task_id = t.id AND p.status <> 'succeeded'
          )
        RETURNING t.id, t.agent_id
    ),

    notifications AS (
        SELECT
            pg_notify(
                'autopilot_task_assigned',
                json_build_object('agent_id', n.agent_id, 'task_ids', n.task_ids)::text
            )
        FROM (
            SELECT
                x.agent_id,
                array_agg(x.id ORDER BY x.id) AS task_ids
            FROM (
                SELECT
                    s.agent_id,
                    s.id,
                    (row_number() OVER (PARTITION BY s.agent_id ORDER BY s.id) - 1) / 256 AS chunk
                FROM assigned AS s
            ) AS x
            GROUP BY x.agent_id, x.chunk
        ) AS n
    )

    SELECT
        (SELECT count(*) FROM assigned),
        (SELECT count(DISTINCT s.agent_id) FROM assigned AS s),
        (SELECT count(*) FROM notifications)
    INTO v_assigned, v_agents_used, v_notifications;

    RETURN jsonb_build_object(
        'rows_affected', v_assigned,
        'message', format(
            'assigned %s %s to %s %s; %s taken back from silent agents; %s still pending (%s unassignable%s)',
            v_assigned, CASE WHEN v_assigned = 1 THEN 'task' ELSE 'tasks' END,
            v_agents_used, CASE WHEN v_agents_used = 1 THEN 'agent' ELSE 'agents' END,
            v_reclaimed, v_pending + v_blocked - v_assigned, v_unassignable,
            CASE WHEN v_blocked > 0 THEN format(', %s waiting for their dependencies', v_blocked) ELSE '' END
        ),
        'assigned', v_assigned,
        'agents', v_agents_used,
        'reclaimed', v_reclaimed,
        'pending', v_pending + v_blocked - v_assigned,
        'unassignable', v_unassignable,
        'blocked', v_blocked,
        'waiting', v_pending - v_assigned - v_unassignable,
        'skipped_busy_tasks', v_planned - v_assigned,
        'skipped_busy_agents', v_busy_agents,
        'notifications', v_notifications,
        'slot_batches', v_batches
    );
END;
$$;

COMMENT ON FUNCTION autopilot.assign_pending_tasks() IS
'task-assignment: takes assigned tasks back from agents silent longer than agents.silence_timeout, then gives pending tasks (highest priority, then oldest first) to active, recently seen agents with every required skill and free capacity, each to the least-loaded one (lowest active_tasks/capacity, then id); one NOTIFY autopilot_task_assigned per agent, payload {"agent_id", "task_ids"}. Unassignable tasks (no active agent with capacity has their skills) stay pending and are counted, as are blocked ones (a task they depend on, autopilot.task_dependencies, has not succeeded).';

-- sql/functions/agents/seed_plan.sql
CREATE FUNCTION autopilot.seed_plan(p_items jsonb)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- planning-seed (the runner reads the plan file and passes its items here).
--
-- p_items: a JSON array of items, each an object with
--   key              required, a non-empty string: the item's stable name
--   title            required, a non-empty string
--   required_skills  an array of non-empty strings (default: none)
--   priority         an integer (default 0; higher is assigned first)
--   depends_on       an array of keys: the item waits until each of those
--                    tasks has succeeded (a key of the plan, or of a task
--                    seeded before)
--   details          an object, copied into tasks.details
-- (a field whose value is null counts as absent).
--
-- Each item becomes one task (status pending, tasks.plan_key = its key) the
-- first time it is seen; an item whose key is already a task is left as that
-- task is -- its status, agent, title, priority and dependencies are never
-- changed, so running the seed again or with a longer plan only adds the new
-- items and never resets anyone's progress. Items that differ from their
-- task are named in the summary. New items' depends_on become rows of
-- autopilot.task_dependencies; an existing task gains no dependency (so no
-- dependency cycle can form through tasks seeded earlier).
--
-- The plan is checked whole before anything is written: an item that is not
-- an object, an unknown field, a missing or mistyped field, a key used twice,
-- a depends_on naming an unknown key, and a dependency cycle (an item
-- depending on itself included) each raise invalid_parameter_value naming the
-- item, and the transaction writes nothing. Runs are serialised by the job's
-- advisory lock, so two seeds at once add each item once.
DECLARE
    c_fields CONSTANT text[] := ARRAY['key', 'title', 'required_skills', 'priority', 'depends_on', 'details'];
    c_fields_hint CONSTANT text := 'An item''s fields: key and title (required), required_skills, priority, '
        || 'depends_on, details.';
    v_items jsonb;
    v_item jsonb;
    v_n bigint;
    v_label text;
    v_field text;
    v_keys text[];
    v_from text[];
    v_to text[];
    v_duplicate text;
    v_positions bigint[];
    v_missing text;
    v_cyclic text[];
    v_cycle text[];
    v_new_ids bigint[];
    v_edges bigint;
    v_existing bigint;
    v_differing text[];
    v_message text;
BEGIN
    IF p_items IS NULL OR jsonb_typeof(p_items) <> 'array' THEN
        RAISE EXCEPTION 'a plan is a list of items, not %',
            CASE jsonb_typeof(p_items) WHEN 'object' THEN 'a mapping' ELSE coalesce('a ' || jsonb_typeof(p_items), 'NULL') END
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass a JSON array of objects (the plan file''s items).';
    END IF;

    PERFORM pg_catalog.pg_advisory_xact_lock(autopilot._job_lock_key('planning-seed'));

    -- each item on its own: an object of known fields with values of the right type
    FOR v_item, v_n IN
        SELECT e.item, e.n FROM pg_catalog.jsonb_array_elements(p_items) WITH ORDINALITY AS e (item, n)
    LOOP
        IF pg_catalog.jsonb_typeof(v_item) <> 'object' THEN
            RAISE EXCEPTION 'plan item #% is not a mapping of fields but a %', v_n,
                CASE pg_catalog.jsonb_typeof(v_item) WHEN 'array' THEN 'list' ELSE pg_catalog.jsonb_typeof(v_item) END
                USING ERRCODE = 'invalid_parameter_value', HINT = c_fields_hint;
        END IF;
        v_item := (
            SELECT coalesce(pg_catalog.jsonb_object_agg(f.key, f.value), '{}'::jsonb)
            FROM pg_catalog.jsonb_each(v_item) AS f (key, value)
            WHERE pg_catalog.jsonb_typeof(f.value) <> 'null'
        );
        IF pg_catalog.jsonb_typeof(v_item -> 'key') = 'string' THEN
            v_label := pg_catalog.format('plan item "%s"', v_item ->> 'key');
        ELSE
            v_label := pg_catalog.format('plan item #%s', v_n);
        END IF;

        SELECT f.key INTO v_field
        FROM pg_catalog.jsonb_object_keys(v_item) AS f (key)
        WHERE f.key <> ALL (c_fields)
        ORDER BY f.key
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION '%: unknown field "%"', v_label, v_field
                USING ERRCODE = 'invalid_parameter_value', HINT = c_fields_hint;
        END IF;

        IF NOT v_item ? 'key' THEN
            RAISE EXCEPTION '%: no key', v_label
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Every item needs a key: a stable name that identifies it across runs of the seed.';
        ELSIF pg_catalog.jsonb_typeof(v_item -> 'key') <> 'string'
            OR pg_catalog.btrim(v_item ->> 'key') = ''
            OR pg_catalog.length(v_item ->> 'key') > 200
            OR (v_item ->> 'key') ~ '[[:cntrl:]]' THEN
            RAISE EXCEPTION '%: the key must be a non-empty string of at most 200 characters without control characters', v_label
                USING ERRCODE = 'invalid_parameter_value', HINT = 'Quote a key that YAML would read as a number.';
        END IF;

        IF pg_catalog.jsonb_typeof(v_item -> 'title') IS DISTINCT FROM 'string'
            OR pg_catalog.btrim(v_item ->> 'title') = '' THEN
            RAISE EXCEPTION '%: the title must be a non-empty string', v_label
                USING ERRCODE = 'invalid_parameter_value', HINT = c_fields_hint;
        END IF;

        IF v_item ? 'required_skills' AND (
            pg_catalog.jsonb_typeof(v_item -> 'required_skills') <> 'array'
            OR EXISTS (
                SELECT
                FROM pg_catalog.jsonb_array_elements(v_item -> 'required_skills') AS s (skill)
                WHERE pg_catalog.jsonb_typeof(s.skill) <> 'string' OR pg_catalog.btrim(s.skill #>> '{}') = ''
            )
        ) THEN
            RAISE EXCEPTION '%: required_skills must be a list of non-empty strings', v_label
                USING ERRCODE = 'invalid_parameter_value';
        END IF;

        IF v_item ? 'priority' AND (
            pg_catalog.jsonb_typeof(v_item -> 'priority') <> 'number'
            OR (v_item ->> 'priority')::numeric <> pg_catalog.trunc((v_item ->> 'priority')::numeric)
            OR (v_item ->> 'priority')::numeric NOT BETWEEN -2147483648 AND 2147483647
        ) THEN
            RAISE EXCEPTION '%: priority must be a whole number (a 32-bit integer)', v_label
                USING ERRCODE = 'invalid_parameter_value';
        END IF;

        IF v_item ? 'depends_on' AND (
            pg_catalog.jsonb_typeof(v_item -> 'depends_on') <> 'array'
            OR EXISTS (
                SELECT
                FROM pg_catalog.jsonb_array_elements(v_item -> 'depends_on') AS d (dependency)
                WHERE pg_catalog.jsonb_typeof(d.dependency) <> 'string'
            )
        ) THEN
            RAISE EXCEPTION '%: depends_on must be a list of item keys', v_label
                USING ERRCODE = 'invalid_parameter_value', HINT = 'Quote a key that YAML would read as a number.';
        END IF;

        IF v_item ? 'details' AND pg_catalog.jsonb_typeof(v_item -> 'details') <> 'object' THEN
            RAISE EXCEPTION '%: details must be a mapping', v_label
                USING ERRCODE = 'invalid_parameter_value';
        END IF;

        v_items := coalesce(v_items, '[]'::jsonb) || pg_catalog.jsonb_build_array(v_item);
    END LOOP;
    v_items := coalesce(v_items, '[]'::jsonb);

    -- the plan as a whole: unique keys, known dependencies, no cycle
    SELECT e.item ->> 'key', pg_catalog.array_agg(e.n ORDER BY e.n)
    INTO v_duplicate, v_positions
    FROM pg_catalog.jsonb_array_elements(v_items) WITH ORDINALITY AS e (item, n)
    GROUP BY e.item ->> 'key'
    HAVING pg_catalog.count(*) > 1
    ORDER BY pg_catalog.min(e.n)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'plan item "%" appears more than once (items #%)', v_duplicate,
            pg_catalog.array_to_string(v_positions, ', #')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Each item needs a key of its own.';
    END IF;

    SELECT pg_catalog.array_agg(e.item ->> 'key' ORDER BY e.n)
    INTO v_keys
    FROM pg_catalog.jsonb_array_elements(v_items) WITH ORDINALITY AS e (item, n);
    v_keys := coalesce(v_keys, '{}'::text[]);

    SELECT
        coalesce(pg_catalog.array_agg(x.from_key ORDER BY x.n, x.to_key), '{}'::text[]),
        coalesce(pg_catalog.array_agg(x.to_key ORDER BY x.n, x.to_key), '{}'::text[])
    INTO v_from, v_to
    FROM (
        SELECT DISTINCT
            e.n,
            e.item ->> 'key' AS from_key,
            d.to_key
        FROM pg_catalog.jsonb_array_elements(v_items) WITH ORDINALITY AS e (item, n)
        CROSS JOIN LATERAL pg_catalog.jsonb_array_elements_text(
            coalesce(e.item -> 'depends_on', '[]'::jsonb)
        ) AS d (to_key)
    ) AS x;

    SELECT pg_catalog.format('plan item "%s" depends on "%s", which is neither in the plan nor seeded before', x.f, x.t)
    INTO v_missing
    FROM unnest(v_from, v_to) WITH ORDINALITY AS x (f, t, n)
    WHERE x.t <> ALL (v_keys)
      AND NOT EXISTS (SELECT FROM autopilot.tasks AS t WHERE t.plan_key = x.t)
    ORDER BY x.n
    LIMIT 1;
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION '%', v_missing
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Add that item to the plan, or fix the key.';
    END IF;

    -- the items on a cycle: those that reach themselves (UNION: each pair once, so this ends)
    WITH RECURSIVE edges AS (
        SELECT x.f, x.t
        FROM unnest(v_from, v_to) AS x (f, t)
        WHERE x.t = ANY (v_keys)
    ),

    reach (start_key, node) AS (
        SELECT e.f, e.t FROM edges AS e
        UNION
        SELECT r.start_key, e.t
        FROM reach AS r
        INNER JOIN edges AS e ON r.node = e.f
    )

    SELECT pg_catalog.array_agg(DISTINCT r.start_key ORDER BY r.start_key)
    INTO v_cyclic
    FROM reach AS r
    WHERE r.start_key = r.node;

    IF v_cyclic IS NOT NULL THEN
        -- one cycle through the first of them, to name in the message (simple paths within the cycles)
        WITH RECURSIVE edges AS (
            SELECT x.f, x.t
            FROM unnest(v_from, v_to) AS x (f, t)
            WHERE x.f = ANY (v_cyclic) AND x.t = ANY (v_cyclic)
        ),

        walk (node, path) AS (
            SELECT e.t, ARRAY[e.f, e.t]
            FROM edges AS e
            WHERE e.f = v_cyclic[1]
            UNION ALL
            SELECT e.t, w.path || e.t
            FROM walk AS w
            INNER JOIN edges AS e ON w.node = e.f
            WHERE w.node <> v_cyclic[1] AND e.t <> ALL (w.path[2:])
        )

        SELECT w.path INTO v_cycle
        FROM walk AS w
        WHERE w.node = v_cyclic[1]
        LIMIT 1;
        RAISE EXCEPTION 'plan items form a dependency cycle: "%"', pg_catalog.array_to_string(v_cycle, '" -> "')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format(
                      'Each arrow reads "depends on". Items on a cycle: %s.',
                      pg_catalog.array_to_string(v_cyclic, ', ')
                  ),
                  HINT = 'Remove one of these depends_on entries: no task of a cycle could ever start.';
    END IF;

    -- the new items, in plan order (ids follow it: the tie-break of equal priorities)
    WITH items AS (
        SELECT e.item, e.n
        FROM pg_catalog.jsonb_array_elements(v_items) WITH ORDINALITY AS e (item, n)
    ),

    inserted AS (
        INSERT INTO autopilot.tasks (title, required_skills, priority, details, plan_key)
        SELECT
            i.item ->> 'title',
            ARRAY(SELECT pg_catalog.jsonb_array_elements_text(coalesce(i.item -> 'required_skills', '[]'::jsonb))),
            coalesce((i.item ->> 'priority')::integer, 0),
            coalesce(i.item -> 'details', '{}'::jsonb),
            i.item ->> 'key'
        FROM items AS i
        WHERE NOT EXISTS (SELECT FROM autopilot.tasks AS t WHERE t.plan_key = i.item ->> 'key')
        ORDER BY i.n
        ON CONFLICT (plan_key) DO NOTHING
        RETURNING id
    )

    SELECT coalesce(pg_catalog.array_agg(s.id), '{}'::bigint[]) INTO v_new_ids FROM inserted AS s;

    INSERT INTO autopilot.task_dependencies (task_id, depends_on_task_id)
    SELECT DISTINCT
        t.id,
        d.id
    FROM unnest(v_from, v_to) AS x (f, t)
    INNER JOIN autopilot.tasks AS t ON x.f = t.plan_key
    INNER JOIN autopilot.tasks AS d ON x.t = d.plan_key
    WHERE t.id = ANY (v_new_ids)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_edges = ROW_COUNT;

    -- the items already seeded, and those of them the plan now describes otherwise
    WITH items AS (
        SELECT e.item, e.n
        FROM pg_catalog.jsonb_array_elements(v_items) WITH ORDINALITY AS e (item, n)
    ),

    seeded AS (
        SELECT
            i.n,
            i.item,
            t.id,
            t.title,
            t.required_skills,
            t.priority,
            t.details
        FROM items AS i
        INNER JOIN autopilot.tasks AS t ON i.item ->> 'key' = t.plan_key
        WHERE t.id <> ALL (v_new_ids)
    )

    SELECT
        pg_catalog.count(*),
        pg_catalog.array_agg(s.item ->> 'key' ORDER BY s.n) FILTER (
            WHERE s.title IS DISTINCT FROM s.item ->> 'title'
            OR s.required_skills IS DISTINCT FROM ARRAY(
                SELECT pg_catalog.jsonb_array_elements_text(coalesce(s.item -> 'required_skills', '[]'::jsonb))
            )
            OR s.priority IS DISTINCT FROM coalesce((s.item ->> 'priority')::integer, 0)
            OR s.details IS DISTINCT FROM coalesce(s.item -> 'details', '{}'::jsonb)
            OR ARRAY(
                SELECT d.plan_key
                FROM autopilot.task_dependencies AS td
                INNER JOIN autopilot.tasks AS d ON td.depends_on_task_id = d.id
                WHERE td.task_id = s.id
                ORDER BY d.plan_key
            ) IS DISTINCT FROM ARRAY(
                SELECT DISTINCT k.key
                FROM pg_catalog.jsonb_array_elements_text(coalesce(s.item -> 'depends_on', '[]'::jsonb)) AS k (key)
                ORDER BY k.key
            )
        )
    INTO v_existing, v_differing
    FROM seeded AS s;

    v_message := pg_catalog.format(
        'plan of %s %s: %s %s added (%s %s), %s already seeded',
        pg_catalog.cardinality(v_keys), CASE WHEN pg_catalog.cardinality(v_keys) = 1 THEN 'item' ELSE 'items' END,
        pg_catalog.cardinality(v_new_ids), CASE WHEN pg_catalog.cardinality(v_new_ids) = 1 THEN 'task' ELSE 'tasks' END,
        v_edges, CASE WHEN v_edges = 1 THEN 'dependency' ELSE 'dependencies' END,
        v_existing
    );
    IF v_differing IS NOT NULL THEN
        v_message := v_message || pg_catalog.format(
            '; %s of them %s from the plan and %s kept as seeded: "%s"',
            pg_catalog.cardinality(v_differing),
            CASE WHEN pg_catalog.cardinality(v_differing) = 1 THEN 'differs' ELSE 'differ' END,
            CASE WHEN pg_catalog.cardinality(v_differing) = 1 THEN 'is' ELSE 'are' END,
            pg_catalog.array_to_string(v_differing[1:10], '", "')
        ) || CASE WHEN pg_catalog.cardinality(v_differing) > 10 THEN ' ...' ELSE '' END;
    END IF;

    RETURN pg_catalog.jsonb_build_object(
        'items', pg_catalog.cardinality(v_keys),
        'added', pg_catalog.cardinality(v_new_ids),
        'dependencies_added', v_edges,
        'existing', v_existing,
        'differing', coalesce(pg_catalog.to_jsonb(v_differing), '[]'::jsonb),
        'message', v_message
    );
END;
$$;

COMMENT ON FUNCTION autopilot.seed_plan(jsonb) IS
'planning-seed: adds each item of a plan (a JSON array of {key, title, required_skills, priority, depends_on, details}) as a pending task once, by its key (tasks.plan_key), with its dependencies (autopilot.task_dependencies); items already seeded are left as they are (their progress is never reset) and those that differ are named. The whole plan is checked first: an unknown field, a mistyped value, a key used twice, an unknown dependency or a cycle raises invalid_parameter_value naming the item, and nothing is written.';

-- sql/functions/learning/record_analysis_snapshot.sql
CREATE FUNCTION autopilot.record_analysis_snapshot(
    p_codebase text,
    p_commit text,
    p_analyzers jsonb,
    p_files jsonb,
    p_findings jsonb
)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- registry-sync (the runner runs the analyzers and passes what they found).
--
-- p_analyzers: [{analyzer, status (ok, failed, timed_out), version, files,
--   seconds, message}]; p_files: [{path, functions, complexity_total,
--   complexity_max}] (the complexity fields null when not measured);
-- p_findings: [{path, analyzer, rule, findings}], a count per file and rule,
--   of analyzers whose status is ok, on paths of p_files.
--
-- In one transaction, under the codebase's advisory lock: a snapshot with
-- its analyzers, files and counts, then rows of autopilot.analysis_results
-- (pattern_type 'analyzer_rule', pattern_key '<analyzer>/<rule>') that
-- pattern-learning folds. Each analyzer that succeeded is compared with its
-- own last successful snapshot of the codebase, when that one ran the same
-- version (same options):
--   * a file in both snapshots: each finding of a rule fewer is a success row,
--     each one more a failure row (one row per finding, details.path);
--   * files added or removed: their findings are netted per rule (added
--     minus removed), so a renamed or moved file changes nothing; what is
--     left is success or failure rows without a path;
--   * no such earlier snapshot (the first run, a new analyzer version, a new
--     complexity threshold): one neutral row per rule, details.findings and
--     details.files its counts -- a baseline, evidence of neither kind.
-- An analyzer that failed or timed out writes no counts and no rows; its next
-- successful run is compared with its last successful one.
--
-- A run at the commit of the codebase's last snapshot with the same digest
-- (outcomes, files, counts) records nothing and says so. Old snapshots past
-- registry_sync.keep_snapshots are deleted, except each analyzer's last
-- successful one (the next comparison's base).
DECLARE
    v_keep integer := autopilot.get_setting('registry_sync.keep_snapshots')::integer;
    v_last autopilot.analysis_snapshots;
    v_digest text;
    v_id bigint;
    v_files integer;
    v_findings bigint;
    v_analyzer record;
    v_base bigint;
    v_base_version text;
    v_successes bigint;
    v_failures bigint;
    v_total_successes bigint := 0;
    v_total_failures bigint := 0;
    v_compared jsonb := '{}'::jsonb;
    v_baselines text[] := '{}'::text[];
    v_bad text;
    v_pruned bigint;
BEGIN
    IF pg_catalog.jsonb_typeof(p_analyzers) IS DISTINCT FROM 'array'
        OR pg_catalog.jsonb_typeof(p_files) IS DISTINCT FROM 'array'
        OR pg_catalog.jsonb_typeof(p_findings) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'the analyzers, the files and the findings must each be a JSON array'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM autopilot.codebases AS c WHERE c.name = p_codebase) THEN
        RAISE EXCEPTION 'no codebase named %', coalesce(pg_catalog.quote_literal(p_codebase), 'NULL')
            USING ERRCODE = 'undefined_object', HINT = 'autopilot codebase list shows them.';
    END IF;

    SELECT pg_catalog.format('%s/%s', x.analyzer, x.rule)
    INTO v_bad
    FROM pg_catalog.jsonb_to_recordset(p_findings) AS x (path text, analyzer text, rule text, findings integer)
    WHERE NOT EXISTS (
        SELECT
        FROM pg_catalog.jsonb_to_recordset(p_analyzers) AS a (analyzer text, status text)
        WHERE a.analyzer = x.analyzer AND a.status = 'ok'
    )
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'findings of %, whose analyzer is not among the analyzers that succeeded', v_bad
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    PERFORM pg_catalog.pg_advisory_xact_lock(autopilot._job_lock_key('registry-sync:' || p_codebase));

    v_digest := pg_catalog.md5(
        coalesce((
            SELECT pg_catalog.string_agg(
                pg_catalog.jsonb_build_array(a.analyzer, a.status, a.version)::text, ',' ORDER BY a.analyzer
            )
            FROM pg_catalog.jsonb_to_recordset(p_analyzers) AS a (analyzer text, status text, version text)
        ), '')
        || E'\n' || coalesce((
            SELECT pg_catalog.string_agg(
                pg_catalog.jsonb_build_array(f.path, f.functions, f.complexity_total, f.complexity_max)::text,
                ',' ORDER BY f.path
            )
            FROM pg_catalog.jsonb_to_recordset(p_files)
                AS f (path text, functions integer, complexity_total integer, complexity_max integer)
        ), '')
        || E'\n' || coalesce((
            SELECT pg_catalog.string_agg(
                pg_catalog.jsonb_build_array(x.path, x.analyzer, x.rule, x.findings)::text,
                ',' ORDER BY x.path, x.analyzer, x.rule
            )
            FROM pg_catalog.jsonb_to_recordset(p_findings) AS x (path text, analyzer text, rule text, findings integer)
        ), '')
    );

    SELECT s.* INTO v_last
    FROM autopilot.analysis_snapshots AS s
    WHERE s.codebase = p_codebase
    ORDER BY s.id DESC
    LIMIT 1;
    IF v_last.id IS NOT NULL AND v_last.commit_sha IS NOT DISTINCT FROM p_commit AND v_last.digest = v_digest THEN
        RETURN pg_catalog.jsonb_build_object(
            'snapshot_id', v_last.id,
            'unchanged', true,
            'commit', p_commit,
            'files', v_last.files,
            'findings', v_last.findings,
            'successes', 0,
            'failures', 0,
            'compared_with', '{}'::jsonb,
            'baselines', '[]'::jsonb,
            'pruned', 0,
            'message', pg_catalog.format('unchanged since snapshot %s', v_last.id)
        );
    END IF;

    SELECT
        pg_catalog.jsonb_array_length(p_files),
        coalesce((
            SELECT pg_catalog.sum(x.findings)
            FROM pg_catalog.jsonb_to_recordset(p_findings) AS x (findings integer)
        ), 0)
    INTO v_files, v_findings;

    INSERT INTO autopilot.analysis_snapshots (codebase, commit_sha, digest, files, findings)
    VALUES (p_codebase, p_commit, v_digest, v_files, v_findings)
    RETURNING id INTO v_id;

    INSERT INTO autopilot.analysis_snapshot_analyzers (
        snapshot_id, analyzer, status, version, files, findings, seconds, message
    )
    SELECT
        v_id,
        a.analyzer,
        a.status,
        a.version,
        coalesce(a.files, 0),
        coalesce((
            SELECT pg_catalog.sum(x.findings)
            FROM pg_catalog.jsonb_to_recordset(p_findings) AS x (analyzer text, findings integer)
            WHERE x.analyzer = a.analyzer
        ), 0),
        coalesce(a.seconds, 0),
        a.message
    FROM pg_catalog.jsonb_to_recordset(p_analyzers)
        AS a (analyzer text, status text, version text, files integer, seconds double precision, message text);

    INSERT INTO autopilot.analysis_snapshot_files (snapshot_id, path, functions, complexity_total, complexity_max)
    SELECT v_id, f.path, f.functions, f.complexity_total, f.complexity_max
    FROM pg_catalog.jsonb_to_recordset(p_files)
        AS f (path text, functions integer, complexity_total integer, complexity_max integer);

    INSERT INTO autopilot.analysis_snapshot_findings (snapshot_id, path, analyzer, rule, findings)
    SELECT v_id, x.path, x.analyzer, x.rule, x.findings
    FROM pg_catalog.jsonb_to_recordset(p_findings) AS x (path text, analyzer text, rule text, findings integer);

    FOR v_analyzer IN
        SELECT a.analyzer, a.version
        FROM autopilot.analysis_snapshot_analyzers AS a
        WHERE a.snapshot_id = v_id AND a.status = 'ok'
        ORDER BY a.analyzer
    LOOP
        v_base := NULL;
        v_base_version := NULL;
        SELECT a.snapshot_id, a.version
        INTO v_base, v_base_version
        FROM autopilot.analysis_snapshot_analyzers AS a
        INNER JOIN autopilot.analysis_snapshots AS s ON a.snapshot_id = s.id
        WHERE s.codebase = p_codebase AND s.id < v_id AND a.analyzer = v_analyzer.analyzer AND a.status = 'ok'
        ORDER BY s.id DESC
        LIMIT 1;

        IF v_base IS NULL OR v_base_version IS DISTINCT FROM v_analyzer.version THEN
            INSERT INTO autopilot.analysis_results (codebase, analyzer, pattern_type, pattern_key, outcome, details)
            SELECT
                p_codebase,
                v_analyzer.analyzer,
                'analyzer_rule',
                v_analyzer.analyzer || '/' || x.rule,
                'neutral',
                pg_catalog.jsonb_build_object(
                    'snapshot_id', v_id, 'commit', p_commit, 'rule', x.rule, 'baseline', true,
                    'findings', pg_catalog.sum(x.findings), 'files', pg_catalog.count(*)
                )
            FROM autopilot.analysis_snapshot_findings AS x
            WHERE x.snapshot_id = v_id AND x.analyzer = v_analyzer.analyzer
            GROUP BY x.rule;
            v_baselines := v_baselines || v_analyzer.analyzer;
            CONTINUE;
        END IF;

        WITH new_counts AS (
            SELECT x.path, x.rule, x.findings
            FROM autopilot.analysis_snapshot_findings AS x
            WHERE x.snapshot_id = v_id AND x.analyzer = v_analyzer.analyzer
        ),

        old_counts AS (
            SELECT x.path, x.rule, x.findings
            FROM autopilot.analysis_snapshot_findings AS x
            WHERE x.snapshot_id = v_base AND x.analyzer = v_analyzer.analyzer
        ),

        common AS (
            SELECT n.path
            FROM autopilot.analysis_snapshot_files AS n
            INNER JOIN autopilot.analysis_snapshot_files AS o ON n.path = o.path
            WHERE n.snapshot_id = v_id AND o.snapshot_id = v_base
        ),

        per_file AS (
            SELECT
                coalesce(n.path, o.path) AS path,
                coalesce(n.rule, o.rule) AS rule,
                coalesce(n.findings, 0) - coalesce(o.findings, 0) AS delta
            FROM (SELECT c.* FROM new_counts AS c WHERE c.path IN (SELECT m.path FROM common AS m)) AS n
            FULL JOIN (SELECT c.* FROM old_counts AS c WHERE c.path IN (SELECT m.path FROM common AS m)) AS o
                ON n.path = o.path AND n.rule = o.rule
        ),

        netted AS (
            SELECT
                r.rule,
                pg_catalog.sum(r.delta)::bigint AS delta
            FROM (
                SELECT n.rule, n.findings AS delta
                FROM new_counts AS n
                WHERE n.path NOT IN (SELECT m.path FROM common AS m)
                UNION ALL
                SELECT o.rule, -o.findings AS delta
                FROM old_counts AS o
                WHERE o.path NOT IN (SELECT m.path FROM common AS m)
            ) AS r
            GROUP BY r.rule
        ),

        changes AS (
            SELECT p.path, p.rule, p.delta FROM per_file AS p WHERE p.delta <> 0
            UNION ALL
            SELECT NULL AS path, t.rule, t.delta FROM netted AS t WHERE t.delta <> 0
        ),

        inserted AS (
            INSERT INTO autopilot.analysis_results (codebase, analyzer, pattern_type, pattern_key, outcome, details)
            SELECT
                p_codebase,
                v_analyzer.analyzer,
                'analyzer_rule',
                v_analyzer.analyzer || '/' || c.rule,
                CASE WHEN c.delta < 0 THEN 'success' ELSE 'failure' END,
                pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                    'snapshot_id', v_id, 'since_snapshot_id', v_base, 'commit', p_commit, 'rule', c.rule,
                    'path', c.path,
                    'scope', CASE WHEN c.path IS NULL THEN 'files added or removed' END
                ))
            FROM changes AS c
            CROSS JOIN LATERAL pg_catalog.generate_series(1, pg_catalog.abs(c.delta)) AS g (n)
            ORDER BY c.path NULLS LAST, c.rule
            RETURNING outcome
        )

        SELECT
            pg_catalog.count(*) FILTER (WHERE i.outcome = 'success'),
            pg_catalog.count(*) FILTER (WHERE i.outcome = 'failure')
        INTO v_successes, v_failures
        FROM inserted AS i;

        v_total_successes := v_total_successes + v_successes;
        v_total_failures := v_total_failures + v_failures;
        v_compared := v_compared || pg_catalog.jsonb_build_object(v_analyzer.analyzer, v_base);
    END LOOP;

    -- keep the newest snapshots, and each analyzer's last successful one
    WITH ranked AS (
        SELECT
            s.id,
            pg_catalog.row_number() OVER (ORDER BY s.id DESC) AS rank
        FROM autopilot.analysis_snapshots AS s
        WHERE s.codebase = p_codebase
    ),

    bases AS (
        SELECT pg_catalog.max(a.snapshot_id) AS id
        FROM autopilot.analysis_snapshot_analyzers AS a
        INNER JOIN autopilot.analysis_snapshots AS s ON a.snapshot_id = s.id
        WHERE s.codebase = p_codebase AND a.status = 'ok'
        GROUP BY a.analyzer
    )

    DELETE FROM autopilot.analysis_snapshots AS s
    USING ranked AS r
    WHERE s.id = r.id
      AND r.rank > v_keep
      AND s.id NOT IN (SELECT b.id FROM bases AS b);
    GET DIAGNOSTICS v_pruned = ROW_COUNT;

    RETURN pg_catalog.jsonb_build_object(
        'snapshot_id', v_id,
        'unchanged', false,
        'commit', p_commit,
        'files', v_files,
        'findings', v_findings,
        'successes', v_total_successes,
        'failures', v_total_failures,
        'compared_with', v_compared,
        'baselines', pg_catalog.to_jsonb(v_baselines),
        'pruned', v_pruned,
        'message', pg_catalog.format(
            'snapshot %s: %s fixed, %s new%s', v_id, v_total_successes, v_total_failures,
            CASE
                WHEN pg_catalog.cardinality(v_baselines) > 0
                    THEN pg_catalog.format('; baseline of %s', pg_catalog.array_to_string(v_baselines, ', '))
                ELSE ''
            END
        )
    );
END;
$$;

COMMENT ON FUNCTION autopilot.record_analysis_snapshot(text, text, jsonb, jsonb, jsonb) IS
'registry-sync: records one snapshot of a codebase''s analyzers (outcomes, files with their complexity, finding counts per file and rule) and, per analyzer that succeeded, analysis_results rows for pattern-learning (pattern_type analyzer_rule, pattern_key <analyzer>/<rule>): a finding gone since its last successful snapshot of the same version is a success, a new one a failure (files added or removed netted per rule), the first snapshot neutral rows per rule. One transaction; a run identical to the last snapshot at the same commit records nothing; snapshots past registry_sync.keep_snapshots are pruned.';

-- sql/settings/defaults.sql
INSERT INTO autopilot.settings (name, value_type, default_value, min_value, max_value, description)
VALUES
(
    'planning.plan_file', 'path', '/etc/autopilot/plan.yaml', NULL, NULL,
    'planning-seed adds the items of this YAML file (on the runner''s host) as tasks, each once. No file at the '
    || 'default path: nothing to seed; no file at a path set here: the job fails.'
),
(
    'registry_sync.analyzers', 'text', 'ruff,complexity,queries', NULL, NULL,
    'Comma-separated analyzers registry-sync runs over every enabled codebase: ruff, complexity, queries, or one '
    || 'a worker module registers.'
),
(
    'registry_sync.analyzer_timeout', 'interval', '10 minutes', '1 second', '1 day',
    'registry-sync stops an analyzer that runs longer than this on one codebase: it is reported as timed out '
    || '(the job fails) and the other analyzers'' results are recorded.'
),
(
    'registry_sync.complexity_threshold', 'integer', '10', '1', '1000',
    'The complexity analyzer reports each function whose cyclomatic complexity is above this (rule cyclomatic).'
),
(
    'registry_sync.keep_snapshots', 'integer', '30', '2', '100000',
    'registry-sync keeps this many analysis snapshots per codebase (and each analyzer''s last successful one).'
);

-- sql/grants/config_dump.sql: the new tables are the user's data, dumped by pg_dump
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'autopilot') THEN
        PERFORM pg_catalog.pg_extension_config_dump('autopilot.task_dependencies'::regclass, '');
        PERFORM pg_catalog.pg_extension_config_dump('autopilot.analysis_snapshots'::regclass, '');
        PERFORM pg_catalog.pg_extension_config_dump('autopilot.analysis_snapshots_id_seq'::regclass, '');
        PERFORM pg_catalog.pg_extension_config_dump('autopilot.analysis_snapshot_analyzers'::regclass, '');
        PERFORM pg_catalog.pg_extension_config_dump('autopilot.analysis_snapshot_files'::regclass, '');
        PERFORM pg_catalog.pg_extension_config_dump('autopilot.analysis_snapshot_findings'::regclass, '');
    END IF;
END;
$$;

REVOKE ALL ON FUNCTION autopilot.seed_plan(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.record_analysis_snapshot(text, text, jsonb, jsonb, jsonb) FROM PUBLIC;

-- cron expressions: what the pg_cron of this database accepts, read from its extension version
-- (1.4: the macros @yearly ... @hourly; 1.5: "N seconds"; 1.6: "$", the last day of the month);
-- where pg_cron is in another database, what every pg_cron from 1.4 on accepts. _cron_ticks (above)
-- reads macros, "$" and seconds schedules.
-- sql/functions/cron/_pg_cron_version.sql
CREATE FUNCTION autopilot._pg_cron_version()
RETURNS text
LANGUAGE sql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT e.extversion FROM pg_catalog.pg_extension AS e WHERE e.extname = 'pg_cron' $$;

COMMENT ON FUNCTION autopilot._pg_cron_version() IS
'Private: the version of the pg_cron extension created in this database (''1.4-1'', ''1.5'', ''1.6''), or NULL when it is not created here (not installed, or in the database named by cron.database_name).';

-- sql/functions/cron/_cron_expression_error.sql
CREATE FUNCTION autopilot._cron_expression_error(p_expression text, p_pg_cron_version text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
-- Reads a schedule as pg_cron's parser does (src/entry.c, parse_cron_entry; from 1.5 on,
-- "[1-59] seconds" is tried first) and returns NULL when pg_cron accepts it and runs it as
-- written, else a sentence saying why not. p_pg_cron_version is the version of the pg_cron
-- extension in this database ('1.4-1', '1.5', '1.6'); NULL when it cannot be read (pg_cron
-- is in another database, or absent): then only what every pg_cron from 1.4 on accepts.
--   1.4: five fields (lists, ranges, steps, month and weekday names in any case, weekday 7 is
--        Sunday) or a macro: @yearly @annually @monthly @weekly @daily @midnight @hourly
--        (lower case only).
--   1.5: also "N seconds" / "N second", N from 1 to 59, any case.
--   1.6: also "$" as the day of month (its last day). Steps larger than the field's maximum
--        are refused (pg_cron 1.6.5 refuses them; 1.6.0-1.6.4 have the same extension version).
--   From pg_cron 1.6.0 on (extension version 1.5 or 1.6), @yearly and @annually are accepted
--   but never run: the parser sets no month for them. They are refused there.
-- Refused although pg_cron accepts them, because pg_cron would not run them as written: text
-- after the fifth field or a macro, or glued to a value (pg_cron ignores it, so a sixth
-- "seconds" field would silently be dropped); white space other than spaces and tabs between
-- fields; a backwards range (pg_cron reads it as no value at all); a number beyond 2147483647
-- or a sign (pg_cron wraps it around); comment lines; @reboot and @restart, which run when
-- pg_cron starts, at no time of day, so autopilot could not compute when they are due.
DECLARE
    c_names constant text[] := ARRAY['minute', 'hour', 'day of month', 'month', 'day of week'];
    c_low constant integer[] := ARRAY[0, 0, 1, 1, 0];
    c_high constant integer[] := ARRAY[59, 23, 31, 12, 7];
    c_months constant text[] := ARRAY['jan', 'feb', 'mar', 'apr', 'may', 'jun',
                                      'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
    c_days constant text[] := ARRAY['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
    c_macros constant text[] := ARRAY['yearly', 'annually', 'monthly', 'weekly', 'daily', 'midnight', 'hourly'];
    v_version integer[] := (regexp_match(p_pg_cron_version, '^([0-9]+)\.([0-9]+)'))::integer[];
    v_since_15 boolean := coalesce(v_version >= ARRAY[1, 5], false);
    v_since_16 boolean := coalesce(v_version >= ARRAY[1, 6], false);
    -- which pg_cron a refusal was measured against
    v_which text := CASE
        WHEN v_version IS NULL
            THEN 'pg_cron is not created in this database, so only what every pg_cron from 1.4 on accepts is allowed'
        ELSE format('this database has pg_cron %s', p_pg_cron_version)
    END;
    v_max_step integer;
    v_lead text;
    v_text text;
    v_match text[];
    v_fields text[];
    v_item text;
    v_parts text[];
    v_bounds text[];
    v_value text;
    v_numbers integer[];
BEGIN
    IF p_expression IS NULL OR p_expression ~ '^[[:space:]]*$' THEN
        RETURN 'the cron expression is empty';
    END IF;

    -- pg_cron 1.5+ reads sscanf(" %u secon%c%c %c") first: "5 seconds", "5second", "1 second"
    IF p_expression ~* '^[[:space:]]*[+-]?[0-9]+[[:space:]]*second' THEN
        IF NOT v_since_15 THEN
            RETURN format('seconds schedules need pg_cron 1.5 or later (%s)', v_which);
        END IF;
        v_match := regexp_match(p_expression, '^[[:space:]]*([0-9]+)[[:space:]]*(second|seconds[[:space:]]*)$', 'i');
        IF v_match IS NULL THEN
            RETURN 'a seconds schedule is "N seconds" (N from 1 to 59) with nothing after it';
        END IF;
        IF v_match[1]::numeric NOT BETWEEN 1 AND 59 THEN
            RETURN format('a seconds schedule runs every 1 to 59 seconds, not %s (for a minute or more use five fields)',
                          v_match[1]::numeric);
        END IF;
        RETURN NULL;
    END IF;

    IF octet_length(p_expression) >= 1000 THEN
        RETURN format('the cron expression is %s bytes long; pg_cron reads at most 999', octet_length(p_expression));
    END IF;

    -- pg_cron skips spaces, tabs and empty lines before the schedule
    v_lead := regexp_replace(p_expression, '^[ \t\n]+', '');
    IF starts_with(v_lead, '#') THEN
        RETURN 'the cron expression starts with a comment (pg_cron would skip that line)';
    END IF;
    IF starts_with(v_lead, '@') THEN
        -- the macro's name runs up to a space, tab or line break
        v_match := regexp_match(v_lead, '^@([^ \t\n]*)(.*)$');
        IF v_match[1] IN ('reboot', 'restart') THEN
            RETURN format('@%s runs when pg_cron starts, at no time of day: autopilot could not tell when '
                          'the job is due (next run, overdue, catch-up after an overrun); give it a time, '
                          'e.g. @daily', v_match[1]);
        END IF;
        IF NOT v_match[1] = ANY(c_macros) THEN
            RETURN format('"@%s" is not a pg_cron macro: @yearly, @annually, @monthly, @weekly, @daily, '
                          '@midnight or @hourly (lower case)', v_match[1]);
        END IF;
        IF v_match[1] IN ('yearly', 'annually') AND (v_version IS NULL OR v_since_15) THEN
            RETURN format('pg_cron 1.6 and later accept @%s but never run it (they set no month for it; %s): '
                          'write ''0 0 1 1 *''', v_match[1], v_which);
        END IF;
        IF v_match[2] !~ '^([ \t\n][[:space:]]*)?$' THEN
            RETURN format('text after @%s ("%s"): pg_cron would ignore it', v_match[1], btrim(v_match[2]));
        END IF;
        RETURN NULL;
    END IF;

    -- whatever follows the fifth field pg_cron ignores: only white space may
    v_text := regexp_replace(v_lead, '[[:space:]]+$', '');
    IF v_text ~ '^[[:space:]]' THEN
        RETURN 'the cron expression must start with its first field (pg_cron skips only spaces, tabs and line breaks before it)';
    END IF;
    v_fields := regexp_split_to_array(v_text, '[[:space:]]+');
    IF cardinality(v_fields) < 5 THEN
        RETURN format('expected 5 fields (minute hour day-of-month month day-of-week) or a macro such as @daily, found %s',
                      cardinality(v_fields));
    ELSIF cardinality(v_fields) > 5 THEN
        RETURN format('expected 5 fields (minute hour day-of-month month day-of-week), found %s: pg_cron would '
                      'ignore everything after the fifth ("%s"); it has no seconds or years field',
                      cardinality(v_fields), array_to_string(v_fields[6:], ' '));
    END IF;
    IF v_text !~ '^[^[:space:]]+([ \t]+[^[:space:]]+){4}$' THEN
        RETURN 'the fields must be separated by spaces or tabs (pg_cron ends the schedule at a line break)';
    END IF;

    -- pg_cron 1.6.5 refuses a step above the field's maximum; before, it meant the first value only
    v_max_step := CASE WHEN v_version IS NULL OR v_since_16 THEN NULL ELSE 2147483647 END;
    FOR i IN 1..5 LOOP
        IF i = 3 AND v_fields[i] = '$' THEN
            IF NOT v_since_16 THEN
                RETURN format('day of month "$" (the last day of the month) needs pg_cron 1.6 or later (%s)', v_which);
            END IF;
            CONTINUE;
        END IF;
        -- pg_cron ignores what follows a value up to the next blank: ';' in '5;', ...
        IF v_fields[i] ~ '[^0-9A-Za-z*/,-]' THEN
            RETURN format('%s field "%s": "%s" cannot appear in a cron field',
                          c_names[i], v_fields[i], substring(v_fields[i] FROM '[^0-9A-Za-z*/,-]'));
        END IF;
        FOREACH v_item IN ARRAY string_to_array(lower(v_fields[i]), ',') LOOP
            -- item := (* | value | value-value) [/step]
            v_parts := regexp_match(v_item, '^([^/]+)(?:/([0-9]+))?$');
            IF v_parts IS NULL THEN
                RETURN format('%s field "%s": "%s" is not a value, range or step', c_names[i], v_fields[i], v_item);
            END IF;
            IF v_parts[2] IS NOT NULL THEN
                IF v_parts[2]::numeric < 1 THEN
                    RETURN format('%s field "%s": the step must be at least 1', c_names[i], v_fields[i]);
                END IF;
                IF v_parts[2]::numeric > coalesce(v_max_step, c_high[i]) THEN
                    RETURN CASE
                        WHEN v_max_step IS NULL THEN format(
                            '%s field "%s": step %s is larger than %s, which pg_cron 1.6.5 and later refuse (%s)',
                            c_names[i], v_fields[i], v_parts[2]::numeric, c_high[i], v_which)
                        ELSE format('%s field "%s": step %s is larger than pg_cron reads (2147483647)',
                                    c_names[i], v_fields[i], v_parts[2]::numeric)
                    END;
                END IF;
            END IF;
            IF v_parts[1] = '*' THEN
                CONTINUE;
            END IF;
            v_bounds := string_to_array(v_parts[1], '-');
            IF '' = ANY(v_bounds) THEN
                RETURN format('%s field "%s": "%s" is not a value, range or step', c_names[i], v_fields[i], v_item);
            END IF;
            IF cardinality(v_bounds) > 2 THEN
                RETURN format('%s field "%s": "%s" is not a range', c_names[i], v_fields[i], v_item);
            END IF;
            IF cardinality(v_bounds) = 1 AND v_parts[2] IS NOT NULL THEN
                RETURN format('%s field "%s": a step needs * or a range before it', c_names[i], v_fields[i]);
            END IF;
            v_numbers := ARRAY[]::integer[];
            FOREACH v_value IN ARRAY v_bounds LOOP
                IF v_value ~ '^[0-9]+$' THEN
                    IF v_value::numeric NOT BETWEEN c_low[i] AND c_high[i] THEN
                        RETURN format('%s field "%s": %s is out of range %s-%s',
                                      c_names[i], v_fields[i], v_value::numeric, c_low[i], c_high[i]);
                    END IF;
                    v_numbers := v_numbers || v_value::integer;
                ELSIF i = 4 AND v_value = ANY(c_months) THEN
                    v_numbers := v_numbers || array_position(c_months, v_value);
                ELSIF i = 5 AND v_value = ANY(c_days) THEN
                    v_numbers := v_numbers || (array_position(c_days, v_value) - 1);
                ELSE
                    RETURN format('%s field "%s": "%s" is not a number%s',
                                  c_names[i], v_fields[i], v_value,
                                  CASE i WHEN 4 THEN ' or month name' WHEN 5 THEN ' or weekday name' ELSE '' END);
                END IF;
            END LOOP;
            IF cardinality(v_numbers) = 2 AND v_numbers[1] > v_numbers[2] THEN
                RETURN format('%s field "%s": range %s-%s runs backwards (pg_cron would read it as no value at all%s)',
                              c_names[i], v_fields[i], v_numbers[1], v_numbers[2],
                              CASE WHEN i = 5 AND v_numbers[2] = 0 THEN '; sun is 0: end a range on Sunday with 7' END);
            END IF;
        END LOOP;
    END LOOP;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION autopilot._cron_expression_error(text, text) IS
'Private: NULL when the pg_cron of the given extension version (NULL: any from 1.4 on) accepts the schedule and runs it as written, else a sentence saying what is wrong.';

-- sql/functions/cron/cron_expression_error.sql
CREATE OR REPLACE FUNCTION autopilot.cron_expression_error(p_expression text)
RETURNS text
LANGUAGE sql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
-- Checks a schedule against the grammar of the pg_cron created in this database (its
-- extension version); where pg_cron is in another database or absent, against what every
-- pg_cron from 1.4 on accepts. Returns NULL when valid, else a sentence saying what is wrong.
SELECT autopilot._cron_expression_error(p_expression, autopilot._pg_cron_version())
$$;

COMMENT ON FUNCTION autopilot.cron_expression_error(text) IS
'NULL when pg_cron accepts the schedule and runs it as written, else a sentence saying what is wrong: five fields in UTC or a macro (@hourly, @daily, ...); "N seconds" with pg_cron 1.5+ and "$" (last day of the month) with 1.6+ in this database. Where pg_cron is in another database, only what every pg_cron from 1.4 on accepts.';

-- sql/functions/cron/is_valid_cron.sql
CREATE OR REPLACE FUNCTION autopilot.is_valid_cron(p_expression text)
RETURNS boolean
LANGUAGE sql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT autopilot.cron_expression_error(p_expression) IS NULL $$;

COMMENT ON FUNCTION autopilot.is_valid_cron(text) IS
'true when pg_cron accepts the schedule and runs it as written (the grammar of the pg_cron in this database, else of every pg_cron from 1.4 on); autopilot.cron_expression_error() says why not.';

-- sql/functions/cron/_assert_valid_cron.sql
CREATE OR REPLACE FUNCTION autopilot._assert_valid_cron(p_expression text)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_error text := autopilot.cron_expression_error(p_expression);
BEGIN
    IF v_error IS NOT NULL THEN
        RAISE EXCEPTION 'invalid cron expression "%": %', p_expression, v_error
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Five fields, in UTC: minute hour day-of-month month day-of-week, e.g. ''*/5 * * * *''; '
                         'or a macro: @hourly, @daily, @weekly, @monthly.';
    END IF;
END;
$$;

COMMENT ON FUNCTION autopilot._assert_valid_cron(text) IS
'Private: raises invalid_parameter_value with the reason when the text is not a valid cron expression.';

REVOKE ALL ON FUNCTION autopilot._pg_cron_version() FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot._cron_expression_error(text, text) FROM PUBLIC;

-- cron_expression_error() now calls the two functions above: a role that could call it (or
-- is_valid_cron) before the upgrade still can
DO $$
DECLARE
    v_grantee text;
BEGIN
    FOR v_grantee IN
        SELECT DISTINCT a.grantee::regrole::text
        FROM pg_catalog.pg_proc AS p
        CROSS JOIN LATERAL pg_catalog.aclexplode(p.proacl) AS a
        WHERE p.oid = 'autopilot.cron_expression_error(text)'::regprocedure
          AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner
    LOOP
        EXECUTE format(
            'GRANT EXECUTE ON FUNCTION autopilot._cron_expression_error(text, text), '
            'autopilot._pg_cron_version() TO %s', v_grantee
        );
    END LOOP;
END;
$$;

-- backups: `autopilot backups verify` marks a verified backup whose file is gone `missing`, and one whose
-- file no longer holds its recorded sha256 `corrupt` (sql/schema/tables/backup_metadata.sql); the check
-- only widens, so every existing row passes it
ALTER TABLE autopilot.backup_metadata DROP CONSTRAINT backup_metadata_status_check;
ALTER TABLE autopilot.backup_metadata ADD CONSTRAINT backup_metadata_status_check CHECK (
    status IN ('running', 'succeeded', 'verified', 'failed', 'pruned', 'missing', 'corrupt')
);


-- knowledge and templates: knowledge-migration (the JSON templates of a directory), template-sync (those
-- of a git repository) and template-embed write knowledge artifacts, which keep their earlier versions;
-- templates-data-load keeps autopilot.template_data in step with the templates_data directory;
-- search_knowledge searches the artifacts. The four workers ship, so their catalog rows are not
-- disabled (the disabled_reason UPDATE above leaves them out).
-- sql/functions/search/{_knowledge_text,search_knowledge}.sql,
-- sql/schema/tables/{knowledge_artifacts,knowledge_artifact_versions,template_data,template_sync_state}.sql,
-- sql/settings/defaults.sql, sql/jobs/runner_jobs.sql, sql/jobs/database_jobs.sql (vacuum-analyze),
-- sql/grants/config_dump.sql

-- sql/functions/search/_knowledge_text.sql
CREATE FUNCTION autopilot._knowledge_text(p_artifact_type text, p_name text, p_content jsonb)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- The text of a knowledge artifact: what template-embed embeds (its
    -- embedding_hash covers it), so that search_knowledge finds the artifact by
    -- its whole content. One line each: its type, its name, the content's
    -- "description" (when a string), the strings of its "tags", then every other
    -- string of the content in document order (object keys are not text). The
    -- description comes first because an embedder reads a bounded prefix
    -- (MiniLM: 128 tokens).
    SELECT
        p_artifact_type
        || E'\n' || p_name
        || coalesce(
            E'\n' || (
                SELECT string_agg(s.value #>> '{}', E'\n' ORDER BY s.part, s.position)
                FROM (
                    SELECT 1 AS part, 1::bigint AS position, p_content -> 'description' AS value
                    UNION ALL
                    SELECT 2, t.position, t.value
                    FROM jsonb_path_query(p_content -> 'tags', 'strict $.**') WITH ORDINALITY AS t (value, position)
                    UNION ALL
                    SELECT 3, r.position, r.value
                    FROM jsonb_path_query(
                        CASE
                            WHEN jsonb_typeof(p_content) = 'object'
                                THEN p_content - ARRAY['type', 'name', 'description', 'tags']
                            ELSE p_content
                        END,
                        'strict $.**'
                    ) WITH ORDINALITY AS r (value, position)
                ) AS s
                WHERE jsonb_typeof(s.value) = 'string'
            ),
            ''
        )
$$;

COMMENT ON FUNCTION autopilot._knowledge_text(text, text, jsonb) IS
'Private: the text of a knowledge artifact (type, name, description, tags, then every other string of its content, one per line): what template-embed embeds.';

-- sql/schema/tables/knowledge_artifacts.sql
ALTER TABLE autopilot.knowledge_artifacts
ADD COLUMN version integer NOT NULL DEFAULT 1,
ADD COLUMN content_hash text,
ADD COLUMN source_path text,
ADD COLUMN embedding_hash text,
ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    pg_catalog.to_tsvector(
        'simple'::regconfig,
        autopilot._code_tokens(
            artifact_type || ' ' || name || ' ' || coalesce(content ->> 'description', '') || ' '
            || coalesce(content ->> 'tags', '')
        )
    )
) STORED,
ADD CONSTRAINT knowledge_artifacts_version_check CHECK (version >= 1);

-- search_knowledge's full-text half
CREATE INDEX knowledge_artifacts_search_idx ON autopilot.knowledge_artifacts USING gin (search_vector);

COMMENT ON TABLE autopilot.knowledge_artifacts IS
'Templates, prompts and other knowledge used by agents: loaded by the runner (knowledge-migration from the templates directory, template-sync from git), embedded by template-embed; earlier versions in knowledge_artifact_versions.';
COMMENT ON COLUMN autopilot.knowledge_artifacts.source IS
'Who wrote the artifact: knowledge-migration or template-sync (each loader changes and deletes only its own rows), else another writer.';
COMMENT ON COLUMN autopilot.knowledge_artifacts.version IS
'1 when loaded, one more each time a loader changes its content; the earlier contents are in knowledge_artifact_versions.';
COMMENT ON COLUMN autopilot.knowledge_artifacts.content_hash IS
'sha256 of the template file''s bytes when last loaded: an unchanged file is not parsed again.';
COMMENT ON COLUMN autopilot.knowledge_artifacts.source_path IS
'The template file, relative to the templates directory (knowledge-migration) or to the repository''s root (template-sync).';
COMMENT ON COLUMN autopilot.knowledge_artifacts.embedding_hash IS
'sha256 of the embedding model id, a line break and autopilot._knowledge_text() when embedded: template-embed embeds again only when either changed.';
COMMENT ON COLUMN autopilot.knowledge_artifacts.search_vector IS
'Full-text vector of the type, name, description and tags (the content is matched through the embedding), identifiers split into words (autopilot._code_tokens), for search_knowledge.';

-- sql/schema/tables/knowledge_artifact_versions.sql
CREATE TABLE autopilot.knowledge_artifact_versions (
    artifact_id bigint NOT NULL,
    version integer NOT NULL,
    content jsonb NOT NULL,
    content_hash text,
    source text,
    source_path text,
    valid_from timestamptz NOT NULL,
    valid_until timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT knowledge_artifact_versions_pkey PRIMARY KEY (artifact_id, version),
    CONSTRAINT knowledge_artifact_versions_artifact_fkey FOREIGN KEY (artifact_id)
    REFERENCES autopilot.knowledge_artifacts (id) ON DELETE CASCADE,
    CONSTRAINT knowledge_artifact_versions_version_check CHECK (version >= 1),
    CONSTRAINT knowledge_artifact_versions_valid_check CHECK (valid_until >= valid_from)
);

COMMENT ON TABLE autopilot.knowledge_artifact_versions IS
'Earlier contents of knowledge artifacts: a loader (knowledge-migration, template-sync) that changes an artifact''s content first copies the version it replaces here. Deleted with its artifact.';
COMMENT ON COLUMN autopilot.knowledge_artifact_versions.valid_from IS
'When this version became the artifact''s content (its updated_at then).';
COMMENT ON COLUMN autopilot.knowledge_artifact_versions.valid_until IS 'When the next version replaced it.';

-- sql/schema/tables/template_data.sql
CREATE TABLE autopilot.template_data (
    name text NOT NULL,
    file_path text NOT NULL,
    format text NOT NULL,
    content jsonb NOT NULL,
    content_hash text NOT NULL,
    status text NOT NULL DEFAULT 'loaded',
    loaded_at timestamptz NOT NULL DEFAULT now(),
    removed_at timestamptz,
    CONSTRAINT template_data_pkey PRIMARY KEY (name),
    CONSTRAINT template_data_format_check CHECK (format IN ('json', 'yaml')),
    CONSTRAINT template_data_status_check CHECK (status IN ('loaded', 'removed')),
    CONSTRAINT template_data_removed_check CHECK ((status = 'removed') = (removed_at IS NOT NULL)),
    CONSTRAINT template_data_content_check CHECK (jsonb_typeof(content) = 'object')
);

COMMENT ON TABLE autopilot.template_data IS
'The documents of the templates_data directory (templates_data.directory), one row per file, kept in step by templates-data-load: a JSON object or YAML mapping each, as the file holds it. A file deleted from the directory stays, marked removed.';
COMMENT ON COLUMN autopilot.template_data.name IS
'The file''s path relative to the directory, without its extension (frameworks/phoenix for frameworks/phoenix.yaml): two files that differ only by extension are one name, and neither is loaded.';
COMMENT ON COLUMN autopilot.template_data.file_path IS 'The file''s path relative to the directory, with its extension.';
COMMENT ON COLUMN autopilot.template_data.content_hash IS
'sha256 of the file''s bytes when loaded: an unchanged file is not parsed again.';
COMMENT ON COLUMN autopilot.template_data.status IS
'loaded (the file is there, content as loaded last), removed (the file is gone since removed_at; the content is its last).';
COMMENT ON COLUMN autopilot.template_data.loaded_at IS 'When this content was loaded (the file last changed before then).';

-- sql/schema/tables/template_sync_state.sql
CREATE TABLE autopilot.template_sync_state (
    singleton boolean NOT NULL DEFAULT true,
    repository text NOT NULL,
    branch text NOT NULL,
    commit_sha text NOT NULL,
    synced_at timestamptz NOT NULL DEFAULT now(),
    summary jsonb NOT NULL DEFAULT '{}',
    CONSTRAINT template_sync_state_pkey PRIMARY KEY (singleton),
    CONSTRAINT template_sync_state_singleton_check CHECK (singleton),
    CONSTRAINT template_sync_state_commit_check CHECK (commit_sha ~ '^[0-9a-f]{40}([0-9a-f]{24})?$')
);

COMMENT ON TABLE autopilot.template_sync_state IS
'What template-sync last applied (one row): the commit of the repository''s branch whose templates the artifacts of source template-sync are. The next run applies the files changed since that commit; another repository or branch is synced whole.';
COMMENT ON COLUMN autopilot.template_sync_state.repository IS
'template_sync.repository as git fetched it: the user name and password of an http(s) URL removed (they reach git through GIT_ASKPASS only, and are never stored).';
COMMENT ON COLUMN autopilot.template_sync_state.summary IS 'Counts of the last sync: added, changed, deleted, unchanged, invalid.';

-- sql/functions/search/search_knowledge.sql
CREATE FUNCTION autopilot.search_knowledge(
    p_query_embedding real[],
    p_query_text text,
    p_limit integer DEFAULT 10,
    p_embedding_model text DEFAULT NULL,
    p_artifact_type text DEFAULT NULL
)
RETURNS TABLE (
    artifact_type text,
    name text,
    source text,
    score double precision,
    vector_rank integer,
    text_rank integer,
    similarity double precision,
    artifact_id bigint
)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- Hybrid search over the knowledge artifacts (of one type, or all), as
-- search_code does over code: the nearest artifacts by embedding (exact cosine:
-- embeddings are stored unit-length, so the inner product; template-embed
-- embeds autopilot._knowledge_text, the whole content), and the best by
-- full-text rank over their type, name, description and tags (search_vector,
-- identifiers split, any query word matching), fused by reciprocal rank:
-- score = 1/(60 + vector rank) + 1/(60 + text rank), a missing rank adding
-- nothing. Either half may be
-- omitted (NULL embedding, NULL or empty text). The embedding is compared only
-- with artifacts embedded by p_embedding_model; when that is NULL, the one
-- model the artifacts in scope have (an error if they have several).
DECLARE
    v_kernel regproc := to_regprocedure('autopilot._inner_product(real[], real[])')::regproc;
    v_depth integer;
    v_model text := p_embedding_model;
    v_models bigint;
    v_dimensions integer;
    v_words tsquery;
    v_vector_ids bigint[] := '{}'::bigint[];
    v_similarities double precision[] := '{}'::double precision[];
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'search_knowledge: p_limit must be between 1 and 1000, not %', p_limit
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_query_embedding IS NULL AND nullif(btrim(p_query_text), '') IS NULL THEN
        RAISE EXCEPTION 'search_knowledge needs a query embedding, a query text, or both'
        USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- each half ranks more than it returns, so that fusion can promote an artifact both halves like
    v_depth := greatest(50, p_limit * 5);

    IF p_query_embedding IS NOT NULL AND v_model IS NULL THEN
        SELECT min(a.embedding_model), count(DISTINCT a.embedding_model)
        INTO v_model, v_models
        FROM autopilot.knowledge_artifacts AS a
        WHERE a.embedding IS NOT NULL AND (p_artifact_type IS NULL OR a.artifact_type = p_artifact_type);
        IF v_models > 1 THEN
            RAISE EXCEPTION 'search_knowledge: the artifacts searched are embedded with % models', v_models
            USING
                ERRCODE = 'ambiguous_parameter',
                HINT = 'Pass p_embedding_model, the model the query embedding was made with.';
        END IF;
    END IF;
    IF p_query_embedding IS NOT NULL THEN
        SELECT array_length(a.embedding, 1) INTO v_dimensions
        FROM autopilot.knowledge_artifacts AS a
        WHERE a.embedding_model = v_model AND a.embedding IS NOT NULL
        LIMIT 1;
        IF v_dimensions <> coalesce(array_length(p_query_embedding, 1), 0) THEN
            RAISE EXCEPTION 'search_knowledge: the query embedding has % dimensions, the artifacts of model % have %',
                coalesce(array_length(p_query_embedding, 1), 0), v_model, v_dimensions
            USING ERRCODE = 'data_exception', HINT = 'Embed the query with the artifacts'' model.';
        END IF;
        IF v_kernel IS NOT NULL THEN
            -- dynamic, only because the function does not exist in every install; v_kernel is its
            -- regproc, not user input
            EXECUTE format(
                'SELECT array_agg(n.id ORDER BY n.similarity DESC, n.id),
                        array_agg(n.similarity ORDER BY n.similarity DESC, n.id)
                 FROM (
                     SELECT a.id, %s(a.embedding, $1) AS similarity
                     FROM autopilot.knowledge_artifacts AS a
                     WHERE a.embedding_model = $2 AND a.embedding IS NOT NULL
                       AND ($3 IS NULL OR a.artifact_type = $3)
                     ORDER BY similarity DESC, a.id
                     LIMIT $4
                 ) AS n',
                v_kernel
            ) INTO v_vector_ids, v_similarities USING p_query_embedding, v_model, p_artifact_type, v_depth;
        ELSE
            SELECT array_agg(n.id ORDER BY n.similarity DESC, n.id), array_agg(n.similarity ORDER BY n.similarity DESC, n.id)
            INTO v_vector_ids, v_similarities
            FROM (
                SELECT
                    a.id,
                    (SELECT sum(u.x::double precision * u.y) FROM unnest(a.embedding, p_query_embedding) AS u (x, y))
                        AS similarity
                FROM autopilot.knowledge_artifacts AS a
                WHERE
                    a.embedding_model = v_model AND a.embedding IS NOT NULL
                    AND (p_artifact_type IS NULL OR a.artifact_type = p_artifact_type)
                ORDER BY similarity DESC, a.id
                LIMIT v_depth
            ) AS n;
        END IF;
    END IF;
    IF nullif(btrim(p_query_text), '') IS NOT NULL THEN
        -- any word may match (a natural-language query rarely has all its words in one artifact)
        v_words := nullif(
            replace(plainto_tsquery('simple'::regconfig, autopilot._code_tokens(p_query_text))::text, ' & ', ' | '),
            ''
        )::tsquery;
    END IF;

    RETURN QUERY
    WITH vector_hits AS (
        SELECT v.id, v.rank::integer AS rank, v.similarity
        FROM unnest(coalesce(v_vector_ids, '{}'), coalesce(v_similarities, '{}'))
            WITH ORDINALITY AS v (id, similarity, rank)
    ),

    text_hits AS (
        SELECT
            t.id,
            row_number() OVER (ORDER BY ts_rank_cd(t.search_vector, v_words) DESC, t.id)::integer AS rank
        FROM autopilot.knowledge_artifacts AS t
        WHERE
            v_words IS NOT NULL
            AND t.search_vector @@ v_words
            AND (p_artifact_type IS NULL OR t.artifact_type = p_artifact_type)
        ORDER BY ts_rank_cd(t.search_vector, v_words) DESC, t.id
        LIMIT v_depth
    ),

    fused AS (
        SELECT
            coalesce(v.id, t.id) AS id,
            v.rank AS vector_rank,
            t.rank AS text_rank,
            v.similarity,
            coalesce(1.0 / (60 + v.rank), 0) + coalesce(1.0 / (60 + t.rank), 0) AS score
        FROM vector_hits AS v
        FULL JOIN text_hits AS t ON v.id = t.id
    )

    SELECT
        a.artifact_type,
        a.name,
        a.source,
        f.score::double precision,
        f.vector_rank,
        f.text_rank,
        f.similarity,
        a.id
    FROM fused AS f
    INNER JOIN autopilot.knowledge_artifacts AS a ON f.id = a.id
    ORDER BY f.score DESC, a.id
    LIMIT p_limit;
END;
$$;

COMMENT ON FUNCTION autopilot.search_knowledge(real[], text, integer, text, text) IS
'Hybrid search over the knowledge artifacts: exact nearest by embedding (one model) and full-text rank over their type, name, description and tags, fused by reciprocal rank; each row has the artifact, its score, both ranks and its cosine similarity.';

REVOKE ALL ON FUNCTION autopilot._knowledge_text(text, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.search_knowledge(real[], text, integer, text, text) FROM PUBLIC;

-- sql/settings/defaults.sql
INSERT INTO autopilot.settings (name, value_type, default_value, min_value, max_value, description)
VALUES
(
    'knowledge.templates_directory', 'path', '/var/lib/autopilot/templates', NULL, NULL,
    'knowledge-migration loads the JSON templates (*.json, at any depth) of this directory of the runner''s host '
    || 'into autopilot.knowledge_artifacts. The default, absent, loads nothing; a directory you set that does not '
    || 'exist fails the job.'
),
(
    'templates_data.directory', 'path', '/var/lib/autopilot/templates_data', NULL, NULL,
    'templates-data-load keeps autopilot.template_data in step with the JSON and YAML files (*.json, *.yaml, '
    || '*.yml, at any depth) of this directory of the runner''s host. The default, absent, loads nothing; a '
    || 'directory you set that does not exist fails the job (and marks nothing removed).'
),
(
    'template_sync.repository', 'text', '', NULL, NULL,
    'template-sync applies the JSON templates of this git repository (a URL, or the absolute path of a repository '
    || 'on the runner''s host) to autopilot.knowledge_artifacts; empty: the job does nothing. Credentials belong in '
    || 'the runner''s environment (AUTOPILOT_TEMPLATE_SYNC_USERNAME, AUTOPILOT_TEMPLATE_SYNC_PASSWORD or '
    || '_PASSWORD_FILE), not in the URL: a password in it is readable by whoever reads this setting.'
),
(
    'template_sync.branch', 'text', 'main', NULL, NULL,
    'The branch of template_sync.repository that template-sync follows.'
),
(
    'template_sync.directory', 'path', '/var/lib/autopilot/template-sync', NULL, NULL,
    'Where template-sync keeps its clone of the repository: a directory of the runner''s host that it creates '
    || '(0700) and owns.'
);

-- sql/jobs/database_jobs.sql: vacuum-analyze covers the new tables (each inserted in its place in the
-- list, so that other sections may insert theirs)
UPDATE autopilot.job_catalog
SET
    target = replace(
        replace(
            target, 'autopilot.knowledge_artifacts, ',
            'autopilot.knowledge_artifact_versions, autopilot.knowledge_artifacts, '
        ),
        'autopilot.tasks, ', 'autopilot.tasks, autopilot.template_data, autopilot.template_sync_state, '
    )
WHERE name = 'vacuum-analyze';

-- sql/grants/config_dump.sql: the new tables are the user's data, dumped by pg_dump
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'autopilot') THEN
        PERFORM pg_catalog.pg_extension_config_dump('autopilot.knowledge_artifact_versions'::regclass, '');
        PERFORM pg_catalog.pg_extension_config_dump('autopilot.template_data'::regclass, '');
        PERFORM pg_catalog.pg_extension_config_dump('autopilot.template_sync_state'::regclass, '');
    END IF;
END;
$$;

-- old-artifact-cleanup keeps the artifacts loaded from files (knowledge_artifacts.source set)
-- sql/functions/maintenance/_cleanup_old_artifacts_batch.sql
CREATE OR REPLACE FUNCTION autopilot._cleanup_old_artifacts_batch(p_cursor jsonb, p_limit integer)
RETURNS autopilot.job_step
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- old-artifact-cleanup, one batch. Unused means:
--   knowledge artifact: not used (last_used_at, or created_at when never used)
--     for artifacts.unused_retention, and not loaded from a file (source set:
--     knowledge-migration, template-sync): the file owns that artifact, and its
--     loader would only write it again, without its version history;
--   learned pattern: not seen for patterns.unused_retention and its confidence
--     below patterns.keep_confidence (confident knowledge is kept however old).
-- Keyset-driven on (time, id); the DELETE re-checks the condition, so a row
-- used between the two statements is kept.
DECLARE
    v_phase text := coalesce(p_cursor ->> 'phase', 'artifacts');
    v_after_at timestamptz := coalesce((p_cursor ->> 'after_at')::timestamptz, '-infinity');
    v_after_id bigint := coalesce((p_cursor ->> 'after_id')::bigint, 0);
    v_artifact_cutoff timestamptz := now() - autopilot.get_setting('artifacts.unused_retention')::interval;
    v_pattern_cutoff timestamptz := now() - autopilot.get_setting('patterns.unused_retention')::interval;
    v_keep_confidence double precision := autopilot.get_setting('patterns.keep_confidence')::double precision;
    v_keys record;
    v_deleted bigint;
BEGIN
    IF v_phase = 'artifacts' THEN
        SELECT array_agg(k.id ORDER BY k.at, k.id) AS ids, array_agg(k.at ORDER BY k.at, k.id) AS ats
        INTO v_keys
        FROM (
            SELECT a.id, coalesce(a.last_used_at, a.created_at) AS at
            FROM autopilot.knowledge_artifacts AS a
            WHERE (coalesce(a.last_used_at, a.created_at), a.id) > (v_after_at, v_after_id)
              AND coalesce(a.last_used_at, a.created_at) < v_artifact_cutoff
              AND a.source IS NULL
            ORDER BY coalesce(a.last_used_at, a.created_at), a.id
            LIMIT p_limit
        ) AS k;
        DELETE FROM autopilot.knowledge_artifacts AS a
        WHERE a.id = ANY(v_keys.ids)
          AND coalesce(a.last_used_at, a.created_at) < v_artifact_cutoff
          AND a.source IS NULL;
        GET DIAGNOSTICS v_deleted = ROW_COUNT;
        IF coalesce(cardinality(v_keys.ids), 0) < p_limit THEN
            RETURN ROW(false, jsonb_build_object('phase', 'patterns'), v_deleted, NULL, NULL)::autopilot.job_step;
        END IF;
        RETURN ROW(false, jsonb_build_object('phase', 'artifacts',
                                             'after_at', v_keys.ats[cardinality(v_keys.ats)],
                                             'after_id', v_keys.ids[cardinality(v_keys.ids)]),
                   v_deleted, NULL, NULL)::autopilot.job_step;
    END IF;

    SELECT array_agg(k.id ORDER BY k.at, k.id) AS ids, array_agg(k.at ORDER BY k.at, k.id) AS ats
    INTO v_keys
    FROM (
        SELECT p.id, p.last_seen_at AS at
        FROM autopilot.learned_patterns AS p
        WHERE (p.last_seen_at, p.id) > (v_after_at, v_after_id)
          AND p.last_seen_at < v_pattern_cutoff
          AND p.confidence < v_keep_confidence
        ORDER BY p.last_seen_at, p.id
        LIMIT p_limit
    ) AS k;
    DELETE FROM autopilot.learned_patterns AS p
    WHERE p.id = ANY(v_keys.ids)
      AND p.last_seen_at < v_pattern_cutoff
      AND p.confidence < v_keep_confidence;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN ROW(
        coalesce(cardinality(v_keys.ids), 0) < p_limit,
        jsonb_build_object('phase', 'patterns',
                           'after_at', v_keys.ats[cardinality(v_keys.ats)],
                           'after_id', v_keys.ids[cardinality(v_keys.ids)]),
        v_deleted, NULL, NULL
    )::autopilot.job_step;
END;
$$;

-- pg_cron job names carry the database (autopilot:<database>:<job>), so one role can run autopilot
-- in several databases of a cluster; the sync renames the jobs still named autopilot:<job> in place.
-- sql/functions/cron/_cron_jobname.sql
CREATE FUNCTION autopilot._cron_jobname(p_job text, p_database text DEFAULT current_database())
RETURNS text
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- autopilot:<database>:<job>. pg_cron's job names are unique per role and of
    -- type name (63 bytes): a database name too long for that is cut to its first
    -- 16 characters, plus "~" and 8 hex digits of its md5 (at most 25 bytes), so
    -- that pg_cron never truncates a name.
    SELECT CASE
        WHEN octet_length(format('autopilot:%s:%s', p_database, p_job)) <= 63
            THEN format('autopilot:%s:%s', p_database, p_job)
        -- (the 16 characters only when they are 16 bytes: multibyte ones could overflow)
        ELSE format(
            'autopilot:%s~%s:%s',
            CASE WHEN octet_length(left(p_database, 16)) = 16 THEN left(p_database, 16) ELSE '' END,
            left(md5(p_database), 8), p_job
        )
    END
$$;

COMMENT ON FUNCTION autopilot._cron_jobname(text, text) IS
'Private: the pg_cron job name of an autopilot job, autopilot:<database>:<job> (a database name that would not fit in 63 bytes becomes its first 16 characters (when single-byte), "~" and 8 hex digits of its md5), so that one role can run autopilot in several databases of a cluster.';

REVOKE ALL ON FUNCTION autopilot._cron_jobname(text, text) FROM PUBLIC;

-- sql/schema/views/job_definitions.sql
CREATE OR REPLACE VIEW autopilot.job_definitions AS
SELECT
    c.name,
    c.side,
    c.kind,
    coalesce(a.schedule, o.schedule, c.schedule) AS schedule,
    c.schedule AS default_schedule,
    coalesce(o.enabled, c.disabled_reason IS NULL) AS enabled,
    c.only_on_dow,
    c.target,
    c.args,
    c.queue,
    c.run_at_startup,
    c.description,
    autopilot._job_unavailable_reason(c.kind, c.target, c.requires_local_pg_cron)
        AS unavailable_reason,
    -- autopilot._cron_jobname(c.name), written out: a view's functions need EXECUTE of every
    -- role that reads it, and these built-ins have it (tests/sql/_cron_jobname.sql compares them);
    -- current_database() is a name, whose collation ("C") the column must not take (RF02: sqlfluff
    -- reads "default" as a column)
    CASE
        WHEN octet_length(format('autopilot:%s:%s', current_database(), c.name)) <= 63
            THEN format('autopilot:%s:%s', current_database(), c.name)
        ELSE format(
            'autopilot:%s~%s:%s',
            CASE WHEN octet_length(left(current_database(), 16)) = 16 THEN left(current_database(), 16) ELSE '' END,
            left(md5(current_database()), 8), c.name
        )
    END COLLATE "default" AS cron_jobname, -- noqa: RF02
    CASE
        WHEN c.kind = 'statement' THEN coalesce(a.command, c.target)
        ELSE format('CALL autopilot.run_scheduled_job(%L)', c.name)
    END AS cron_command,
    c.only_when_armed,
    a.armed_at,
    -- what pg_cron's entry should say: enabled, runnable here, and armed when it must be
    coalesce(o.enabled, c.disabled_reason IS NULL)
    AND autopilot._job_unavailable_reason(c.kind, c.target, c.requires_local_pg_cron) IS NULL
    AND (NOT c.only_when_armed OR a.job_name IS NOT NULL) AS active,
    -- why it ships disabled, while the DBA has not enabled or disabled it
    CASE WHEN o.enabled IS NULL THEN c.disabled_reason END AS disabled_reason
FROM autopilot.job_catalog AS c
LEFT JOIN autopilot.job_overrides AS o ON c.name = o.job_name
LEFT JOIN autopilot.job_arming AS a ON c.name = a.job_name;

COMMENT ON VIEW autopilot.job_definitions IS
'The catalog with the DBA''s overrides applied: the schedule and state each job should have in pg_cron, the pg_cron job name and command, why a job cannot run here (unavailable_reason), and whether pg_cron should run it (active). A job''s own arming (autopilot.job_arming) wins over overrides while it lasts.';

-- sql/functions/cron/plan_cron_sync.sql
CREATE OR REPLACE FUNCTION autopilot.plan_cron_sync(
    p_current jsonb,
    p_database text DEFAULT current_database(),
    p_username text DEFAULT current_user
)
RETURNS TABLE (
    action text, jobid bigint, jobname text, schedule text, command text, active boolean
)
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- p_current: the rows of cron.job (jobid, jobname, schedule, command,
    -- database, username, active), wherever pg_cron lives. Only jobs named
    -- autopilot:* of this database are ever changed; the jobs are named
    -- autopilot:<database>:<job> (autopilot._cron_jobname), and a job still
    -- named autopilot:<job> (0.3.0 and earlier) is renamed, keeping its jobid.
    WITH desired AS (
        SELECT
            d.name,
            autopilot._cron_jobname(d.name, p_database) AS jobname,
            d.schedule,
            d.cron_command AS command,
            d.active
        FROM autopilot.job_definitions AS d
        WHERE d.schedule IS NOT NULL
    ),

    current_jobs AS (
        SELECT c.*
        FROM jsonb_to_recordset(coalesce(p_current, '[]')) AS c (
            jobid bigint, jobname text, schedule text, command text,
            database text, username text, active boolean
        )
        WHERE starts_with(c.jobname, 'autopilot:')
    ),

    here AS (
        SELECT * FROM current_jobs WHERE database = p_database
    ),

    elsewhere AS (
        SELECT * FROM current_jobs WHERE database <> p_database AND username = p_username
    ),

    -- a job of this database under its pre-0.4.0 name, while the new name is free here
    renamed AS (
        SELECT DISTINCT ON (d.jobname) h.jobid, d.jobname, d.schedule, d.command, d.active
        FROM desired AS d
        INNER JOIN here AS h ON h.jobname = 'autopilot:' || d.name
        WHERE NOT EXISTS (SELECT FROM here AS n WHERE n.jobname = d.jobname)
        ORDER BY d.jobname, h.jobid
    )

    SELECT 'conflict', e.jobid, d.jobname, e.schedule, e.command, e.active
    FROM desired AS d
    INNER JOIN elsewhere AS e ON d.jobname = e.jobname
    WHERE NOT EXISTS (SELECT FROM here AS h WHERE h.jobname = d.jobname)
    UNION ALL
    SELECT 'rename', r.jobid, r.jobname, r.schedule, r.command, r.active
    FROM renamed AS r
    UNION ALL
    SELECT 'schedule', NULL::bigint, d.jobname, d.schedule, d.command, d.active
    FROM desired AS d
    WHERE NOT EXISTS (SELECT FROM current_jobs AS c WHERE c.jobname = d.jobname
                      AND (c.database = p_database OR c.username = p_username))
      AND NOT EXISTS (SELECT FROM renamed AS r WHERE r.jobname = d.jobname)
    UNION ALL
    SELECT 'alter', h.jobid, d.jobname, d.schedule, d.command, d.active
    FROM desired AS d
    INNER JOIN here AS h ON d.jobname = h.jobname
    WHERE (h.schedule, h.command, h.active) IS DISTINCT FROM (d.schedule, d.command, d.active)
    UNION ALL
    SELECT 'unschedule', h.jobid, h.jobname, h.schedule, h.command, h.active
    FROM here AS h
    WHERE NOT EXISTS (SELECT FROM desired AS d WHERE d.jobname = h.jobname)
      AND NOT EXISTS (SELECT FROM renamed AS r WHERE r.jobid = h.jobid)
    ORDER BY 1, 3
$$;

COMMENT ON FUNCTION autopilot.plan_cron_sync(jsonb, text, text) IS
'What must change in cron.job (given as a jsonb array of its rows) so that the autopilot jobs of this database (named autopilot:<database>:<job>) match the catalog: schedule, alter, rename (a job still under its pre-0.4.0 name autopilot:<job>, renamed in place with the desired schedule, command and state), unschedule, or conflict (the name is taken by a job of this role in another database). Changes nothing; autopilot.sync_schedules() and the installer carry the plan out.';

-- sql/functions/cron/sync_schedules.sql
CREATE OR REPLACE FUNCTION autopilot.sync_schedules()
RETURNS TABLE (action text, jobname text, schedule text, active boolean)
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Makes cron.job match the catalog for the autopilot jobs of this database,
-- when pg_cron is installed here. When pg_cron lives in another database, the
-- installer carries out autopilot.plan_cron_sync() there instead.
DECLARE
    v_cron_database text := autopilot.pg_cron_database();
    v_current jsonb;
    v_conflicts text;
    v_step record;
BEGIN
    IF v_cron_database IS NULL THEN
        RAISE NOTICE 'pg_cron is not loaded on this server: nothing is scheduled'
            USING HINT = 'Add pg_cron to shared_preload_libraries, restart, CREATE EXTENSION pg_cron, then run autopilot.sync_schedules().';
        RETURN;
    END IF;
    IF to_regclass('cron.job') IS NULL THEN
        IF v_cron_database <> current_database() THEN
            RAISE EXCEPTION 'pg_cron runs in database "%", not in "%"', v_cron_database, current_database()
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = format('Run "autopilot sync" (or "autopilot install"): it registers the schedules from database %s with cron.schedule_in_database().', v_cron_database);
        END IF;
        RAISE NOTICE 'pg_cron is loaded but not created in this database: nothing is scheduled'
            USING HINT = 'CREATE EXTENSION pg_cron; then SELECT * FROM autopilot.sync_schedules();';
        RETURN;
    END IF;

    -- one sync at a time: two concurrent syncs would both schedule a missing job
    PERFORM pg_advisory_xact_lock(hashtext('autopilot.sync_schedules'));

    SELECT coalesce(jsonb_agg(to_jsonb(j)), '[]')
    INTO v_current
    FROM cron.job AS j
    WHERE starts_with(j.jobname, 'autopilot:');

    SELECT string_agg(format('%s (in database %s)', p.jobname, c.database), ', ')
    INTO v_conflicts
    FROM autopilot.plan_cron_sync(v_current) AS p
    INNER JOIN cron.job AS c ON p.jobid = c.jobid
    WHERE p.action = 'conflict';
    IF v_conflicts IS NOT NULL THEN
        RAISE EXCEPTION 'pg_cron jobs of role % already belong to another database: %', current_user, v_conflicts
            USING ERRCODE = 'duplicate_object',
                  DETAIL = 'pg_cron job names are unique per role; autopilot names its jobs autopilot:<database>:<job>, so only a database name shortened to the same 63-byte name collides.',
                  HINT = 'Uninstall autopilot from the other database, or install this one as another role.';
    END IF;

    FOR v_step IN SELECT * FROM autopilot.plan_cron_sync(v_current) LOOP
        CASE v_step.action
            WHEN 'schedule' THEN
                PERFORM cron.schedule_in_database(
                    v_step.jobname, v_step.schedule, v_step.command,
                    current_database(), NULL, v_step.active
                );
            WHEN 'alter' THEN
                PERFORM cron.alter_job(
                    v_step.jobid, v_step.schedule, v_step.command,
                    current_database(), NULL, v_step.active
                );
            WHEN 'rename' THEN
                -- a pre-0.4.0 name: renamed in place, so the job keeps its jobid and its
                -- pg_cron history; a role that may not update cron.job reschedules it
                IF has_table_privilege('cron.job', 'UPDATE') THEN
                    UPDATE cron.job AS j SET jobname = v_step.jobname WHERE j.jobid = v_step.jobid;
                    PERFORM cron.alter_job(
                        v_step.jobid, v_step.schedule, v_step.command,
                        current_database(), NULL, v_step.active
                    );
                ELSE
                    PERFORM cron.unschedule(v_step.jobid);
                    PERFORM cron.schedule_in_database(
                        v_step.jobname, v_step.schedule, v_step.command,
                        current_database(), NULL, v_step.active
                    );
                END IF;
            WHEN 'unschedule' THEN
                PERFORM cron.unschedule(v_step.jobid);
        END CASE;
        action := v_step.action;
        jobname := v_step.jobname;
        schedule := v_step.schedule;
        active := v_step.active;
        RETURN NEXT;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION autopilot.sync_schedules() IS
'Makes cron.job match the catalog (with overrides) for the autopilot jobs of this database (autopilot:<database>:<job>): schedules, alters, renames pre-0.4.0 names in place, unschedules; never touches other jobs, nor another database''s; idempotent. Returns what it changed. Needs pg_cron in this database; otherwise it says what to do.';

-- sql/functions/maintenance/reindex_bloated_indexes.sql
CREATE OR REPLACE FUNCTION autopilot.reindex_bloated_indexes()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- index-reindex, the pg_cron side. REINDEX INDEX CONCURRENTLY (and DROP INDEX
-- CONCURRENTLY) cannot run inside a function, a procedure or a multi-statement
-- pg_cron command, so this function never runs them: it plans a cycle
-- (autopilot.plan_index_maintenance), then hands pg_cron one statement at a
-- time by arming the statement job index-reindex-step to fire once, at the next
-- minute, and arming itself to run every minute while the cycle lasts. Each run
-- first settles the armed statement from pg_cron's own record of it
-- (cron.job_run_details), then arms the next; when nothing is left it disarms
-- both, and index-reindex is back on its weekly schedule. Only a run outside a
-- cycle plans a new one.
-- When pg_cron lives in another database it cannot arm anything: it plans, and
-- "autopilot run index-reindex" runs the planned statements at top level.
DECLARE
    c_step constant text := 'index-reindex-step';
    v_local boolean := to_regclass('cron.job_run_details') IS NOT NULL;
    v_item autopilot.index_maintenance;
    v_status text;
    v_return text;
    v_settled integer := 0;
    v_planned integer := 0;
    v_open integer;
    v_at timestamp;
BEGIN
    -- 1. settle the statement pg_cron was given, from pg_cron's record of its run
    SELECT * INTO v_item FROM autopilot.index_maintenance WHERE state = 'armed';
    IF FOUND AND v_local THEN
        SELECT d.status, d.return_message
        INTO v_status, v_return
        FROM cron.job_run_details AS d
        INNER JOIN cron.job AS j ON d.jobid = j.jobid
        WHERE j.jobname = autopilot._cron_jobname(c_step)
          AND j.database = current_database()
          AND d.command = v_item.statement
          AND d.start_time >= v_item.armed_at
        ORDER BY d.runid DESC
        LIMIT 1;
        IF v_status IN ('succeeded', 'failed') THEN
            PERFORM autopilot.finish_index_maintenance_item(
                v_item.id, v_status = 'succeeded', 'pg_cron: ' || coalesce(v_return, v_status)
            );
            v_settled := 1;
        ELSIF v_status IS NULL AND v_item.armed_at < now() - interval '10 minutes' THEN
            -- pg_cron never started it (stopped, or the step job was changed): run it again later
            UPDATE autopilot.index_maintenance SET state = 'pending', armed_at = NULL WHERE id = v_item.id;
        ELSE
            RETURN jsonb_build_object(
                'rows_affected', 0,
                'message', format('waiting for pg_cron to run: %s', v_item.statement)
            );
        END IF;
    END IF;

    -- 2. a new cycle, planned only by a scheduled run, never by the per-minute runs of a
    -- cycle: a statement that keeps failing waits for next week instead of looping
    IF NOT EXISTS (SELECT FROM autopilot.job_arming WHERE job_name = 'index-reindex') THEN
        v_planned := autopilot.plan_index_maintenance();
    END IF;
    SELECT count(*) INTO v_open FROM autopilot.index_maintenance WHERE state IN ('pending', 'armed');

    -- 3. hand pg_cron the next statement, or end the cycle
    SELECT * INTO v_item FROM autopilot.index_maintenance WHERE state = 'pending' ORDER BY id LIMIT 1;
    IF FOUND AND v_local AND (autopilot._catalog_job(c_step)).enabled THEN
        v_at := date_trunc('minute', now() AT TIME ZONE 'UTC') + interval '1 minute';
        INSERT INTO autopilot.job_arming AS a (job_name, schedule, command)
        VALUES (
            c_step,
            format('%s %s %s %s *', extract(minute FROM v_at), extract(hour FROM v_at),
                   extract(day FROM v_at), extract(month FROM v_at)),
            v_item.statement
        ),
        ('index-reindex', '* * * * *', NULL)
        ON CONFLICT (job_name) DO UPDATE
            SET schedule = excluded.schedule, command = excluded.command, armed_at = now();
        UPDATE autopilot.index_maintenance SET state = 'armed', armed_at = now() WHERE id = v_item.id;
        PERFORM autopilot._sync_if_local();
        RETURN jsonb_build_object(
            'rows_affected', v_settled,
            'planned', v_planned,
            'message', format('pg_cron runs next: %s (%s statements open)', v_item.statement, v_open)
        );
    END IF;

    DELETE FROM autopilot.job_arming WHERE job_name IN (c_step, 'index-reindex');
    IF FOUND THEN
        PERFORM autopilot._sync_if_local();
    END IF;
    RETURN jsonb_build_object(
        'rows_affected', v_settled,
        'planned', v_planned,
        'message', CASE
            WHEN v_open > 0 AND NOT v_local THEN format(
                '%s index statements are waiting: pg_cron runs in another database, so run "autopilot run index-reindex" to carry them out',
                v_open)
            WHEN v_open > 0 THEN format(
                '%s index statements are waiting: the index-reindex-step job is disabled', v_open)
            WHEN v_settled > 0 THEN 'index maintenance cycle finished'
            ELSE 'no index needs a rebuild'
        END
    );
END;
$$;

COMMENT ON FUNCTION autopilot.reindex_bloated_indexes() IS
'index-reindex under pg_cron: settles the statement it last handed to pg_cron, plans a cycle when none is open, and arms the statement job index-reindex-step with the next REINDEX INDEX CONCURRENTLY / DROP INDEX CONCURRENTLY (which cannot run inside a function). Needs pg_cron in this database to arm; otherwise "autopilot run index-reindex" runs the planned statements.';


-- autopilot.health (autopilot check, autopilot status): the problems a DBA should act on, in SQL

-- sql/schema/tables/job_runs.sql, sql/schema/tables/jobs.sql
CREATE INDEX job_runs_runner_succeeded_idx ON autopilot.job_runs (job_name, started_at DESC)
WHERE status = 'succeeded' AND trigger = 'runner';
CREATE INDEX jobs_due_idx ON autopilot.jobs (queue, scheduled_at)
WHERE state IN ('available', 'scheduled', 'retryable');

-- sql/functions/cron/_schedule_interval.sql
CREATE FUNCTION autopilot._schedule_interval(p_schedule text, p_only_on_dow integer, p_now timestamptz)
RETURNS interval
LANGUAGE plpgsql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
-- The longest gap between consecutive runs of a valid schedule over its coming fires (UTC), kept to
-- the catalog's weekday when p_only_on_dow is set: what "on time" means for autopilot.health's
-- job_overdue. A fire day holds the same times (minutes x hours), so the longest gap is either
-- within a day or from the last time of one fire day to the first of the next; fire days are
-- the first 13 (7 with a weekday) from today, as `status` looked at the coming 12 (6) fires. "N
-- seconds" is N seconds; a schedule with fewer than two fire days in 13 years counts as 31 days.
DECLARE
    v_fields text[] := autopilot._cron_fields(p_schedule);
    v_last_day boolean := v_fields[3] = '$';
    v_either_day boolean := NOT (starts_with(v_fields[3], '*') OR starts_with(v_fields[5], '*'));
    v_today date := (p_now AT TIME ZONE 'UTC')::date;
    v_times integer[];
    v_doms integer[];
    v_months integer[];
    v_dows integer[];
    v_within integer;
    v_day_gap integer;
    v_fire_days integer := CASE WHEN p_only_on_dow IS NULL THEN 13 ELSE 7 END;
    v_span integer;
    v_days date[];
BEGIN
    IF p_schedule ~* '^[ \t\n]*[0-9]+[[:space:]]*seconds?[[:space:]]*$' THEN
        RETURN make_interval(secs => substring(p_schedule FROM '[0-9]+')::integer);
    END IF;
    v_times := ARRAY(
        SELECT h * 60 + m
        FROM unnest(autopilot._cron_field_values(v_fields[2], 2)) AS h
        CROSS JOIN unnest(autopilot._cron_field_values(v_fields[1], 1)) AS m
        ORDER BY 1
    );
    v_doms := autopilot._cron_field_values(v_fields[3], 3);
    v_months := autopilot._cron_field_values(v_fields[4], 4);
    v_dows := autopilot._cron_field_values(v_fields[5], 5);
    SELECT max(t.next_time - t.time_of_day)
    INTO v_within
    FROM (
        SELECT u.time_of_day, lead(u.time_of_day) OVER (ORDER BY u.time_of_day) AS next_time
        FROM unnest(v_times) AS u (time_of_day)
    ) AS t;
    -- the first fire days within 400 days; a schedule with fewer there (@yearly) is looked at over 13 years
    FOREACH v_span IN ARRAY ARRAY[400, 4800] LOOP
        v_days := ARRAY(
            SELECT g.day::date
            FROM generate_series(v_today, v_today + v_span, interval '1 day') AS g (day)
            WHERE extract(MONTH FROM g.day)::integer = ANY(v_months)
              AND (p_only_on_dow IS NULL OR extract(DOW FROM g.day)::integer = p_only_on_dow)
              AND CASE
                  WHEN v_either_day
                      THEN extract(DAY FROM g.day)::integer = ANY(v_doms)
                      OR (v_last_day AND extract(DAY FROM g.day + interval '1 day') = 1)
                      OR extract(DOW FROM g.day)::integer = ANY(v_dows)
                  ELSE (extract(DAY FROM g.day)::integer = ANY(v_doms)
                        OR (v_last_day AND extract(DAY FROM g.day + interval '1 day') = 1))
                      AND extract(DOW FROM g.day)::integer = ANY(v_dows)
              END
            ORDER BY g.day
            LIMIT v_fire_days
        );
        EXIT WHEN cardinality(v_days) = v_fire_days;
    END LOOP;
    SELECT max(f.next_day - f.day)
    INTO v_day_gap
    FROM (
        SELECT u.day, lead(u.day) OVER (ORDER BY u.day) AS next_day
        FROM unnest(v_days) AS u (day)
    ) AS f;
    IF v_day_gap IS NULL OR cardinality(v_times) = 0 THEN
        RETURN interval '31 days';
    END IF;
    RETURN make_interval(mins => greatest(
        coalesce(v_within, 0),
        v_day_gap * 1440 - (v_times[cardinality(v_times)] - v_times[1])
    ));
END;
$$;

COMMENT ON FUNCTION autopilot._schedule_interval(text, integer, timestamptz) IS
'Private: the longest gap between consecutive fires of a valid schedule (UTC) over its coming fires, on the given weekday only when set; autopilot.health calls a job overdue past twice this (health.overdue_factor).';

-- sql/functions/cron/_health_cron_jobs.sql
CREATE FUNCTION autopilot._health_cron_jobs()
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- pg_cron's side of autopilot.health, read as the extension's owner: pg_cron's row security
-- shows a role its own jobs only, and its settings are superuser-only, so the read-only role
-- sees autopilot's pg_cron jobs through this function and nothing else of pg_cron. NULL when
-- pg_cron is not loaded, or not created in its database; {"database": D} when it lives in
-- another database D (the CLI reads it there and passes the jobs to autopilot._health);
-- {"database": D, "jobs": [...]} with this database's autopilot:* jobs and their last run and
-- last success from cron.job_run_details when it lives here.
DECLARE
    v_database text := pg_catalog.current_setting('cron.database_name', true);
    v_jobs jsonb;
BEGIN
    IF v_database IS NULL THEN
        RETURN NULL;
    END IF;
    IF v_database <> pg_catalog.current_database() THEN
        RETURN pg_catalog.jsonb_build_object('database', v_database);
    END IF;
    IF pg_catalog.to_regclass('cron.job') IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
        'jobid', j.jobid, 'jobname', j.jobname, 'schedule', j.schedule, 'command', j.command,
        'active', j.active, 'last_status', last.status, 'last_start', last.start_time,
        'last_end', last.end_time, 'last_message', last.return_message, 'last_success', last_ok.end_time
    )), '[]'::jsonb)
    INTO v_jobs
    FROM cron.job AS j
    LEFT JOIN LATERAL (
        SELECT d.status, d.start_time, d.end_time, d.return_message
        FROM cron.job_run_details AS d
        WHERE d.jobid = j.jobid
        ORDER BY d.runid DESC
        LIMIT 1
    ) AS last ON true
    LEFT JOIN LATERAL (
        SELECT d.end_time
        FROM cron.job_run_details AS d
        WHERE d.jobid = j.jobid AND d.status = 'succeeded'
        ORDER BY d.runid DESC
        LIMIT 1
    ) AS last_ok ON true
    WHERE pg_catalog.starts_with(j.jobname, 'autopilot:')
      AND j.database = pg_catalog.current_database();
    RETURN pg_catalog.jsonb_build_object('database', v_database, 'jobs', v_jobs);
END;
$$;

COMMENT ON FUNCTION autopilot._health_cron_jobs() IS
'Private, SECURITY DEFINER: pg_cron''s view of this database''s autopilot:* jobs for autopilot.health (NULL: pg_cron not loaded or not created; {"database"}: pg_cron lives elsewhere; {"database", "jobs"}: the jobs with their last run and last success). The one function that reads pg_cron as the owner, so that the read-only role sees autopilot''s jobs without more grants.';

-- sql/functions/health/_health.sql
CREATE FUNCTION autopilot._health(p_cron jsonb)
RETURNS TABLE (severity text, check_name text, subject text, message text, since timestamptz)
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- The rows of autopilot.health, one per problem. p_cron is pg_cron's side as
    -- autopilot._health_cron_jobs() returns it (the CLI builds the same document from the
    -- pg_cron database when pg_cron lives elsewhere): NULL, nothing is scheduled (no cron checks,
    -- nothing overdue); without "jobs", pg_cron is not readable from here (no cron checks).
    -- Jobs that are disabled, unavailable here or not meant to be active in pg_cron raise nothing.
    WITH settings AS (
        SELECT
            autopilot.get_setting('health.overdue_factor')::numeric AS overdue_factor,
            autopilot.get_setting('health.queue_stalled_after')::interval AS queue_stalled_after,
            autopilot.get_setting('health.runner_absent_after')::interval AS runner_absent_after,
            autopilot.get_setting('backups.overdue_after')::interval AS backup_overdue_after,
            autopilot.get_setting('backups.databases') AS backup_databases
    ),

    -- pg_cron's section: its rows for this database's autopilot jobs
    cron AS (
        SELECT c.*
        FROM jsonb_to_recordset(CASE WHEN jsonb_typeof(p_cron -> 'jobs') = 'array' THEN p_cron -> 'jobs' END) AS c (
            jobid bigint, jobname text, schedule text, command text, active boolean, last_status text,
            last_start timestamptz, last_end timestamptz, last_message text, last_success timestamptz
        )
    ),

    jobs AS (
        SELECT
            d.name,
            d.side,
            d.schedule,
            d.only_on_dow,
            d.cron_jobname,
            d.cron_command,
            first_run.started_at AS first_started_at,
            c.jobid AS cron_jobid,
            c.schedule AS cron_schedule,
            c.command AS cron_command_now,
            c.active AS cron_active,
            c.last_start AS cron_last_start,
            -- statement jobs (VACUUM) run outside any function: their runs are in pg_cron's history
            CASE WHEN c.last_start > coalesce(last_run.started_at, '-infinity') THEN c.last_status
                ELSE last_run.status END AS last_status,
            CASE WHEN c.last_start > coalesce(last_run.started_at, '-infinity') THEN c.last_start
                ELSE last_run.started_at END AS last_started_at,
            CASE WHEN c.last_start > coalesce(last_run.started_at, '-infinity') THEN 'pg_cron: ' || c.last_message
                ELSE last_run.message END AS last_message,
            -- as in autopilot.job_status: a runner job succeeds when its worker does, not when it is
            -- enqueued (each branch reads the newest entry of its own partial index)
            greatest(
                CASE WHEN d.side = 'database'
                    THEN (SELECT max(r.started_at) FROM autopilot.job_runs AS r
                          WHERE r.job_name = d.name AND r.status = 'succeeded')
                    ELSE (SELECT max(r.started_at) FROM autopilot.job_runs AS r
                          WHERE r.job_name = d.name AND r.status = 'succeeded' AND r.trigger = 'runner')
                END,
                c.last_success
            ) AS last_success_at
        FROM autopilot.job_definitions AS d
        LEFT JOIN cron AS c ON c.jobname = d.cron_jobname
        LEFT JOIN LATERAL (
            SELECT r.status, r.started_at, r.message
            FROM autopilot.job_runs AS r
            WHERE r.job_name = d.name
            ORDER BY r.started_at DESC
            LIMIT 1
        ) AS last_run ON true
        LEFT JOIN LATERAL (
            SELECT r.started_at
            FROM autopilot.job_runs AS r
            WHERE r.job_name = d.name
            ORDER BY r.started_at
            LIMIT 1
        ) AS first_run ON true
        WHERE d.active AND d.schedule IS NOT NULL
    ),

    timed AS (
        SELECT
            j.*,
            autopilot._schedule_interval(j.schedule, j.only_on_dow, now()) * st.overdue_factor AS allowed,
            coalesce(j.last_success_at, j.first_started_at, j.cron_last_start) AS reference,
            min(j.first_started_at) OVER () AS autopilot_first_run
        FROM jobs AS j
        CROSS JOIN settings AS st
        WHERE p_cron IS NOT NULL
    ),

    backup_databases AS (
        SELECT DISTINCT btrim(b.name) AS name
        FROM settings AS st
        CROSS JOIN LATERAL unnest(
            string_to_array(
                coalesce(nullif(btrim(st.backup_databases), ''), current_database()::text COLLATE "default"), ','
            )
        ) AS b (name)
        WHERE btrim(b.name) <> ''
          -- the backup jobs run: enabled and runnable here
          AND EXISTS (
              SELECT FROM autopilot.job_definitions AS d
              WHERE d.name IN ('backup-hourly', 'backup-daily') AND d.active
          )
    ),

    backups AS (
        SELECT
            b.name AS database_name,
            verified.finished_at AS verified_at,
            verified.id AS verified_id,
            least(
                (SELECT min(r.started_at) FROM autopilot.job_runs AS r WHERE r.job_name = 'backup-hourly'),
                (SELECT min(r.started_at) FROM autopilot.job_runs AS r WHERE r.job_name = 'backup-daily')
            ) AS first_backup_run,
            latest.id AS latest_id,
            latest.status AS latest_status,
            latest.finished_at AS latest_finished_at,
            latest.file_path AS latest_file_path,
            latest.error AS latest_error,
            (SELECT count(*) FROM autopilot.backup_metadata AS m
             WHERE m.database_name = b.name AND m.status = 'missing'
               AND m.finished_at > coalesce(verified.finished_at, '-infinity')) AS missing_count
        FROM backup_databases AS b
        LEFT JOIN LATERAL (
            SELECT m.id, m.finished_at
            FROM autopilot.backup_metadata AS m
            WHERE m.database_name = b.name AND m.status = 'verified'
            ORDER BY m.finished_at DESC, m.id DESC
            LIMIT 1
        ) AS verified ON true
        LEFT JOIN LATERAL (
            SELECT m.id, m.status, m.finished_at, m.file_path, m.error
            FROM autopilot.backup_metadata AS m
            WHERE m.database_name = b.name AND m.status IN ('verified', 'succeeded', 'missing', 'corrupt')
            ORDER BY m.finished_at DESC NULLS LAST, m.id DESC
            LIMIT 1
        ) AS latest ON true
    ),

    -- what autopilot sync would change in pg_cron (autopilot.plan_cron_sync, as autopilot status
    -- and sync see it): the cron checks below are its rows, so they can never disagree
    sync_plan AS (
        SELECT
            p.action, p.jobid, p.jobname, p.schedule, p.command, p.active, d.name,
            c.jobname AS cron_jobname, c.schedule AS cron_schedule, c.command AS cron_command, c.active AS cron_active
        FROM autopilot.plan_cron_sync(
            (
                SELECT coalesce(jsonb_agg(jsonb_build_object(
                    'jobid', c.jobid, 'jobname', c.jobname, 'schedule', c.schedule, 'command', c.command,
                    'database', current_database(), 'active', c.active
                )), '[]')
                FROM cron AS c
            ),
            current_database(),
            NULL
        ) AS p
        LEFT JOIN autopilot.job_definitions AS d ON p.action <> 'unschedule' AND d.cron_jobname = p.jobname
        LEFT JOIN cron AS c ON p.jobid = c.jobid
        WHERE jsonb_typeof(p_cron -> 'jobs') = 'array'
    ),

    due AS (
        SELECT j.queue, min(j.scheduled_at) AS oldest, count(*) AS n
        FROM autopilot.jobs AS j
        WHERE j.state IN ('available', 'scheduled', 'retryable') AND j.scheduled_at <= now()
        GROUP BY j.queue
    ),

    problems AS (
        -- a job that has not succeeded for twice its schedule's interval
        SELECT
            'critical' AS severity,
            'job_overdue' AS check_name,
            t.name AS subject,
            format(
                'job %s has not succeeded since %s (allowed: %s, %s times its schedule''s interval); '
                || 'see its last runs in autopilot status, run it now with autopilot run %s',
                t.name, coalesce(t.last_success_at::text, 'it was first run at ' || t.reference::text),
                t.allowed, (SELECT st.overdue_factor FROM settings AS st), t.name
            ) AS message,
            t.reference + t.allowed AS since
        FROM timed AS t
        WHERE t.reference IS NOT NULL AND now() - t.reference > t.allowed
        UNION ALL
        SELECT
            'warning',
            CASE j.last_status WHEN 'timed_out' THEN 'job_timed_out' ELSE 'job_failed' END,
            j.name,
            format(
                'the last run of job %s %s at %s: %s; fix the cause, then run it again with autopilot run %s',
                j.name, CASE j.last_status WHEN 'timed_out' THEN 'timed out' ELSE 'failed' END,
                j.last_started_at, coalesce(j.last_message, 'no message'), j.name
            ),
            j.last_started_at
        FROM jobs AS j
        WHERE j.last_status IN ('failed', 'timed_out')
        UNION ALL
        -- pg_cron's section: what pg_cron holds against what the catalog wants
        SELECT
            CASE WHEN p.active THEN 'critical' ELSE 'warning' END,
            CASE WHEN p.active THEN 'cron_missing' ELSE 'cron_out_of_sync' END,
            p.name,
            CASE WHEN p.active
                THEN format('pg_cron has no job %s, so %s never runs; run autopilot sync', p.jobname, p.name)
                ELSE format('pg_cron has no job %s for %s, which is disabled or cannot run here '
                            || '(sync keeps it there, inactive); run autopilot sync', p.jobname, p.name)
            END,
            NULL::timestamptz
        FROM sync_plan AS p
        WHERE p.action = 'schedule'
        UNION ALL
        SELECT
            'critical',
            'cron_inactive',
            p.name,
            format('pg_cron job %s (#%s) is inactive, so %s does not run; run autopilot sync '
                   || '(or autopilot schedule %s --disable if it should not run)',
                   p.jobname, p.jobid, p.name, p.name),
            NULL
        FROM sync_plan AS p
        WHERE p.action = 'alter' AND p.active AND NOT p.cron_active
        UNION ALL
        SELECT
            'warning',
            'cron_out_of_sync',
            coalesce(p.name, p.jobname),
            format('pg_cron job %s (#%s) %s; run autopilot sync',
                   coalesce(p.cron_jobname, p.jobname), p.jobid,
                   CASE
                       WHEN p.action = 'rename'
                           THEN format('has its name from before 0.4.0 (sync renames it %s)', p.jobname)
                       WHEN p.action = 'unschedule'
                           THEN 'is not a job of the catalog (any more)'
                       WHEN p.cron_schedule IS DISTINCT FROM p.schedule
                           THEN format('runs on %L, the catalog says %L', p.cron_schedule, p.schedule)
                       WHEN p.cron_command IS DISTINCT FROM p.command
                           THEN 'runs another command than the catalog''s'
                       ELSE format('is active, but job %s is disabled or cannot run here', p.name)
                   END),
            NULL
        FROM sync_plan AS p
        WHERE p.action IN ('rename', 'unschedule')
           OR (p.action = 'alter' AND NOT (p.active AND NOT p.cron_active))
        UNION ALL
        SELECT
            'warning',
            'cron_never_run',
            t.name,
            format('pg_cron job %s (#%s) has never run, although autopilot''s jobs have run since %s '
                   || '(more than %s ago); check that pg_cron runs (cron.job_run_details, the server log)',
                   t.cron_jobname, t.cron_jobid, t.autopilot_first_run, t.allowed),
            NULL
        FROM timed AS t
        WHERE t.cron_jobid IS NOT NULL AND t.cron_active AND t.cron_last_start IS NULL
          AND t.first_started_at IS NULL AND now() - t.autopilot_first_run > t.allowed
        UNION ALL
        -- backups
        SELECT
            'critical',
            'backup_overdue',
            b.database_name,
            CASE
                WHEN b.verified_at IS NULL THEN format(
                    'database %s has no verified backup, although the backup jobs have run since %s; '
                    || 'see autopilot backups list and the runner''s log, or take one with autopilot backups',
                    b.database_name, b.first_backup_run)
                ELSE format(
                    'the last verified backup of database %s (#%s) finished at %s, longer ago than '
                    || 'backups.overdue_after (%s); see autopilot backups list and the runner''s log',
                    b.database_name, b.verified_id, b.verified_at, st.backup_overdue_after)
            END,
            coalesce(b.verified_at, b.first_backup_run) + st.backup_overdue_after
        FROM backups AS b
        CROSS JOIN settings AS st
        WHERE now() - coalesce(b.verified_at, b.first_backup_run) > st.backup_overdue_after
        UNION ALL
        SELECT
            'critical',
            'backup_missing',
            b.database_name,
            format('%s backup(s) of database %s newer than its last verified one have lost their file '
                   || '(marked missing by autopilot backups verify); take a new backup and check what '
                   || 'deletes files in backups.directory',
                   b.missing_count, b.database_name),
            NULL
        FROM backups AS b
        WHERE b.missing_count > 0
        UNION ALL
        SELECT
            'warning',
            'backup_unverified',
            b.database_name,
            CASE b.latest_status
                WHEN 'corrupt' THEN format(
                    'the latest backup of database %s (#%s, %s) does not match its recorded sha256; '
                    || 'take a new backup', b.database_name, b.latest_id, b.latest_file_path)
                ELSE format(
                    'the latest backup of database %s (#%s, finished at %s) was never verified; '
                    || 'run autopilot backups verify %s', b.database_name, b.latest_id,
                    b.latest_finished_at, b.latest_id)
            END,
            b.latest_finished_at
        FROM backups AS b
        WHERE b.latest_status = 'corrupt'
           OR (b.latest_status = 'succeeded' AND b.latest_finished_at < now() - interval '10 minutes')
        UNION ALL
        -- the queue
        SELECT
            'critical',
            'runner_absent',
            current_database()::text COLLATE "default",
            format('%s runner job(s) wait (the oldest since %s) and no runner is connected or heartbeating; '
                   || 'start one with autopilot runner start', sum(d.n), min(d.oldest)),
            min(d.oldest) + min(st.runner_absent_after)
        FROM due AS d
        CROSS JOIN settings AS st
        WHERE NOT EXISTS (
            SELECT FROM pg_stat_activity AS a
            WHERE a.datname = current_database() AND a.application_name = 'autopilot runner'
        )
          AND NOT EXISTS (
              SELECT FROM autopilot.jobs AS j
              WHERE j.state = 'executing' AND j.heartbeat_at > now() - st.runner_absent_after
          )
        HAVING min(d.oldest) < now() - min(st.runner_absent_after)
        UNION ALL
        SELECT
            'warning',
            'queue_stalled',
            d.queue,
            format('the oldest of %s available job(s) in queue %s has waited since %s (longer than '
                   || 'health.queue_stalled_after, %s); check that a runner serves this queue and has free slots',
                   d.n, d.queue, d.oldest, st.queue_stalled_after),
            d.oldest + st.queue_stalled_after
        FROM due AS d
        CROSS JOIN settings AS st
        WHERE d.oldest < now() - st.queue_stalled_after
        UNION ALL
        SELECT
            'warning',
            'jobs_discarded',
            j.queue,
            format('%s job(s) of queue %s were discarded in the last 24 hours (workers: %s); '
                   || 'see their errors in autopilot.jobs, retry with autopilot.retry(id)',
                   count(*), j.queue, string_agg(DISTINCT j.worker, ', ')),
            min(j.discarded_at)
        FROM autopilot.jobs AS j
        WHERE j.state = 'discarded' AND coalesce(j.completed_at, j.discarded_at) > now() - interval '24 hours'
        GROUP BY j.queue
    )

    SELECT p.severity, p.check_name, p.subject, p.message, p.since
    FROM problems AS p
    ORDER BY p.severity = 'warning', p.check_name, p.subject
$$;

COMMENT ON FUNCTION autopilot._health(jsonb) IS
'Private: the problems autopilot.health lists, given pg_cron''s side (autopilot._health_cron_jobs() here; the CLI passes the same document from the pg_cron database when pg_cron lives elsewhere).';

-- sql/schema/views/health.sql
CREATE VIEW autopilot.health AS
SELECT
    h.severity,
    h.check_name,
    h.subject,
    h.message,
    h.since
FROM autopilot._health(autopilot._health_cron_jobs()) AS h;

COMMENT ON VIEW autopilot.health IS
'One row per problem a DBA should act on, critical or warning: jobs overdue (no success for twice their schedule''s interval, health.overdue_factor), failed or timed out; pg_cron jobs missing, inactive, out of sync or never run (when pg_cron lives in this database; autopilot check adds them from elsewhere); backups overdue, unverified or whose file is gone; no runner while jobs wait; a stalled queue; discarded jobs in the last 24 hours. Empty when all is well. autopilot check and autopilot status read it.';

REVOKE ALL ON FUNCTION autopilot._schedule_interval(text, integer, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot._health_cron_jobs() FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot._health(jsonb) FROM PUBLIC;

-- sql/settings/defaults.sql
INSERT INTO autopilot.settings (name, value_type, default_value, min_value, max_value, description)
VALUES
(
    'health.overdue_factor', 'numeric', '2', '1', '100',
    'autopilot.health calls a job overdue when its last success is older than this many times its '
    || 'schedule''s interval (the longest gap between its coming runs).'
),
(
    'health.queue_stalled_after', 'interval', '15 minutes', '1 minute', NULL,
    'autopilot.health warns (queue_stalled) when the oldest available runner job of a queue has waited this long.'
),
(
    'health.runner_absent_after', 'interval', '5 minutes', '10 seconds', NULL,
    'autopilot.health reports runner_absent when runner jobs have waited this long and no runner is connected '
    || 'or has heartbeaten for this long.'
);

-- _job_unavailable_reason reads the catalogs: to_regclass('cron.job_run_details') failed for a role
-- without USAGE on schema cron, so the read-only role could not read job_status in pg_cron's database
CREATE OR REPLACE FUNCTION autopilot._job_unavailable_reason(
    p_kind text, p_target text, p_requires_local_pg_cron boolean
)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- NULL when the job can run in this database, else why it cannot. A catalog
-- entry whose function arrives in a later version is registered with pg_cron,
-- inactive, so that upgrading is all it takes to switch it on.
BEGIN
    IF p_kind IN ('function', 'batched') AND to_regproc(p_target) IS NULL THEN
        RETURN format('%s() is not part of autopilot %s', p_target, autopilot.version());
    END IF;
    -- the catalogs, not to_regclass('cron.job_run_details'): that fails for a role without USAGE on
    -- schema cron (the read-only role, reading autopilot.job_status in pg_cron's database)
    IF p_requires_local_pg_cron AND NOT EXISTS (
        SELECT FROM pg_catalog.pg_class AS c
        JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname = 'cron' AND c.relname = 'job_run_details'
    ) THEN
        RETURN 'pg_cron is not installed in this database';
    END IF;
    RETURN NULL;
END;
$$;

-- Timeouts of database-side jobs (autopilot.set_job_timeout): a run past its job's timeout is
-- cancelled and recorded timed_out.

-- sql/schema/tables/job_catalog.sql, job_overrides.sql, job_runs.sql
ALTER TABLE autopilot.job_catalog
ADD COLUMN timeout interval NOT NULL DEFAULT '1 hour',
ADD CONSTRAINT job_catalog_timeout_check CHECK (timeout > interval '0');
ALTER TABLE autopilot.job_overrides
ADD COLUMN timeout interval,
DROP CONSTRAINT job_overrides_not_empty_check,
ADD CONSTRAINT job_overrides_not_empty_check CHECK (
    schedule IS NOT NULL OR enabled IS NOT NULL OR timeout IS NOT NULL
),
ADD CONSTRAINT job_overrides_timeout_check CHECK (timeout > interval '0');
ALTER TABLE autopilot.job_runs
DROP CONSTRAINT job_runs_status_check,
ADD CONSTRAINT job_runs_status_check CHECK (
    status IN ('running', 'succeeded', 'failed', 'skipped', 'abandoned', 'cancelled', 'timed_out')
);
-- sql/schema/tables/job_catalog.sql (comments)
COMMENT ON TABLE autopilot.job_catalog IS
'Every scheduled job of autopilot, database side (pg_cron runs SQL) and runner side (pg_cron enqueues into autopilot.jobs). autopilot.sync_schedules() makes cron.job match it.';
COMMENT ON COLUMN autopilot.job_catalog.kind IS
'function: the target function does the whole job and returns a jsonb summary; batched: the target function deletes or moves one bounded batch, and a scheduled run commits between batches; statement: pg_cron runs the target statement at top level (VACUUM, REINDEX CONCURRENTLY cannot run in a function); enqueue: a runner job is enqueued into autopilot.jobs, deduplicated.';
COMMENT ON COLUMN autopilot.job_catalog.schedule IS
'Default cron expression, UTC, pg_cron 1.4 syntax; NULL for a runner job that runs only at runner startup.';
COMMENT ON COLUMN autopilot.job_catalog.only_on_dow IS
'When set (0 = Sunday), a scheduled run fires only on that UTC weekday: cron ORs day-of-month and day-of-week, so "first Sunday" is day 1-7 plus this filter.';
COMMENT ON COLUMN autopilot.job_catalog.target IS
'The function (schema-qualified name) a job runs, the top-level statement of a statement job, or the worker name of a runner job.';
COMMENT ON COLUMN autopilot.job_catalog.queue IS 'Queue of autopilot.jobs that a runner job is enqueued into.';
COMMENT ON COLUMN autopilot.job_catalog.run_at_startup IS 'The runner enqueues this job when it starts (deduplicated).';
COMMENT ON COLUMN autopilot.job_catalog.startup_order IS
'The startup jobs with an order run as a chain, in that order: each waits (autopilot.jobs.depends_on) for the one before it to complete (autopilot.enqueue_startup_jobs).';
COMMENT ON COLUMN autopilot.job_catalog.args IS 'Arguments of the runner job enqueued by a runner-side entry.';
COMMENT ON COLUMN autopilot.job_catalog.requires_local_pg_cron IS 'The job works on pg_cron''s own tables, so it runs only where pg_cron is installed.';
COMMENT ON COLUMN autopilot.job_catalog.only_when_armed IS
'pg_cron runs the job only while another job has armed it (autopilot.job_arming); otherwise its pg_cron entry stays inactive.';
COMMENT ON COLUMN autopilot.job_catalog.disabled_reason IS
'Why the job ships disabled (no worker for its target ships with this version of the runner), shown by autopilot status; NULL: enabled by default. A DBA enables it with autopilot.set_job_enabled (autopilot schedule NAME --enable).';
COMMENT ON COLUMN autopilot.job_catalog.timeout IS
'Default timeout of a run of a function or batched job (autopilot.set_job_timeout overrides it): a run past it is cancelled and recorded timed_out. Statement and runner jobs do not use it (a runner job has its worker''s timeout).';

-- sql/schema/tables/job_overrides.sql (comments)
COMMENT ON TABLE autopilot.job_overrides IS
'A DBA''s changes to the catalog: another schedule, enabled/disabled, another timeout. Kept across re-syncs, upgrades and pg_dump/restore; written by autopilot.set_job_schedule(), set_job_enabled(), set_job_timeout() and reset_job().';
COMMENT ON COLUMN autopilot.job_overrides.schedule IS 'Cron expression replacing the catalog default; NULL keeps the default.';
COMMENT ON COLUMN autopilot.job_overrides.enabled IS 'false disables the job (its pg_cron entry stays, inactive); NULL keeps the default.';
COMMENT ON COLUMN autopilot.job_overrides.timeout IS 'Timeout replacing the catalog default (autopilot.set_job_timeout); NULL keeps the default.';

-- sql/schema/tables/job_runs.sql (comments)
COMMENT ON TABLE autopilot.job_runs IS
'The run ledger: one row for every run of every job, database side and runner side: when, how long, outcome, rows affected, error.';
COMMENT ON COLUMN autopilot.job_runs.trigger IS 'pg_cron (a scheduled run), manual (autopilot.run_job or the CLI), runner (an attempt of a runner job that ended: completed, failed, snoozed, cancelled or rescued).';
COMMENT ON COLUMN autopilot.job_runs.status IS
'running, succeeded, failed; skipped (database side: another run held the job''s lock; runner side: the job snoozed); abandoned (database side: the session ended mid-run, found by the next run; runner side: its runner stopped heartbeating, found by rescue-orphaned-jobs); cancelled (a runner job cancelled while executing); timed_out (database side: the run passed its job''s timeout and was cancelled, autopilot.set_job_timeout).';
COMMENT ON COLUMN autopilot.job_runs.error_sqlstate IS 'SQLSTATE of the error of a failed run.';
COMMENT ON COLUMN autopilot.job_runs.scheduled_for IS
'A pg_cron run: the tick of its schedule it was fired for (a run pg_cron queued while an earlier one overran started later than its tick). NULL for other runs.';
COMMENT ON COLUMN autopilot.job_runs.backend_pid IS 'Backend that ran the job; lets a later run tell a live run from an abandoned one.';

-- sql/schema/views/job_definitions.sql
CREATE OR REPLACE VIEW autopilot.job_definitions AS
SELECT
    c.name,
    c.side,
    c.kind,
    coalesce(a.schedule, o.schedule, c.schedule) AS schedule,
    c.schedule AS default_schedule,
    coalesce(o.enabled, c.disabled_reason IS NULL) AS enabled,
    c.only_on_dow,
    c.target,
    c.args,
    c.queue,
    c.run_at_startup,
    c.description,
    autopilot._job_unavailable_reason(c.kind, c.target, c.requires_local_pg_cron)
        AS unavailable_reason,
    -- autopilot._cron_jobname(c.name), written out: a view's functions need EXECUTE of every
    -- role that reads it, and these built-ins have it (tests/sql/_cron_jobname.sql compares them);
    -- current_database() is a name, whose collation ("C") the column must not take (RF02: sqlfluff
    -- reads "default" as a column)
    CASE
        WHEN octet_length(format('autopilot:%s:%s', current_database(), c.name)) <= 63
            THEN format('autopilot:%s:%s', current_database(), c.name)
        ELSE format(
            'autopilot:%s~%s:%s',
            CASE WHEN octet_length(left(current_database(), 16)) = 16 THEN left(current_database(), 16) ELSE '' END,
            left(md5(current_database()), 8), c.name
        )
    END COLLATE "default" AS cron_jobname, -- noqa: RF02
    CASE
        WHEN c.kind = 'statement' THEN coalesce(a.command, c.target)
        ELSE format('CALL autopilot.run_scheduled_job(%L)', c.name)
    END AS cron_command,
    c.only_when_armed,
    a.armed_at,
    -- what pg_cron's entry should say: enabled, runnable here, and armed when it must be
    coalesce(o.enabled, c.disabled_reason IS NULL)
    AND autopilot._job_unavailable_reason(c.kind, c.target, c.requires_local_pg_cron) IS NULL
    AND (NOT c.only_when_armed OR a.job_name IS NOT NULL) AS active,
    -- why it ships disabled, while the DBA has not enabled or disabled it
    CASE WHEN o.enabled IS NULL THEN c.disabled_reason END AS disabled_reason,
    coalesce(o.timeout, c.timeout) AS timeout,
    c.timeout AS default_timeout
FROM autopilot.job_catalog AS c
LEFT JOIN autopilot.job_overrides AS o ON c.name = o.job_name
LEFT JOIN autopilot.job_arming AS a ON c.name = a.job_name;

COMMENT ON VIEW autopilot.job_definitions IS
'The catalog with the DBA''s overrides applied: the schedule and state each job should have in pg_cron, the pg_cron job name and command, why a job cannot run here (unavailable_reason), whether pg_cron should run it (active), and the timeout of its runs. A job''s own arming (autopilot.job_arming) wins over overrides while it lasts.';

-- sql/functions/cron/set_job_timeout.sql
CREATE OR REPLACE FUNCTION autopilot.set_job_timeout(p_name text, p_timeout interval)
RETURNS interval
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job autopilot.job_definitions := autopilot._catalog_job(p_name);
BEGIN
    IF p_timeout IS NULL THEN
        RAISE EXCEPTION 'p_timeout must be an interval'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'autopilot.reset_job() returns a job to its catalog defaults.';
    END IF;
    IF p_timeout <= interval '0' THEN
        RAISE EXCEPTION 'invalid timeout "%" for autopilot job %: it must be positive', p_timeout, p_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('Give an interval such as ''30 minutes''; the catalog default of %s is %s.',
                                p_name, v_job.default_timeout);
    END IF;
    IF v_job.kind NOT IN ('function', 'batched') THEN
        RAISE EXCEPTION 'autopilot job % has no timeout of its own: it is a % job', p_name, v_job.kind
            USING ERRCODE = 'feature_not_supported',
                  HINT = CASE v_job.kind
                      WHEN 'statement' THEN 'A statement job runs at top level in pg_cron; only function and batched jobs time out.'
                      ELSE 'A runner job runs under its worker''s timeout (autopilot settings).'
                  END;
    END IF;
    INSERT INTO autopilot.job_overrides AS o (job_name, timeout)
    VALUES (p_name, p_timeout)
    ON CONFLICT (job_name) DO UPDATE
        SET timeout = excluded.timeout, updated_at = now(), updated_by = current_user;
    RETURN p_timeout;
END;
$$;

COMMENT ON FUNCTION autopilot.set_job_timeout(text, interval) IS
'Overrides the timeout of a function or batched job''s runs (positive; invalid_parameter_value and no change otherwise): a run past it is cancelled and recorded timed_out. Kept across syncs, upgrades and restores; autopilot.reset_job() returns to the catalog default.';

-- sql/functions/core/_cancel_timed_out_runs.sql
CREATE OR REPLACE FUNCTION autopilot._cancel_timed_out_runs()
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

-- sql/functions/cron/reset_job.sql
COMMENT ON FUNCTION autopilot.reset_job(text) IS
'Drops a job''s overrides, returning it to the catalog''s schedule, enabled state and timeout; returns that schedule.';

-- sql/grants/privileges.sql
REVOKE ALL ON FUNCTION autopilot.set_job_timeout(text, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot._cancel_timed_out_runs() FROM PUBLIC;

-- Retries of database-side jobs (autopilot.set_job_retries): a transient failure is retried with
-- backoff within the run, one ledger row per attempt.

-- sql/schema/tables/job_catalog.sql, job_overrides.sql, job_runs.sql
ALTER TABLE autopilot.job_catalog
ADD COLUMN max_attempts smallint NOT NULL DEFAULT 3,
ADD COLUMN retry_backoff interval NOT NULL DEFAULT '5 seconds',
ADD CONSTRAINT job_catalog_max_attempts_check CHECK (max_attempts BETWEEN 1 AND 100),
ADD CONSTRAINT job_catalog_retry_backoff_check CHECK (retry_backoff >= interval '0');
ALTER TABLE autopilot.job_overrides
ADD COLUMN max_attempts smallint,
ADD COLUMN retry_backoff interval,
DROP CONSTRAINT job_overrides_not_empty_check,
ADD CONSTRAINT job_overrides_not_empty_check CHECK (
    schedule IS NOT NULL OR enabled IS NOT NULL OR timeout IS NOT NULL
    OR max_attempts IS NOT NULL OR retry_backoff IS NOT NULL
),
ADD CONSTRAINT job_overrides_max_attempts_check CHECK (max_attempts BETWEEN 1 AND 100),
ADD CONSTRAINT job_overrides_retry_backoff_check CHECK (retry_backoff >= interval '0');
ALTER TABLE autopilot.job_runs
ADD COLUMN attempt smallint NOT NULL DEFAULT 1,
ADD CONSTRAINT job_runs_attempt_check CHECK (attempt >= 1);
COMMENT ON COLUMN autopilot.job_catalog.max_attempts IS
'Default attempts of a run of a function or batched job (autopilot.set_job_retries overrides it): a transient failure (serialization failure 40001, deadlock 40P01, lock not available 55P03) is retried within the run until then; any other error is not.';
COMMENT ON COLUMN autopilot.job_catalog.retry_backoff IS
'Default wait before the second attempt of a run; it doubles for every later attempt.';
COMMENT ON TABLE autopilot.job_overrides IS
'A DBA''s changes to the catalog: another schedule, enabled/disabled, another timeout or retry policy. Kept across re-syncs, upgrades and pg_dump/restore; written by autopilot.set_job_schedule(), set_job_enabled(), set_job_timeout(), set_job_retries() and reset_job().';
COMMENT ON COLUMN autopilot.job_overrides.max_attempts IS 'Attempts replacing the catalog default (autopilot.set_job_retries); NULL keeps the default.';
COMMENT ON COLUMN autopilot.job_overrides.retry_backoff IS 'First backoff replacing the catalog default (autopilot.set_job_retries); NULL keeps the default.';
COMMENT ON COLUMN autopilot.job_runs.attempt IS
'Database side: the attempt of its run this row records (1, then one more row for every retry of a transient failure, autopilot.set_job_retries).';

-- sql/schema/views/job_definitions.sql
CREATE OR REPLACE VIEW autopilot.job_definitions AS
SELECT
    c.name,
    c.side,
    c.kind,
    coalesce(a.schedule, o.schedule, c.schedule) AS schedule,
    c.schedule AS default_schedule,
    coalesce(o.enabled, c.disabled_reason IS NULL) AS enabled,
    c.only_on_dow,
    c.target,
    c.args,
    c.queue,
    c.run_at_startup,
    c.description,
    autopilot._job_unavailable_reason(c.kind, c.target, c.requires_local_pg_cron)
        AS unavailable_reason,
    -- autopilot._cron_jobname(c.name), written out: a view's functions need EXECUTE of every
    -- role that reads it, and these built-ins have it (tests/sql/_cron_jobname.sql compares them);
    -- current_database() is a name, whose collation ("C") the column must not take (RF02: sqlfluff
    -- reads "default" as a column)
    CASE
        WHEN octet_length(format('autopilot:%s:%s', current_database(), c.name)) <= 63
            THEN format('autopilot:%s:%s', current_database(), c.name)
        ELSE format(
            'autopilot:%s~%s:%s',
            CASE WHEN octet_length(left(current_database(), 16)) = 16 THEN left(current_database(), 16) ELSE '' END,
            left(md5(current_database()), 8), c.name
        )
    END COLLATE "default" AS cron_jobname, -- noqa: RF02
    CASE
        WHEN c.kind = 'statement' THEN coalesce(a.command, c.target)
        ELSE format('CALL autopilot.run_scheduled_job(%L)', c.name)
    END AS cron_command,
    c.only_when_armed,
    a.armed_at,
    -- what pg_cron's entry should say: enabled, runnable here, and armed when it must be
    coalesce(o.enabled, c.disabled_reason IS NULL)
    AND autopilot._job_unavailable_reason(c.kind, c.target, c.requires_local_pg_cron) IS NULL
    AND (NOT c.only_when_armed OR a.job_name IS NOT NULL) AS active,
    -- why it ships disabled, while the DBA has not enabled or disabled it
    CASE WHEN o.enabled IS NULL THEN c.disabled_reason END AS disabled_reason,
    coalesce(o.timeout, c.timeout) AS timeout,
    c.timeout AS default_timeout,
    coalesce(o.max_attempts, c.max_attempts) AS max_attempts,
    coalesce(o.retry_backoff, c.retry_backoff) AS retry_backoff
FROM autopilot.job_catalog AS c
LEFT JOIN autopilot.job_overrides AS o ON c.name = o.job_name
LEFT JOIN autopilot.job_arming AS a ON c.name = a.job_name;

COMMENT ON VIEW autopilot.job_definitions IS
'The catalog with the DBA''s overrides applied: the schedule and state each job should have in pg_cron, the pg_cron job name and command, why a job cannot run here (unavailable_reason), whether pg_cron should run it (active), and the timeout and retry policy of its runs. A job''s own arming (autopilot.job_arming) wins over overrides while it lasts.';

-- sql/functions/cron/set_job_retries.sql
CREATE OR REPLACE FUNCTION autopilot.set_job_retries(
    p_name text,
    p_max_attempts integer,
    p_backoff interval DEFAULT NULL
)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job autopilot.job_definitions := autopilot._catalog_job(p_name);
BEGIN
    IF p_max_attempts IS NULL THEN
        RAISE EXCEPTION 'p_max_attempts must be a number of attempts'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'autopilot.reset_job() returns a job to its catalog defaults.';
    END IF;
    IF p_max_attempts NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'invalid max attempts % for autopilot job %: it must be between 1 and 100', p_max_attempts, p_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = '1 means no retry; the catalog default is ' || v_job.max_attempts || '.';
    END IF;
    IF p_backoff < interval '0' THEN
        RAISE EXCEPTION 'invalid backoff "%" for autopilot job %: it must not be negative', p_backoff, p_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give an interval such as ''5 seconds'' (it doubles for every later attempt), or NULL to keep the current one.';
    END IF;
    IF v_job.kind NOT IN ('function', 'batched') THEN
        RAISE EXCEPTION 'autopilot job % has no retry policy of its own: it is a % job', p_name, v_job.kind
            USING ERRCODE = 'feature_not_supported',
                  HINT = CASE v_job.kind
                      WHEN 'statement' THEN 'A statement job runs at top level in pg_cron; only function and batched jobs retry.'
                      ELSE 'A runner job is retried by the runner (autopilot.jobs.max_attempts).'
                  END;
    END IF;
    INSERT INTO autopilot.job_overrides AS o (job_name, max_attempts, retry_backoff)
    VALUES (p_name, p_max_attempts, p_backoff)
    ON CONFLICT (job_name) DO UPDATE
        SET max_attempts = excluded.max_attempts,
            retry_backoff = coalesce(excluded.retry_backoff, o.retry_backoff),
            updated_at = now(),
            updated_by = current_user;
    RETURN p_max_attempts;
END;
$$;

COMMENT ON FUNCTION autopilot.set_job_retries(text, integer, interval) IS
'Overrides the retry policy of a function or batched job: up to p_max_attempts attempts per run (1: no retry) when a step fails transiently (40001, 40P01, 55P03), waiting p_backoff before the second (doubling after; NULL keeps the current backoff). invalid_parameter_value and no change on bad input. Kept across syncs, upgrades and restores; autopilot.reset_job() returns to the catalog defaults.';

-- sql/grants/privileges.sql
REVOKE ALL ON FUNCTION autopilot.set_job_retries(text, integer, interval) FROM PUBLIC;

-- sql/schema/tables/job_runs.sql: the running rows, which every scheduled run reads for the runs
-- past their timeout (autopilot._cancel_timed_out_runs)
CREATE INDEX job_runs_running_idx ON autopilot.job_runs (job_name)
WHERE status = 'running';

-- autopilot.job_status: the last success of a runner-side job is one probe of its partial index,
-- also when its worker never succeeded (it read every enqueue of the job)

-- sql/schema/views/job_status.sql
CREATE OR REPLACE VIEW autopilot.job_status AS
SELECT
    d.name,
    d.side,
    d.kind,
    d.schedule,
    d.enabled,
    d.only_on_dow,
    d.run_at_startup,
    d.unavailable_reason,
    d.cron_jobname,
    last_run.id AS last_run_id,
    last_run.trigger AS last_trigger,
    last_run.status AS last_status,
    last_run.started_at AS last_started_at,
    last_run.finished_at AS last_finished_at,
    last_run.finished_at - last_run.started_at AS last_duration,
    last_run.rows_affected AS last_rows_affected,
    last_run.message AS last_message,
    -- a runner job succeeds when its worker does: the run that enqueued it is not a success of it.
    -- Each side reads the newest entry of its own partial index (one query over both would read
    -- every enqueue of a runner job that never completed)
    CASE
        WHEN d.side = 'database'
            THEN (
                SELECT max(r.started_at) FROM autopilot.job_runs AS r
                WHERE r.job_name = d.name AND r.status = 'succeeded'
            )
        ELSE (
            SELECT max(r.started_at) FROM autopilot.job_runs AS r
            WHERE r.job_name = d.name AND r.status = 'succeeded' AND r.trigger = 'runner'
        )
    END AS last_success_at,
    d.disabled_reason
FROM autopilot.job_definitions AS d
LEFT JOIN LATERAL (
    SELECT
        r.id,
        r.trigger,
        r.status,
        r.started_at,
        r.finished_at,
        r.rows_affected,
        r.message
    FROM autopilot.job_runs AS r
    WHERE r.job_name = d.name
    ORDER BY r.started_at DESC
    LIMIT 1
) AS last_run ON true;

COMMENT ON VIEW autopilot.job_status IS
'Every catalog job with its effective schedule and state, its last run and its last successful run from the ledger (for a runner-side job, the last attempt its worker completed: enqueueing it is no success), and why it ships disabled (autopilot status adds pg_cron''s view and the next run time).';

-- sql/schema/tables/code_symbols.sql: one reference row per file, name and kind, with its count
ALTER TABLE autopilot.code_symbols
ADD COLUMN occurrences integer NOT NULL DEFAULT 1,
ADD CONSTRAINT code_symbols_occurrences_check CHECK (occurrences >= 1);
COMMENT ON COLUMN autopilot.code_symbols.line IS
'The line of the symbol; for a reference, its first use in the file.';
COMMENT ON COLUMN autopilot.code_symbols.occurrences IS
'How many times the file uses the name (one row per file, name and kind of reference); 1 for definitions and imports. graph-populate weights calls by it.';

-- sql/schema/tables/job_catalog.sql, sql/jobs/database_jobs.sql,
-- sql/functions/core/_run_job_step.sql, sql/functions/core/_enqueue_catalog_job.sql:
-- cron-history-cleanup where pg_cron lives in another database. A run there enqueues the runner
-- worker cron_history_cleanup, which prunes cron.job_run_details in pg_cron's database; the job
-- no longer needs pg_cron in this database.
ALTER TABLE autopilot.job_catalog ADD COLUMN cron_elsewhere_worker text;
ALTER TABLE autopilot.job_catalog ADD CONSTRAINT job_catalog_cron_elsewhere_worker_check CHECK (
    cron_elsewhere_worker IS NULL OR (side = 'database' AND kind IN ('function', 'batched'))
);
COMMENT ON COLUMN autopilot.job_catalog.cron_elsewhere_worker IS
'The runner worker that does this job where pg_cron lives in another database (its tables are out of reach of SQL run here): a run there enqueues it into queue default instead of running the target, and the runner records its run. NULL: the target always runs here.';
UPDATE autopilot.job_catalog
SET
    requires_local_pg_cron = false,
    cron_elsewhere_worker = 'cron_history_cleanup',
    description = 'Delete cron.job_run_details rows past cron_history.retention (pg_cron never prunes them); '
    || 'where pg_cron lives in another database, the runner does it there.'
WHERE name = 'cron-history-cleanup';

CREATE OR REPLACE FUNCTION autopilot._run_job_step(p_name text, p_cursor jsonb)
RETURNS autopilot.job_step
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job autopilot.job_definitions := autopilot._catalog_job(p_name);
    v_summary jsonb;
    v_step autopilot.job_step;
BEGIN
    IF v_job.unavailable_reason IS NOT NULL THEN
        RAISE EXCEPTION 'autopilot job % cannot run here: %', p_name, v_job.unavailable_reason
            USING ERRCODE = 'feature_not_supported';
    END IF;
    -- pg_cron's tables are in another database, out of reach of SQL run here: a job that has a
    -- runner worker for that case (job_catalog.cron_elsewhere_worker) is enqueued for the runner
    IF v_job.kind IN ('function', 'batched')
       AND EXISTS (
           SELECT FROM autopilot.job_catalog AS c
           WHERE c.name = p_name AND c.cron_elsewhere_worker IS NOT NULL
       )
       AND NOT EXISTS (
           SELECT FROM pg_catalog.pg_class AS c
           INNER JOIN pg_catalog.pg_namespace AS n ON c.relnamespace = n.oid
           WHERE n.nspname = 'cron' AND c.relname = 'job_run_details'
       ) THEN
        RETURN autopilot._enqueue_catalog_job(p_name);
    END IF;
    CASE v_job.kind
        WHEN 'function' THEN
            EXECUTE format('SELECT %s()', v_job.target::regproc) INTO v_summary;
            v_step := ROW(
                true, NULL,
                (v_summary ->> 'rows_affected')::bigint,
                v_summary ->> 'message',
                coalesce(v_summary, '{}')
            )::autopilot.job_step;
        WHEN 'batched' THEN
            -- through jsonb: a dynamic query's row type is unknown until it runs,
            -- so a scalar result keeps the step checkable (plpgsql_check)
            EXECUTE format('SELECT to_jsonb(%s($1, $2))', v_job.target::regproc)
            INTO v_summary
            USING coalesce(p_cursor, '{}'), autopilot.get_setting('cleanup.batch_size')::integer;
            v_step := jsonb_populate_record(NULL::autopilot.job_step, v_summary);
        WHEN 'enqueue' THEN
            v_step := autopilot._enqueue_catalog_job(p_name);
        ELSE
            RAISE EXCEPTION 'autopilot job % runs a statement that cannot run inside a function or a transaction block', p_name
                USING ERRCODE = 'feature_not_supported',
                      DETAIL = format('Its statement is: %s', v_job.target),
                      HINT = format('Run "autopilot run %s", or run the statement itself outside a transaction.', p_name);
    END CASE;
    RETURN v_step;
END;
$$;

COMMENT ON FUNCTION autopilot._run_job_step(text, jsonb) IS
'Private: runs one step of a job: the whole of a function job, one batch of a batched job (from the cursor), or the enqueue of a runner job (and of a job''s cron_elsewhere_worker where pg_cron lives in another database).';

-- sql/schema/tables/job_runs.sql, sql/functions/cron/_record_cron_runs.sql,
-- sql/functions/maintenance/_cleanup_cron_history_batch.sql: statement jobs' runs in the ledger,
-- brought from pg_cron's history by cron-history-cleanup before it prunes (the runner's worker
-- where pg_cron lives in another database)
ALTER TABLE autopilot.job_runs ADD COLUMN cron_runid bigint;
COMMENT ON COLUMN autopilot.job_runs.cron_runid IS
'A statement job''s run that pg_cron ran itself (VACUUM cannot run in a function): its cron.job_run_details runid, from which autopilot._record_cron_runs recorded it (once). NULL for every other run.';
CREATE UNIQUE INDEX job_runs_cron_runid_key ON autopilot.job_runs (cron_runid)
WHERE cron_runid IS NOT NULL;

CREATE FUNCTION autopilot._record_cron_runs(p_runs jsonb)
RETURNS bigint
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    -- pg_cron runs a statement job's statement itself (VACUUM cannot run in a function or a
    -- procedure), so nothing of autopilot records it while it runs: its runs are brought into the
    -- ledger from pg_cron's history, by cron-history-cleanup before it prunes (here, or where pg_cron
    -- lives in another database by the runner, which reads them there and passes them in). p_runs:
    -- cron.job_run_details rows with their cron.job jobname; only the finished runs of this
    -- database's statement jobs are recorded, each once (its runid); returns how many were new.
    WITH recorded AS (
        INSERT INTO autopilot.job_runs AS r (
            job_name, side, trigger, status, started_at, finished_at, message, backend_pid, cron_runid
        )
        SELECT
            d.name,
            'database',
            'pg_cron',
            x.status,
            x.start_time,
            greatest(x.start_time, coalesce(x.end_time, x.start_time)),
            'pg_cron: ' || coalesce(x.return_message, x.status),
            x.job_pid,
            x.runid
        FROM jsonb_to_recordset(p_runs) AS x (
            runid bigint, jobname text, job_pid integer, status text, return_message text,
            start_time timestamptz, end_time timestamptz
        )
        INNER JOIN autopilot.job_definitions AS d ON x.jobname = d.cron_jobname AND d.kind = 'statement'
        WHERE x.status IN ('succeeded', 'failed') AND x.start_time IS NOT NULL AND x.runid IS NOT NULL
        ON CONFLICT (cron_runid) WHERE cron_runid IS NOT NULL DO NOTHING
        RETURNING 1
    )

    SELECT count(*) FROM recorded
$$;

COMMENT ON FUNCTION autopilot._record_cron_runs(jsonb) IS
'Private: records in autopilot.job_runs the finished runs of this database''s statement jobs from pg_cron''s history (cron.job_run_details rows with their jobname), each once (job_runs.cron_runid); returns how many were new. cron-history-cleanup calls it before it prunes (the runner where pg_cron lives in another database).';
REVOKE ALL ON FUNCTION autopilot._record_cron_runs(jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION autopilot._cleanup_cron_history_batch(p_cursor jsonb, p_limit integer)
RETURNS autopilot.job_step
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- cron-history-cleanup, one batch. pg_cron never prunes cron.job_run_details,
-- and the table has only its primary key: walk it in runid order (runs start
-- in runid order) and stop at the first run younger than cron_history.retention.
DECLARE
    v_after bigint := coalesce((p_cursor ->> 'after')::bigint, 0);
    v_cutoff timestamptz := now() - autopilot.get_setting('cron_history.retention')::interval;
    v_ids bigint[];
    v_deleted bigint;
BEGIN
    -- the first batch first records the statement jobs' runs in the ledger (pg_cron ran them itself)
    IF NOT p_cursor ? 'after' THEN
        PERFORM autopilot._record_cron_runs(coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                'runid', d.runid, 'jobname', j.jobname, 'job_pid', d.job_pid, 'status', d.status,
                'return_message', d.return_message, 'start_time', d.start_time, 'end_time', d.end_time
            ))
            FROM cron.job_run_details AS d
            INNER JOIN cron.job AS j ON d.jobid = j.jobid
            WHERE j.database = current_database()
              AND j.jobname = ANY(ARRAY(
                  SELECT s.cron_jobname FROM autopilot.job_definitions AS s WHERE s.kind = 'statement'
              ))
              AND d.status IN ('succeeded', 'failed')
        ), '[]'));
    END IF;
    v_ids := ARRAY(
        SELECT d.runid FROM cron.job_run_details AS d
        WHERE d.runid > v_after
        ORDER BY d.runid
        LIMIT p_limit
    );
    DELETE FROM cron.job_run_details AS d
    WHERE d.runid = ANY(v_ids)
      AND d.status IN ('succeeded', 'failed')
      AND coalesce(d.end_time, d.start_time) < v_cutoff;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN ROW(
        -- the first run started after the cutoff ends the walk (a run still
        -- going, or one that ended recently, is kept but does not stop it)
        cardinality(v_ids) < p_limit
        OR EXISTS (SELECT FROM cron.job_run_details AS d
                   WHERE d.runid = ANY(v_ids) AND d.start_time >= v_cutoff),
        jsonb_build_object('after', v_ids[cardinality(v_ids)]),
        v_deleted, NULL, NULL
    )::autopilot.job_step;
END;
$$;

COMMENT ON FUNCTION autopilot._cleanup_cron_history_batch(jsonb, integer) IS
'cron-history-cleanup, one batch: deletes cron.job_run_details rows older than cron_history.retention (all of pg_cron''s history that this role may delete), in runid order; the first batch first records the statement jobs'' runs in the ledger (autopilot._record_cron_runs).';

-- sql/jobs/database_jobs.sql: index-reindex where pg_cron lives in another database (it cannot arm
-- index-reindex-step there): its run enqueues the runner worker index_reindex, which runs the planned
-- statements at top level in its own session
UPDATE autopilot.job_catalog
SET
    cron_elsewhere_worker = 'index_reindex',
    description = 'Rebuild bloated autopilot indexes concurrently '
    || '(where pg_cron lives in another database, on the runner).'
WHERE name = 'index-reindex';

-- A runner attempt's finished_at is its transaction's time, as jobs.completed_at: completions are
-- recorded in the transaction of the next claim, which must not seem to start before them

-- sql/functions/queue/_record_runner_attempts.sql
CREATE OR REPLACE FUNCTION autopilot._record_runner_attempts(p_jobs autopilot.jobs[], p_status text, p_messages text[])
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
            -- the transaction's time, as jobs.completed_at: the runner records completions in the
            -- transaction of its next claim, whose attempted_at (now()) must not precede them
            greatest(now(), j.attempted_at),
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

-- New jobs announce themselves: enqueue, enqueue_many and _enqueue_catalog_job NOTIFY autopilot_jobs
-- (a plain INSERT when no unique key is given); the INSERT trigger and its transition table go.
DROP TRIGGER IF EXISTS jobs_notify_insert_trg ON autopilot.jobs;

-- sql/functions/queue/_notify_jobs_available.sql
CREATE OR REPLACE FUNCTION autopilot._notify_jobs_available()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- @plpgsql_check_options: newtable = new_rows
--
-- Statement trigger on autopilot.jobs (after UPDATE): one NOTIFY autopilot_jobs
-- per queue in which the statement made a job ready to run now (retried,
-- rescued, released), payload the queue's name, so that an idle runner
-- LISTENing starts it at once instead of at its next poll. Delivered at commit;
-- PostgreSQL folds identical notifications of one transaction. Jobs due later
-- are found by the runners' polling. New jobs are announced by the functions
-- that add them (enqueue, enqueue_many, _enqueue_catalog_job), not by an INSERT
-- trigger: its transition table cost a one-job enqueue more than the NOTIFY.
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
'Private: statement trigger on autopilot.jobs (after UPDATE); NOTIFY autopilot_jobs (payload: the queue) for each queue in which a statement made a job ready to run now.';

-- _code_tokens compiled where the library can be loaded (src/code_tokens.c)
-- sql/functions/search/_code_tokens.sql (its second half)
-- The same, compiled (src/code_tokens.c), where it can be: in an extension install (CREATE
-- EXTENSION / ALTER EXTENSION UPDATE, the library installed beside the control file) by a
-- superuser (C functions are untrusted). It gives the SQL definition's result byte for byte (text
-- outside ASCII goes through the same regexp_replace calls), so code_chunks.search_vector and
-- knowledge_artifacts.search_vector, generated from it, hold the same values either way; it is the
-- biggest part of the server's work in a code-ingest.
DO $do$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'autopilot')
        OR NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user) THEN
        RETURN;
    END IF;
    CREATE OR REPLACE FUNCTION autopilot._code_tokens(p_text text)
    RETURNS text
    LANGUAGE c
    IMMUTABLE
    STRICT
    PARALLEL SAFE
    -- no SET search_path, unlike every other function: C code that resolves no name has nothing to
    -- pin, and a SET clause is a GUC save and restore on every call (one per chunk written)
    AS '$libdir/autopilot', 'autopilot_code_tokens';

    -- the same comment as the SQL definition's: the same function, whichever language
    COMMENT ON FUNCTION autopilot._code_tokens(text) IS
    'Code text as words for full-text search: identifiers split on camelCase, snake_case and dots '
    '(getHTTPResponse_code: get HTTP Response code); used by code_chunks.search_vector and search_code''s '
    'query.';
EXCEPTION
    WHEN undefined_file THEN
        RAISE NOTICE 'autopilot''s library is not installed on this server: code tokens are computed in SQL, slower'
        USING HINT = 'Install the library (make install) before CREATE EXTENSION autopilot to use the compiled tokenizer.';
END;
$do$;

-- KEEP THIS SECTION LAST. Where pg_cron is in this database, the update resyncs pg_cron
-- itself (new and changed jobs, the renames to autopilot:<database>:<job>), so that nothing
-- is left for "autopilot sync". A sync that fails (a name taken by a job of this role in
-- another database) does not undo the update: it warns, and "autopilot status" reports
-- pg_cron out of sync. Where pg_cron is in another database, "autopilot sync" does it.
DO $$
BEGIN
    PERFORM autopilot._sync_if_local();
EXCEPTION
    WHEN OTHERS THEN
        RAISE WARNING 'autopilot: pg_cron was not resynced after the update: %', SQLERRM
            USING HINT = 'SELECT * FROM autopilot.sync_schedules(); (or "autopilot sync") once the cause is fixed.';
END
$$;
