CREATE FUNCTION autopilot.plan_cron_sync(
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
