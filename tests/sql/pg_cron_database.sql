-- autopilot.pg_cron_database(): the database pg_cron runs in.
BEGIN;
SELECT plan(3);

SELECT has_function(
    'autopilot', 'pg_cron_database', ARRAY[]::text[], 'autopilot.pg_cron_database() exists'
);
SELECT is(
    autopilot.pg_cron_database(), current_setting('cron.database_name', true),
    'pg_cron_database() is cron.database_name'
);
-- the suite runs in pg_cron's database where pg_cron is loaded (PostgreSQL 15), and on a server
-- without pg_cron (PostgreSQL 18), where there is no such database
SELECT is(
    autopilot.pg_cron_database(),
    (
        SELECT current_database()::text FROM pg_catalog.pg_extension
        WHERE extname = 'pg_cron'
    ),
    'with pg_cron created in this database, it is this database; without pg_cron loaded, NULL'
);

SELECT * FROM finish();
ROLLBACK;
