CREATE FUNCTION autopilot._job_lock_key(p_name text)
RETURNS bigint
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- one advisory lock per job; the high half marks the key as autopilot's
    SELECT (x'61757470'::bigint << 32) | (hashtext(p_name)::bigint & x'ffffffff'::bigint)
$$;

COMMENT ON FUNCTION autopilot._job_lock_key(text) IS
'Private: the advisory lock key that makes two runs of one job exclusive.';
