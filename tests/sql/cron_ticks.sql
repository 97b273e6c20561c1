-- autopilot._cron_field_values() and autopilot._cron_ticks(): the minutes at which
-- pg_cron fires a schedule, read as pg_cron 1.4 reads it (UTC; day of month and day
-- of week OR-ed when both are restricted). The catch-up rule of a pg_cron run
-- (tests/sql/catch_up.sql) is built on them.
BEGIN;
SELECT plan(14);
SET LOCAL timezone = 'Asia/Kolkata';

SELECT is(autopilot._cron_field_values('*', 2), array(SELECT generate_series(0, 23)), '* is every hour');
SELECT is(autopilot._cron_field_values('*/15', 1), ARRAY[0, 15, 30, 45], 'a step over *');
SELECT is(autopilot._cron_field_values('5-59/10', 1), ARRAY[5, 15, 25, 35, 45, 55], 'a step over a range');
SELECT is(autopilot._cron_field_values('1,3,3,2', 3), ARRAY[1, 2, 3], 'a list, sorted and without duplicates');
SELECT is(autopilot._cron_field_values('jan,jun-aug', 4), ARRAY[1, 6, 7, 8], 'month names and a range of them');
SELECT is(autopilot._cron_field_values('mon-fri/2', 5), ARRAY[1, 3, 5], 'weekday names with a step');
SELECT is(autopilot._cron_field_values('7,SUN', 5), ARRAY[0], 'weekday 7 is Sunday (0), names in any case');

SELECT is(
    array(SELECT autopilot._cron_ticks('*/5 * * * *', '2026-12-04 10:02:30+00', '2026-12-04 10:20+00')),
    ARRAY['2026-12-04 10:05+00', '2026-12-04 10:10+00', '2026-12-04 10:15+00', '2026-12-04 10:20+00']::TIMESTAMPTZ[],
    'the ticks after the first moment and up to the second, inclusive'
);
SELECT is(
    array(SELECT autopilot._cron_ticks('*/5 * * * *', '2026-12-04 10:05+00', '2026-12-04 10:09:59+00')),
    ARRAY[]::TIMESTAMPTZ[],
    'not the first moment itself, and none before the next tick'
);
SELECT is(
    array(SELECT autopilot._cron_ticks('30 9 * * *', '2026-12-04 06:00-02', '2026-12-04 12:00-02')),
    ARRAY['2026-12-04 09:30+00']::TIMESTAMPTZ[],
    'schedules are UTC, whatever the time zone of the arguments'
);
SELECT is(
    array(SELECT autopilot._cron_ticks('0 5 1-7 * 0', '2026-11-30 12:00+00', '2026-12-02 12:00+00')),
    ARRAY['2026-12-01 05:00+00', '2026-12-02 05:00+00']::TIMESTAMPTZ[],
    'day of month and day of week both restricted: a day matching either fires'
);
SELECT is(
    array(SELECT autopilot._cron_ticks('0 5 */2 * 0', '2026-12-04 12:00+00', '2026-12-06 12:00+00')),
    ARRAY[]::TIMESTAMPTZ[],
    'a day-of-month field starting with * must match as well (December 6th, a Sunday, is even)'
);
SELECT is(
    (SELECT count(*) FROM autopilot._cron_ticks('* * * * *', '2026-12-01 00:00+00', '2026-12-31 00:00+00')),
    2881::BIGINT,
    'at most two days are looked at'
);
SELECT is(
    array(SELECT autopilot._cron_ticks('0 0 29 2 *', '2028-02-28 12:00+00', '2028-03-01 12:00+00')),
    ARRAY['2028-02-29 00:00+00']::TIMESTAMPTZ[],
    'February 29th of a leap year'
);

SELECT * FROM finish();
ROLLBACK;
