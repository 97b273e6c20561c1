CREATE FUNCTION autopilot.sync_schedules()
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
