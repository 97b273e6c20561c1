-- plpgsql_check over every PL/pgSQL function and procedure of schema autopilot.
--
-- Run it in a database where pg_cron, plpgsql_check and autopilot are installed
-- (either install mode): CREATE EXTENSION plpgsql_check; then this query. It
-- returns one row per error or warning; the build fails when it returns any.
--
-- Checked: fatal errors (all of them: fatal_errors => false keeps checking after
-- the first), other and extra warnings (unused variables and parameters, dead
-- code, shadowed variables, missing RETURN), security warnings (EXECUTE of an
-- unsanitized string) and compatibility warnings.
--
-- Ignored, and only these: findings of level 'performance'. They flag hidden
-- casts such as `v_rows bigint := 0` (integer literal into bigint) or a `name`
-- column compared with text, which cost nothing measurable here and whose
-- "fixes" would only add casts to the source.
--
-- A trigger function is checked against the first table it is attached to;
-- plpgsql_check needs a relation to resolve NEW and OLD, and the names of the
-- transition tables (the function's @plpgsql_check_options comment).
SELECT
    p.oid::regprocedure AS routine,
    r.lineno,
    r.statement,
    r.level,
    r.sqlstate,
    r.message,
    r.detail,
    r.hint,
    r.context
FROM pg_catalog.pg_proc AS p
INNER JOIN pg_catalog.pg_language AS l ON p.prolang = l.oid
CROSS JOIN
    LATERAL plpgsql_check_function_tb(
        p.oid,
        relid => coalesce(
            (
                SELECT t.tgrelid
                FROM pg_catalog.pg_trigger AS t
                WHERE t.tgfoid = p.oid
                ORDER BY t.oid
                LIMIT 1
            ),
            0
        )::regclass,
        fatal_errors => false,
        other_warnings => true,
        extra_warnings => true,
        performance_warnings => false,
        security_warnings => true,
        compatibility_warnings => true
    ) AS r
WHERE
    p.pronamespace = 'autopilot'::regnamespace
    AND l.lanname = 'plpgsql'
    AND r.level IS DISTINCT FROM 'performance'
ORDER BY p.oid::regprocedure::text, r.lineno;
