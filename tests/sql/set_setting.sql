-- autopilot.set_setting(): typed, range-checked, upserted into setting_values.
BEGIN;
SELECT plan(33);

SELECT has_function(
    'autopilot', 'set_setting', ARRAY['text', 'text'], 'autopilot.set_setting(text, text) exists'
);

DELETE FROM autopilot.setting_values;

SELECT is(autopilot.set_setting('cleanup.batch_size', '250'), '250', 'set_setting returns the value');
SELECT is(autopilot.get_setting('cleanup.batch_size'), '250', 'get_setting reads the new value');
SELECT results_eq(
    $$SELECT name, value, updated_by = current_user FROM autopilot.setting_values$$,
    $$VALUES ('cleanup.batch_size'::text, '250'::text, true)$$,
    'the value is stored in setting_values, with who set it'
);

SELECT is(autopilot.set_setting('cleanup.batch_size', '300'), '300', 'setting it again replaces the value');
SELECT is(
    (
        SELECT count(*)::integer FROM autopilot.setting_values
        WHERE name = 'cleanup.batch_size'
    ),
    1,
    'one row per setting'
);

-- bounds are inclusive
SELECT is(autopilot.set_setting('cleanup.batch_size', '1'), '1', 'the minimum is allowed');
SELECT is(autopilot.set_setting('cleanup.batch_size', '1000000'), '1000000', 'the maximum is allowed');

SELECT throws_ok(
    $$SELECT autopilot.set_setting('cleanup.batch_size', '0')$$,
    '22023', NULL, 'below the minimum raises invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT autopilot.set_setting('cleanup.batch_size', '1000001')$$,
    '22023', NULL, 'above the maximum raises invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT autopilot.set_setting('cleanup.batch_size', 'lots')$$,
    '22023', NULL, 'a non-integer raises invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT autopilot.set_setting('cleanup.batch_size', '2.5')$$,
    '22023', NULL, 'a fraction for an integer setting raises invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT autopilot.set_setting('cleanup.batch_size', '99999999999999999999')$$,
    '22023', NULL, 'an integer out of bigint range raises invalid_parameter_value'
);
SELECT is(
    autopilot.get_setting('cleanup.batch_size'), '1000000',
    'a rejected value leaves the setting unchanged'
);

-- intervals: retention periods may not be negative
SELECT throws_ok(
    $$SELECT autopilot.set_setting('jobs.completed_retention', '-1 day')$$,
    '22023', NULL, 'a negative retention raises invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT autopilot.set_setting('job_runs.retention', '1 hour')$$,
    '22023', NULL, 'a retention below its minimum (job_runs.retention >= 1 day) is rejected'
);
SELECT throws_ok(
    $$SELECT autopilot.set_setting('jobs.completed_retention', 'forever')$$,
    '22023', NULL, 'a malformed interval raises invalid_parameter_value'
);
SELECT is(
    autopilot.set_setting('jobs.completed_retention', '0'), '0',
    'a zero retention is allowed where the minimum is 0'
);
SELECT is(
    autopilot.set_setting('jobs.discarded_retention', '2 weeks'), '2 weeks',
    'an interval in words is accepted'
);

-- numeric
SELECT throws_ok(
    $$SELECT autopilot.set_setting('patterns.keep_confidence', '1.5')$$,
    '22023', NULL, 'a confidence above 1 is rejected'
);
SELECT is(
    autopilot.set_setting('patterns.keep_confidence', '0.5'), '0.5', 'a confidence of 0.5 is accepted'
);

SELECT throws_ok(
    $$SELECT autopilot.set_setting('cleanup.batch_size', NULL)$$,
    '22023', NULL, 'a NULL value raises invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT autopilot.set_setting('no.such_setting', '1')$$,
    '42704', NULL, 'an unknown setting raises undefined_object'
);

-- paths: backups.directory is absolute (never the runner's working directory)
SELECT throws_ok(
    $$SELECT autopilot.set_setting('backups.directory', '')$$,
    '22023', NULL, 'an empty backups.directory raises invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT autopilot.set_setting('backups.directory', 'backups')$$,
    '22023', NULL, 'a relative backups.directory raises invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT autopilot.set_setting('backups.directory', './backups')$$,
    '22023', NULL, 'a ./ relative backups.directory raises invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT autopilot.set_setting('backups.directory', '/var/backups/../../etc')$$,
    '22023', NULL, 'a backups.directory with a .. component raises invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT autopilot.set_setting('backups.directory', E'/var/backups/\nx')$$,
    '22023', NULL, 'a backups.directory with a control character raises invalid_parameter_value'
);
SELECT is(
    autopilot.set_setting('backups.directory', '/srv/backups/autopilot..d'), '/srv/backups/autopilot..d',
    'an absolute backups.directory is accepted (.. only as part of a name)'
);

-- allowed values: backups.format is custom or directory
SELECT throws_ok(
    $$SELECT autopilot.set_setting('backups.format', 'tar')$$,
    '22023', NULL, 'backups.format tar raises invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT autopilot.set_setting('backups.format', '')$$,
    '22023', NULL, 'an empty backups.format raises invalid_parameter_value'
);
SELECT is(
    autopilot.set_setting('backups.format', 'directory'), 'directory', 'backups.format directory is accepted'
);
SELECT results_eq(
    $$SELECT value FROM autopilot.setting_values WHERE name IN ('backups.directory', 'backups.format')
      ORDER BY name$$,
    $$VALUES ('/srv/backups/autopilot..d'::text), ('directory'::text)$$,
    'rejected backup settings left the accepted values in place'
);

SELECT * FROM finish();
ROLLBACK;
