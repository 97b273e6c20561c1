-- Name resolution in the routines that run as a privileged role (pg_cron runs them as the
-- installing role, often a superuser, in a session whose search_path the database's owner
-- can set). Functions pin search_path with a SET clause (tests/sql/meta.sql). A procedure
-- that COMMITs cannot carry one, so it pins the path itself in every transaction it runs
-- and names its variables' types with their schema: they are resolved when the body is
-- compiled, before any statement runs. (tests/py/test_search_path_attack.py plants the
-- shadows and runs everything.)
BEGIN;
SELECT plan(4);

CREATE TEMPORARY VIEW tap_procedures AS
SELECT
    p.oid::regprocedure::text AS signature,
    p.prosrc
FROM pg_proc AS p
WHERE p.pronamespace = 'autopilot'::regnamespace AND p.prokind = 'p';

SELECT isnt_empty($$SELECT * FROM tap_procedures$$, 'there are procedures to check');

SELECT is_empty(
    $$SELECT signature FROM tap_procedures
      WHERE regexp_count(prosrc, '\mCOMMIT;')
            <> regexp_count(prosrc, 'COMMIT;\s*PERFORM pg_catalog\.set_config\(''search_path'', ''pg_catalog, pg_temp'', true\);')$$,
    'in every procedure, every COMMIT is followed by the pin of the next transaction''s search_path'
);

SELECT is_empty(
    $$SELECT signature FROM tap_procedures
      WHERE substring(prosrc FROM '\nBEGIN\n(.*)$') !~ '^\s*(--[^\n]*\n\s*)*COMMIT;'$$,
    'every procedure starts with a COMMIT (so that its first transaction is its own, and pinned)'
);

SELECT is_empty(
    $$SELECT format('%s: %s', signature, d.line)
      FROM tap_procedures,
          regexp_split_to_table(substring(prosrc FROM 'DECLARE\n(.*?)\nBEGIN\n'), '\n') AS d (line)
      WHERE d.line ~ '^\s*\w+\s'
        AND (regexp_match(d.line, '^\s*\w+\s+(?:constant\s+)?([^\s;:]+)'))[1]
            !~ '^(autopilot\.|pg_catalog\.|bigint$|integer$|smallint$|boolean$|numeric$|real$|double$|interval$|timestamp$)'$$,
    'every variable of a procedure is declared with a keyword type or a schema-qualified one'
);

SELECT * FROM finish();
ROLLBACK;
