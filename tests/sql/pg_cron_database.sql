-- autopilot.pg_cron_database(): the database pg_cron runs in.
BEGIN;
SELECT plan(4);

SELECT has_function(
    'autopilot', 'pg_cron_database', ARRAY[]::text[], 'autopilot.pg_cron_database() exists'
);
SELECT is(
    autopilot.pg_cron_database(), current_setting('cron.database_name', true),
    'pg_cron_database() is cron.database_name'
);
SELECT isnt(autopilot.pg_cron_database(), NULL, 'pg_cron is loaded on this server: not NULL');
-- pg_cron can only be created in cron.database_name, and it is created here
SELECT is(
    autopilot.pg_cron_database(), current_database()::text,
    'with pg_cron created in this database, it is this database'
);

SELECT * FROM finish();
ROLLBACK;
