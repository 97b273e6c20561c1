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
