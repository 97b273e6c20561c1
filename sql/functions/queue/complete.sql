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
