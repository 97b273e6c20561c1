-- autopilot._cron_field_values() and autopilot._cron_ticks(): the minutes at which
-- pg_cron fires a schedule, read as pg_cron reads it (UTC; day of month and day of week
-- OR-ed when both are restricted; macros; "$", the last day of the month, of pg_cron 1.6;
-- no ticks for the seconds schedules of pg_cron 1.5). The catch-up rule of a pg_cron run
-- (tests/sql/catch_up.sql) is built on them.
BEGIN;
SELECT plan(29);
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

SELECT is(autopilot._cron_field_values('$', 3), ARRAY[]::INTEGER[], '"$" stands for no fixed day');
SELECT is(autopilot._cron_field_values('0007', 1), ARRAY[7], 'leading zeros');

-- macros: the five fields pg_cron gives each
SELECT is(
    array(SELECT autopilot._cron_ticks('@hourly', '2026-12-04 10:02+00', '2026-12-04 12:00+00')),
    ARRAY['2026-12-04 11:00+00', '2026-12-04 12:00+00']::TIMESTAMPTZ[],
    '@hourly: minute 0 of every hour'
);
SELECT is(
    array(SELECT autopilot._cron_ticks('@daily', '2026-12-04 10:00+00', '2026-12-06 10:00+00')),
    ARRAY['2026-12-05 00:00+00', '2026-12-06 00:00+00']::TIMESTAMPTZ[],
    '@daily: midnight UTC'
);
SELECT is(
    array(SELECT autopilot._cron_ticks('@midnight', '2026-12-04 10:00+00', '2026-12-06 10:00+00')),
    ARRAY['2026-12-05 00:00+00', '2026-12-06 00:00+00']::TIMESTAMPTZ[],
    '@midnight is @daily'
);
SELECT is(
    array(SELECT autopilot._cron_ticks('@weekly', '2026-12-05 10:00+00', '2026-12-07 10:00+00')),
    ARRAY['2026-12-06 00:00+00']::TIMESTAMPTZ[],
    '@weekly: Sunday (December 6th) at midnight'
);
SELECT is(
    array(SELECT autopilot._cron_ticks('@weekly', '2026-12-06 00:00+00', '2026-12-08 00:00+00')),
    ARRAY[]::TIMESTAMPTZ[],
    '@weekly: no other day'
);
SELECT is(
    array(SELECT autopilot._cron_ticks('@monthly', '2026-11-30 10:00+00', '2026-12-02 10:00+00')),
    ARRAY['2026-12-01 00:00+00']::TIMESTAMPTZ[],
    '@monthly: the 1st at midnight'
);
SELECT is(
    array(SELECT autopilot._cron_ticks('@yearly', '2026-12-31 10:00+00', '2027-01-02 10:00+00')),
    ARRAY['2027-01-01 00:00+00']::TIMESTAMPTZ[],
    '@yearly: January 1st at midnight'
);
SELECT is(
    array(SELECT autopilot._cron_ticks('@annually', '2027-01-31 10:00+00', '2027-02-02 10:00+00')),
    ARRAY[]::TIMESTAMPTZ[],
    '@annually: not on February 1st'
);
SELECT is(
    array(SELECT autopilot._cron_ticks(E'\n @hourly \t', '2026-12-04 10:02+00', '2026-12-04 11:00+00')),
    ARRAY['2026-12-04 11:00+00']::TIMESTAMPTZ[],
    'blanks around a schedule'
);

-- "$" (pg_cron 1.6): the last day of the month
SELECT is(
    array(SELECT autopilot._cron_ticks('0 0 $ * *', '2028-02-28 12:00+00', '2028-03-01 12:00+00')),
    ARRAY['2028-02-29 00:00+00']::TIMESTAMPTZ[],
    '$: February 29th of a leap year'
);
SELECT is(
    array(SELECT autopilot._cron_ticks('0 0 $ * 1', '2026-11-29 12:00+00', '2026-12-01 12:00+00')),
    ARRAY['2026-11-30 00:00+00']::TIMESTAMPTZ[],
    '$ with a weekday: either (November 30th, a Monday, is both)'
);
SELECT is(
    array(SELECT autopilot._cron_ticks('0 0 $ * 5', '2026-12-03 12:00+00', '2026-12-05 12:00+00')),
    ARRAY['2026-12-04 00:00+00']::TIMESTAMPTZ[],
    '$ with a weekday: a Friday that is not the last day fires too'
);

-- seconds (pg_cron 1.5): started N seconds after the previous start, at no clock tick
SELECT is(
    (SELECT count(*) FROM autopilot._cron_ticks('30 seconds', '2026-12-04 10:00+00', '2026-12-04 12:00+00')),
    0::BIGINT,
    'a seconds schedule has no ticks'
);

SELECT * FROM finish();
ROLLBACK;
