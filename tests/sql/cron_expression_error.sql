-- autopilot.cron_expression_error(): NULL when the pg_cron of this database accepts the
-- schedule and runs it as written, else a sentence saying what is wrong. The grammar of each
-- pg_cron extension version is autopilot._cron_expression_error(expression, version); NULL as
-- the version (pg_cron in another database) is what every pg_cron from 1.4 on accepts.
-- tests/py/test_cron_grammar.py runs a corpus through pg_cron itself.
BEGIN;
SELECT plan(64);

SELECT has_function(
    'autopilot', 'cron_expression_error', ARRAY['text'],
    'autopilot.cron_expression_error(text) exists'
);
SELECT volatility_is(
    'autopilot', 'cron_expression_error', ARRAY['text'], 'stable',
    'cron_expression_error is stable: it reads the version of pg_cron in this database'
);
SELECT is(
    autopilot._pg_cron_version(),
    (
        SELECT e.extversion FROM pg_extension AS e
        WHERE e.extname = 'pg_cron'
    ),
    '_pg_cron_version() is the version of the pg_cron extension in this database'
);

-- valid everywhere
SELECT is(autopilot.cron_expression_error('*/5 * * * *'), NULL, 'a step over * is valid');
SELECT is(autopilot.cron_expression_error('0 5 1-7 * *'), NULL, 'a day-of-month range is valid');
SELECT is(autopilot.cron_expression_error('0 0 * * 7'), NULL, '7 is Sunday, as in pg_cron');
SELECT is(autopilot.cron_expression_error('0-59/15 0,12 * * *'), NULL, 'a stepped range and a list are valid');
SELECT is(autopilot.cron_expression_error('0 0 * jan-MAR Mon-fri'), NULL, 'month and weekday names, any case');
SELECT is(
    autopilot.cron_expression_error(E'  30 \t 0 * * *  \n'), NULL, 'spaces and tabs between fields, blanks around'
);
SELECT is(autopilot.cron_expression_error(E'\n\n0 * * * *'), NULL, 'pg_cron skips empty lines before the schedule');
SELECT is(autopilot.cron_expression_error('00007 * * * *'), NULL, 'leading zeros');
SELECT is(autopilot.cron_expression_error('@hourly'), NULL, '@hourly');
SELECT is(autopilot.cron_expression_error('@daily'), NULL, '@daily');
SELECT is(autopilot.cron_expression_error('@midnight'), NULL, '@midnight');
SELECT is(autopilot.cron_expression_error('@weekly'), NULL, '@weekly');
SELECT is(autopilot.cron_expression_error('@monthly'), NULL, '@monthly');
SELECT is(autopilot.cron_expression_error(E' @hourly \t'), NULL, 'blanks around a macro');
SELECT is_empty(
    $$SELECT c.name FROM autopilot.job_catalog AS c
      WHERE c.schedule IS NOT NULL AND autopilot.cron_expression_error(c.schedule) IS NOT NULL$$,
    'every schedule of the catalog is valid'
);
SELECT is_empty(
    $$SELECT e FROM unnest(ARRAY['@yearly', '30 seconds', '0 0 $ * *', '*/100 * * * *', '@hourly', '61 * * * *']) AS e
      WHERE autopilot.cron_expression_error(e)
            IS DISTINCT FROM autopilot._cron_expression_error(e, autopilot._pg_cron_version())$$,
    'cron_expression_error() reads the grammar of the pg_cron version of this database'
);

