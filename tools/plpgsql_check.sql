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
-- A trigger function is checked against each table it is attached to: plpgsql_check
-- needs a relation to resolve NEW and OLD, and the names of the transition tables
-- (the function's @plpgsql_check_options comment, else those of its triggers on that
-- table). A function serving several tables (autopilot._mark_metrics_pending) has a
-- branch per table over transition tables named after it; checked against one table,
-- the other tables' branches name transition tables that do not exist there, and
-- those errors alone are dropped: each branch is checked in its own table's pass. So are,
-- likewise, the fields of NEW that a branch reads as a row trigger of another table
-- (jobs_metrics_insert_trg): NEW is a row of the table of the pass.
SELECT DISTINCT
    p.oid::regprocedure::text AS routine,
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
LEFT JOIN LATERAL (
    SELECT
        t.tgrelid,
        max(t.tgoldtable) AS oldtable,
        max(t.tgnewtable) AS newtable
    FROM pg_catalog.pg_trigger AS t
    WHERE t.tgfoid = p.oid
    GROUP BY t.tgrelid
) AS trg ON true
CROSS JOIN
    LATERAL plpgsql_check_function_tb(
        p.oid,
        relid => coalesce(trg.tgrelid, 0)::regclass,
        fatal_errors => false,
        other_warnings => true,
        extra_warnings => true,
        performance_warnings => false,
        security_warnings => true,
        compatibility_warnings => true,
        oldtable => trg.oldtable,
        newtable => trg.newtable
    ) AS r
WHERE
    p.pronamespace = 'autopilot'::regnamespace
    AND l.lanname = 'plpgsql'
    AND r.level IS DISTINCT FROM 'performance'
    AND NOT (
        r.sqlstate = '42P01'
        AND r.message IN (
            SELECT format('relation "%s" does not exist', n.name)
            FROM pg_catalog.pg_trigger AS other
            CROSS JOIN LATERAL unnest(ARRAY[other.tgoldtable, other.tgnewtable]) AS n (name)
            WHERE
                other.tgfoid = p.oid
                AND other.tgrelid <> trg.tgrelid
                AND n.name IS DISTINCT FROM trg.oldtable
                AND n.name IS DISTINCT FROM trg.newtable
        )
    )
    AND NOT (
        r.sqlstate = '42703'
        AND r.message IN (
            SELECT format('record "new" has no field "%s"', a.attname)
            FROM pg_catalog.pg_trigger AS other
            INNER JOIN pg_catalog.pg_attribute AS a ON other.tgrelid = a.attrelid
            WHERE
                other.tgfoid = p.oid
                AND other.tgrelid <> trg.tgrelid
                AND other.tgtype::integer & 1 = 1  -- FOR EACH ROW
                AND a.attnum > 0
                AND NOT a.attisdropped
        )
    )
ORDER BY routine, r.lineno;
