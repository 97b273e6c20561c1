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
