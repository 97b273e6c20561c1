-- autopilot.version(): the version of the installed SQL.
BEGIN;
SELECT plan(6);

SELECT has_function('autopilot', 'version', ARRAY[]::text[], 'autopilot.version() exists');
SELECT function_returns('autopilot', 'version', ARRAY[]::text[], 'text', 'version() returns text');
SELECT volatility_is('autopilot', 'version', ARRAY[]::text[], 'immutable', 'version() is immutable');

SELECT matches(
    autopilot.version(), '^[0-9]+\.[0-9]+\.[0-9]+$',
    'version() is a semantic version (the build substituted the placeholder)'
);

SELECT is(
    autopilot.version(),
    coalesce(
        (
            SELECT e.extversion FROM pg_extension AS e
            WHERE e.extname = 'autopilot'
        ),
        autopilot.version()
    ),
    'in extension mode, version() is the installed extension version'
);

SELECT ok(
    EXISTS (
        SELECT FROM pg_available_extension_versions AS v
        WHERE v.name = 'autopilot' AND v.version = autopilot.version()
    ),
    'version() names a version of autopilot that is available on this server'
);

SELECT * FROM finish();
ROLLBACK;
