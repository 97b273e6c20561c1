-- autopilot.get_setting(): the DBA's value, else the default; unknown names raise.
BEGIN;
SELECT plan(8);

SELECT has_function('autopilot', 'get_setting', ARRAY['text'], 'autopilot.get_setting(text) exists');

-- no DBA values: every setting reads as its default
DELETE FROM autopilot.setting_values;

SELECT is_empty(
    $$
        SELECT s.name FROM autopilot.settings AS s
        WHERE autopilot.get_setting(s.name) IS DISTINCT FROM s.default_value
    $$,
    'without a DBA value, every setting reads as its default'
);

SELECT is(autopilot.get_setting('cleanup.batch_size'), '5000', 'cleanup.batch_size defaults to 5000');

SELECT is_empty(
    $$
        SELECT s.name FROM autopilot.settings AS s
        WHERE autopilot._setting_value_error(s.value_type, s.default_value, s.min_value, s.max_value)
            IS NOT NULL
    $$,
    'every default is a valid value of its setting''s type, within its range'
);

INSERT INTO autopilot.setting_values (name, value) VALUES ('jobs.completed_retention', '3 days');

SELECT is(
    autopilot.get_setting('jobs.completed_retention'), '3 days',
    'a DBA value wins over the default'
);

SELECT is(
    autopilot.get_setting('jobs.discarded_retention'), '30 days',
    'other settings keep their defaults'
);

SELECT throws_ok(
    $$SELECT autopilot.get_setting('no.such_setting')$$,
    '42704', NULL,
    'an unknown setting raises undefined_object'
);

SELECT throws_ok(
    $$SELECT autopilot.get_setting(NULL)$$,
    '42704', NULL,
    'a NULL name raises undefined_object'
);

SELECT * FROM finish();
ROLLBACK;
