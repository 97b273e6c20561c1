-- needs: pg_cron (cron.job, cron.schedule): left out on a server without it (tools/dev.py)
-- autopilot.is_valid_cron(): agrees with cron_expression_error() and with pg_cron itself.
-- (tests/py/test_cron_grammar.py runs a larger corpus, locally and across databases.)
BEGIN;
SELECT plan(13);

SELECT has_function('autopilot', 'is_valid_cron', ARRAY['text'], 'autopilot.is_valid_cron(text) exists');
SELECT function_returns('autopilot', 'is_valid_cron', ARRAY['text'], 'boolean', 'is_valid_cron returns boolean');
SELECT volatility_is('autopilot', 'is_valid_cron', ARRAY['text'], 'stable', 'is_valid_cron is stable');

SELECT ok(autopilot.is_valid_cron('*/5 * * * *'), '*/5 * * * * is valid');
SELECT ok(autopilot.is_valid_cron('0 5 1-7 * *'), '0 5 1-7 * * is valid');
SELECT ok(autopilot.is_valid_cron('@hourly'), '@hourly is valid');
SELECT ok(NOT autopilot.is_valid_cron('@reboot'), '@reboot is not valid');
SELECT ok(NOT autopilot.is_valid_cron(NULL), 'NULL is not valid (not NULL)');

CREATE TEMPORARY TABLE tap_expressions (expression text) ON COMMIT DROP;
INSERT INTO tap_expressions (expression)
VALUES
('*/5 * * * *'), ('0 * * * *'), ('0 5 1-7 * *'), ('0 0 * * 7'), ('0-59/15 0,12 * * *'),
('0 0 * jan-mar mon-fri'), ('0 0 1 1 *'), ('59 23 31 12 6'), ('@hourly'), ('@daily'), ('@weekly'),
('@monthly'), ('@midnight'), ('@hourly '),
('2 seconds'), ('60 * * * *'), ('* 24 * * *'), ('* * 0 * *'), ('* * * 13 *'), ('* * * * 8'),
('5/10 * * * *'), ('*/0 * * * *'), ('x * * * *'), ('* * * *'), ('0 * * * * *'), (''), ('@HOURLY'),
('@reboot'), ('@ hourly');

SELECT is_empty(
    $$SELECT e.expression FROM tap_expressions AS e
      WHERE autopilot.is_valid_cron(e.expression) <> (autopilot.cron_expression_error(e.expression) IS NULL)$$,
    'is_valid_cron is true exactly when cron_expression_error is NULL'
);

-- pg_cron's own parser: everything autopilot accepts, pg_cron accepts too
CREATE FUNCTION pg_temp.pg_cron_accepts(p_expression text)
RETURNS boolean
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM cron.schedule('autopilot-tap:probe', p_expression, 'SELECT 1');
    PERFORM cron.unschedule('autopilot-tap:probe');
    RETURN true;
EXCEPTION
    WHEN invalid_parameter_value THEN
        RETURN false;
END;
$$;

SELECT is_empty(
    $$SELECT e.expression FROM tap_expressions AS e
      WHERE autopilot.is_valid_cron(e.expression) AND NOT pg_temp.pg_cron_accepts(e.expression)$$,
    'pg_cron accepts every expression is_valid_cron accepts'
);
-- ...and rejects what autopilot rejects, but for two that pg_cron would not run as written:
-- '0 * * * * *', which it reads as '0 * * * *' (the sixth field ignored), and @reboot, which
-- runs at no time of day
SELECT is_empty(
    $$SELECT e.expression FROM tap_expressions AS e
      WHERE NOT autopilot.is_valid_cron(e.expression) AND pg_temp.pg_cron_accepts(e.expression)
        AND e.expression NOT IN ('0 * * * * *', '@reboot')$$,
    'pg_cron rejects the expressions is_valid_cron rejects (but for a sixth field and @reboot)'
);
SELECT is(
    (
        SELECT count(*)::integer FROM tap_expressions
        WHERE autopilot.is_valid_cron(expression)
    ),
    14,
    'the list holds 14 valid expressions'
);
SELECT is_empty(
    $$SELECT FROM cron.job WHERE jobname = 'autopilot-tap:probe'$$,
    'the probe left nothing in cron.job'
);

SELECT * FROM finish();
ROLLBACK;