-- refused everywhere, each with its reason
SELECT matches(autopilot.cron_expression_error(NULL), 'empty', 'NULL is an empty expression');
SELECT matches(autopilot.cron_expression_error(E'  \t\n'), 'empty', 'blanks are an empty expression');
SELECT matches(autopilot.cron_expression_error('* * * *'), 'expected 5 fields .*found 4', 'four fields are too few');
SELECT matches(
    autopilot.cron_expression_error('*/10 * * * * *'),
    'found 6: pg_cron would ignore everything after the fifth \("\*"\)',
    'a sixth field (seconds) is refused: pg_cron would ignore it'
);
SELECT matches(
    autopilot.cron_expression_error(E'0 *\n* * *'), 'separated by spaces or tabs',
    'a line break between fields (pg_cron ends the schedule there)'
);
SELECT matches(autopilot.cron_expression_error('60 * * * *'), 'minute .* out of range 0-59', 'minute 60');
SELECT matches(autopilot.cron_expression_error('* 24 * * *'), 'hour .* out of range 0-23', 'hour 24');
SELECT matches(autopilot.cron_expression_error('* * 0 * *'), 'day of month .* out of range 1-31', 'day 0');
SELECT matches(autopilot.cron_expression_error('* * * 13 *'), 'month .* out of range 1-12', 'month 13');
SELECT matches(autopilot.cron_expression_error('* * * * 8'), 'day of week .* out of range 0-7', 'weekday 8');
SELECT matches(
    autopilot.cron_expression_error('4294967296 * * * *'), 'out of range 0-59',
    'a number pg_cron would wrap around to 0 is out of range'
);
SELECT matches(autopilot.cron_expression_error('*/0 * * * *'), 'step must be at least 1', 'a zero step');
SELECT matches(
    autopilot.cron_expression_error('5/10 * * * *'), 'step needs \* or a range', 'a step after a single value'
);
SELECT matches(
    autopilot.cron_expression_error('10-5 * * * *'), 'runs backwards \(pg_cron would read it as no value at all\)',
    'a backwards range'
);
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
SELECT matches(autopilot.cron_expression_error('-5 * * * *'), 'not a value, range or step', 'a negative number');
SELECT matches(
    autopilot.cron_expression_error('5; * * * *'), '";" cannot appear in a cron field',
    'a character pg_cron would skip after a value'
);
SELECT matches(
    autopilot.cron_expression_error(E'# nightly\n0 0 * * *'), 'starts with a comment', 'a comment line'
);
SELECT matches(autopilot.cron_expression_error('@HOURLY'), 'not a pg_cron macro.*lower case', 'macros are lower case');
SELECT matches(autopilot.cron_expression_error('@fortnightly'), 'not a pg_cron macro', 'an unknown macro');
SELECT matches(
    autopilot.cron_expression_error('@hourly *'), 'text after @hourly \("\*"\): pg_cron would ignore it',
    'text after a macro'
);
SELECT matches(
    autopilot.cron_expression_error('@reboot'), '@reboot runs when pg_cron starts, at no time of day',
    '@reboot: autopilot cannot compute when it is due'
);
SELECT matches(autopilot.cron_expression_error('@restart'), '@restart runs when pg_cron starts', '@restart likewise');
SELECT matches(
    autopilot.cron_expression_error(repeat('0', 995) || ' * * * *'), 'pg_cron reads at most 999',
    'pg_cron''s length limit'
);

-- each pg_cron version's grammar
SELECT is(autopilot._cron_expression_error('@yearly', '1.4-1'), NULL, '1.4: @yearly');
SELECT is(autopilot._cron_expression_error('@annually', '1.4-1'), NULL, '1.4: @annually');
SELECT matches(
    autopilot._cron_expression_error('@yearly', '1.6'), 'accept @yearly but never run it.*0 0 1 1 \*',
    '1.6: @yearly is accepted by pg_cron but never runs'
);
SELECT matches(
    autopilot._cron_expression_error('@annually', NULL), 'never run it.*not created in this database',
    'pg_cron elsewhere: @annually refused, saying why'
);
SELECT is(
    autopilot._cron_expression_error('*/100 * * * *', '1.4-1'), NULL,
    '1.4: a step above the maximum (it means the first value only)'
);
SELECT matches(
    autopilot._cron_expression_error('*/2147483648 * * * *', '1.4-1'), 'larger than pg_cron reads',
    '1.4: a step pg_cron would wrap around'
);
SELECT matches(
    autopilot._cron_expression_error('* * */32 * *', '1.6'), 'step 32 is larger than 31, which pg_cron 1.6.5',
    '1.6: a step above the maximum'
);
SELECT is(autopilot._cron_expression_error('* * * * */7', NULL), NULL, 'a step up to the maximum, anywhere');
SELECT matches(
    autopilot._cron_expression_error('30 seconds', '1.4-1'),
    'seconds schedules need pg_cron 1.5 or later \(this database has pg_cron 1.4-1\)',
    '1.4: no seconds schedules'
);
SELECT matches(
    autopilot._cron_expression_error('30 seconds', NULL), 'need pg_cron 1.5 .*pg_cron is not created in this database',
    'pg_cron elsewhere: no seconds schedules, saying why'
);
SELECT is(
    array(
        SELECT autopilot._cron_expression_error(e, '1.5')
        FROM unnest(ARRAY['30 seconds', E' 1 SECOND', E'59seconds \n']) AS e
    ),
    ARRAY[NULL, NULL, NULL]::TEXT[],
    '1.5: "N seconds", "N second", any case, blanks around'
);
SELECT matches(autopilot._cron_expression_error('60 seconds', '1.5'), '1 to 59 seconds, not 60', '1.5: 60 seconds');
SELECT matches(autopilot._cron_expression_error('0 seconds', '1.6'), '1 to 59 seconds, not 0', '1.6: 0 seconds');
SELECT matches(
    autopilot._cron_expression_error('5 second ', '1.5'), '"N seconds"',
    '1.5: "5 second " (pg_cron reads the blank as the plural s)'
);
SELECT is(autopilot._cron_expression_error('0 0 $ * *', '1.6'), NULL, '1.6: $ is the last day of the month');
SELECT matches(
    autopilot._cron_expression_error('0 0 $ * *', '1.5'), '"\$" .*needs pg_cron 1.6', '1.5: no $'
);

SELECT * FROM finish();
ROLLBACK;
