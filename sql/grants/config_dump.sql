-- pg_dump dumps an extension's tables only when they are marked as
-- configuration: mark every table whose rows are the user's (and the sequences
-- behind their identity columns). The catalog and the setting definitions
-- belong to the extension script and are recreated by CREATE EXTENSION; the
-- DBA's overrides live in job_overrides and setting_values, which are dumped.
-- In schema mode (no extension) pg_dump dumps everything and this does nothing.
DO $$
DECLARE
    v_relation regclass;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'autopilot') THEN
        RETURN;
    END IF;
    FOR v_relation IN
        SELECT c.oid::regclass
        FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'autopilot'::regnamespace
          AND c.relkind IN ('r', 'S')
          AND c.relname NOT IN ('job_catalog', 'settings')
        ORDER BY c.relname
    LOOP
        PERFORM pg_catalog.pg_extension_config_dump(v_relation, '');
    END LOOP;
END;
$$;
