CREATE FUNCTION autopilot._job_unavailable_reason(
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

COMMENT ON FUNCTION autopilot._job_unavailable_reason(text, text, boolean) IS
'Private: NULL when a catalog job can run here, else the reason (its function is not in this version, or it needs pg_cron in this database).';
