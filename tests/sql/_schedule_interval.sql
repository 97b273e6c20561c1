-- autopilot._schedule_interval(): the longest gap between a schedule's coming fires, what
-- autopilot.health's job_overdue measures "on time" by.
BEGIN;
SELECT plan(10);

SELECT has_function(
    'autopilot', '_schedule_interval', ARRAY['text', 'integer', 'timestamp with time zone'],
    'autopilot._schedule_interval(text, integer, timestamptz) exists'
);
SELECT volatility_is(
    'autopilot', '_schedule_interval', ARRAY['text', 'integer', 'timestamp with time zone'], 'stable',
    '_schedule_interval is stable'
);
-- a Wednesday
SELECT is(
    autopilot._schedule_interval('*/5 * * * *', NULL, '2026-12-02 10:00+00'), interval '5 minutes',
    'every five minutes: five minutes'
);
SELECT is(
    autopilot._schedule_interval('0 3 * * *', NULL, '2026-12-02 10:00+00'), interval '1 day',
    'daily: a day'
);
SELECT is(
    autopilot._schedule_interval('0 3,15 * * *', NULL, '2026-12-02 10:00+00'), interval '12 hours',
    'twice a day: the longer of the gap within a day and the one across midnight'
);
SELECT is(
    autopilot._schedule_interval('0 3 * * 1-5', NULL, '2026-12-02 10:00+00'), interval '3 days',
    'weekdays: the weekend (Friday to Monday) is the longest gap'
);
SELECT is(
    autopilot._schedule_interval('0 3 * * *', 0, '2026-12-02 10:00+00'), interval '7 days',
    'kept to the catalog''s weekday (only_on_dow): a week'
);
SELECT is(
    autopilot._schedule_interval('@hourly', NULL, '2026-12-02 10:00+00'), interval '1 hour',
    'a macro is read as pg_cron reads it'
);
SELECT is(
    autopilot._schedule_interval('  30 seconds ', NULL, '2026-12-02 10:00+00'), interval '30 seconds',
    'a seconds schedule: its seconds'
);
SELECT is(
    autopilot._schedule_interval('0 0 1 * *', NULL, '2026-12-02 10:00+00'), interval '31 days',
    'monthly: the longest month among the coming fires'
);

SELECT * FROM finish();
ROLLBACK;
