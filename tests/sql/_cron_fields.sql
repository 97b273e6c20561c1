-- autopilot._cron_fields(): a valid schedule's five fields as pg_cron reads them, the one reading
-- _cron_ticks and _schedule_interval share.
BEGIN;
SELECT plan(11);

SELECT has_function('autopilot', '_cron_fields', ARRAY['text'], 'autopilot._cron_fields(text) exists');
SELECT volatility_is('autopilot', '_cron_fields', ARRAY['text'], 'immutable', '_cron_fields is immutable');
SELECT is(autopilot._cron_fields('*/5 1-3 * jan,jun 1'), ARRAY['*/5', '1-3', '*', 'jan,jun', '1'], 'five fields');
SELECT is(
    autopilot._cron_fields(E' \n\t0  3\t* * 0 \n'), ARRAY['0', '3', '*', '*', '0'],
    'blanks and empty lines before it and white space after it dropped; spaces and tabs between fields'
);
SELECT is(autopilot._cron_fields('@yearly'), ARRAY['0', '0', '1', '1', '*'], '@yearly: January 1st, 00:00');
SELECT is(autopilot._cron_fields('@annually'), autopilot._cron_fields('@yearly'), '@annually is @yearly');
SELECT is(autopilot._cron_fields('@monthly'), ARRAY['0', '0', '1', '*', '*'], '@monthly: the 1st, 00:00');
SELECT is(autopilot._cron_fields('@weekly'), ARRAY['0', '0', '*', '*', '0'], '@weekly: Sunday 00:00');
SELECT is(autopilot._cron_fields(' @daily '), ARRAY['0', '0', '*', '*', '*'], '@daily, white space around it');
SELECT is(autopilot._cron_fields('@midnight'), autopilot._cron_fields('@daily'), '@midnight is @daily');
SELECT is(autopilot._cron_fields('@hourly'), ARRAY['0', '*', '*', '*', '*'], '@hourly: minute 0 of every hour');

SELECT * FROM finish();
ROLLBACK;
