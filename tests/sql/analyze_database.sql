-- autopilot.analyze_database(): the table-statistics job's function.
BEGIN;
SELECT plan(6);

SELECT has_function('autopilot', 'analyze_database', ARRAY[]::text[], 'autopilot.analyze_database() exists');

-- a table never analyzed has no statistics
CREATE TABLE autopilot.tap_unanalyzed (id integer PRIMARY KEY, label text);
INSERT INTO autopilot.tap_unanalyzed (id, label)
SELECT
    g AS id,
    'row ' || g AS label
FROM generate_series(1, 250) AS g;
SELECT is(
    (
        SELECT reltuples FROM pg_class
        WHERE oid = 'autopilot.tap_unanalyzed'::regclass
    ),
    -1::real,
    'fixture: a table that was never analyzed'
);

CREATE TEMPORARY TABLE tap_summary ON COMMIT DROP AS
SELECT autopilot.analyze_database() AS summary;

SELECT is(
    (
        SELECT reltuples FROM pg_class
        WHERE oid = 'autopilot.tap_unanalyzed'::regclass
    ),
    250::real,
    'after analyze_database() the planner knows its row count'
);
SELECT ok(
    EXISTS (
        SELECT FROM pg_statistic
        WHERE starelid = 'autopilot.tap_unanalyzed'::regclass
    ),
    'and has column statistics for it'
);
SELECT matches(
    (SELECT summary ->> 'message' FROM tap_summary),
    format('^analyzed database %s in [0-9]+ ms$', current_database()),
    'the summary message names the database and the time taken'
);
SELECT is((SELECT summary -> 'rows_affected' FROM tap_summary), '0'::jsonb, 'rows_affected is 0');

SELECT * FROM finish();
ROLLBACK;
