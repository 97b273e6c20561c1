-- autopilot.cron_expression_error(): NULL for a valid pg_cron 1.4 expression,
-- else a sentence saying what is wrong.
BEGIN;
SELECT plan(31);

SELECT has_function(
    'autopilot', 'cron_expression_error', ARRAY['text'],
    'autopilot.cron_expression_error(text) exists'
);
SELECT volatility_is(
    'autopilot', 'cron_expression_error', ARRAY['text'], 'immutable', 'cron_expression_error is immutable'
);

-- valid expressions
SELECT is(autopilot.cron_expression_error('*/5 * * * *'), NULL, 'a step over * is valid');
SELECT is(autopilot.cron_expression_error('0 5 1-7 * *'), NULL, 'a day-of-month range is valid');
SELECT is(autopilot.cron_expression_error('0 0 * * 7'), NULL, '7 is Sunday, as in pg_cron');
SELECT is(autopilot.cron_expression_error('0-59/15 0,12 * * *'), NULL, 'a stepped range and a list are valid');
SELECT is(autopilot.cron_expression_error('0 0 * jan-MAR Mon-fri'), NULL, 'month and weekday names, any case');
SELECT is(autopilot.cron_expression_error('  30   0 * * *  '), NULL, 'extra whitespace is allowed');
SELECT is(
    autopilot.cron_expression_error('*/99999999999 * * * *'), NULL,
    'a huge step is reported as valid, not as an integer overflow (pg_cron accepts it)'
);
SELECT is_empty(
    $$SELECT c.name FROM autopilot.job_catalog AS c
      WHERE c.schedule IS NOT NULL AND autopilot.cron_expression_error(c.schedule) IS NOT NULL$$,
    'every schedule of the catalog is valid'
);

-- invalid expressions, each with its reason
SELECT matches(autopilot.cron_expression_error(NULL), 'empty', 'NULL is an empty expression');
SELECT matches(autopilot.cron_expression_error('   '), 'empty', 'blanks are an empty expression');
SELECT matches(autopilot.cron_expression_error('* * * *'), 'expected 5 fields', 'four fields are too few');
SELECT matches(
    autopilot.cron_expression_error('0 * * * * *'), 'expected 5 fields', 'six fields (seconds) are too many'
);
SELECT matches(
    autopilot.cron_expression_error('2 seconds'), 'expected 5 fields', 'pg_cron 1.4 has no seconds schedules'
);
SELECT matches(autopilot.cron_expression_error('@daily'), 'expected 5 fields', 'no @macros');
SELECT matches(autopilot.cron_expression_error('60 * * * *'), 'minute .* out of range 0-59', 'minute 60');
SELECT matches(autopilot.cron_expression_error('* 24 * * *'), 'hour .* out of range 0-23', 'hour 24');
SELECT matches(autopilot.cron_expression_error('* * 0 * *'), 'day of month .* out of range 1-31', 'day 0');
SELECT matches(autopilot.cron_expression_error('* * * 13 *'), 'month .* out of range 1-12', 'month 13');
SELECT matches(autopilot.cron_expression_error('* * * * 8'), 'day of week .* out of range 0-7', 'weekday 8');
SELECT matches(autopilot.cron_expression_error('*/0 * * * *'), 'step must be at least 1', 'a zero step');
SELECT matches(
    autopilot.cron_expression_error('5/10 * * * *'), 'step needs \* or a range', 'a step after a single value'
);
SELECT matches(autopilot.cron_expression_error('10-5 * * * *'), 'runs backwards', 'a backwards range');
SELECT matches(autopilot.cron_expression_error('1-2-3 * * * *'), 'is not a range', 'three bounds');
SELECT matches(autopilot.cron_expression_error('x * * * *'), 'not a number', 'a word for a minute');
SELECT matches(autopilot.cron_expression_error('* * * foo *'), 'not a number or month name', 'an unknown month name');
SELECT matches(
    autopilot.cron_expression_error('* * * * funday'), 'not a number or weekday name', 'an unknown weekday name'
);
SELECT matches(
    autopilot.cron_expression_error('* * * * jan'), 'not a number or weekday name', 'a month name in the weekday field'
);
SELECT matches(autopilot.cron_expression_error('1,,2 * * * *'), 'not a value, range or step', 'an empty list item');
SELECT matches(autopilot.cron_expression_error('-5 * * * *'), 'not a number', 'a negative number');

SELECT * FROM finish();
ROLLBACK;
