-- autopilot.reset_setting(): back to the default.
BEGIN;
SELECT plan(7);

SELECT has_function('autopilot', 'reset_setting', ARRAY['text'], 'autopilot.reset_setting(text) exists');

SELECT is(autopilot.set_setting('backups.archive_after', '30 days'), '30 days', 'a DBA value is set');

SELECT is(
    autopilot.reset_setting('backups.archive_after'), '90 days',
    'reset_setting returns the default'
);
SELECT is(autopilot.get_setting('backups.archive_after'), '90 days', 'the setting reads as its default again');
SELECT is_empty(
    $$SELECT FROM autopilot.setting_values WHERE name = 'backups.archive_after'$$,
    'the DBA value is gone from setting_values'
);
SELECT is(
    autopilot.reset_setting('cleanup.batch_size'), '5000',
    'resetting a setting that was never set returns its default'
);
SELECT throws_ok(
    $$SELECT autopilot.reset_setting('no.such_setting')$$,
    '42704', NULL, 'an unknown setting raises undefined_object'
);

SELECT * FROM finish();
ROLLBACK;
