-- needs: postgres_fdw (the link to the central database): left out on a server without it (tools/dev.py)
-- autopilot.sync_learning_to_centralcloud() (centralcloud-sync, instance side):
-- not configured, misconfigured, unreachable and wrong central databases give
-- clear errors and change nothing; a push sends the changed patterns' totals
-- once. The central database here is this very database, reached back through
-- postgres_fdw: its connection runs its own transaction, in which the pushed
-- rows can be read back before this test rolls everything back.
-- (Separate instance and central databases, catching up after an outage, re-sending, a
-- central database of another protocol: tests/py/test_centralcloud.py.)
BEGIN;
SELECT plan(20);

SET LOCAL client_min_messages = warning;

SELECT has_function(
    'autopilot', 'sync_learning_to_centralcloud', ARRAY[]::text[],
    'autopilot.sync_learning_to_centralcloud() exists'
);
SELECT function_returns(
    'autopilot', 'sync_learning_to_centralcloud', ARRAY[]::text[], 'jsonb', 'it returns a jsonb summary'
);

DELETE FROM autopilot.learning_watermarks
WHERE name = 'centralcloud-sync';
TRUNCATE autopilot.learned_patterns;

-- not configured: nothing to do, and the run says so
SELECT autopilot.set_setting('centralcloud.server', 'tap_central');
SELECT results_eq(
    $$SELECT s ->> 'rows_affected', s ->> 'configured', s ->> 'message'
      FROM autopilot.sync_learning_to_centralcloud() AS s$$,
    $$VALUES ('0'::text, 'false'::text,
              'not configured: there is no foreign server tap_central (setting centralcloud.server); nothing sent'::text)$$,
    'without the foreign server: a successful run that sends nothing and says why'
);

CREATE EXTENSION IF NOT EXISTS postgres_fdw;
CREATE FUNCTION pg_temp.point_at(p_port text, p_dbname text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'DROP SERVER IF EXISTS tap_central CASCADE';
    EXECUTE format(
        'CREATE SERVER tap_central FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host %L, port %L, dbname %L)',
        coalesce(host(inet_server_addr()), split_part(current_setting('unix_socket_directories'), ',', 1)),
        p_port, p_dbname
    );
    EXECUTE format('CREATE USER MAPPING FOR CURRENT_USER SERVER tap_central OPTIONS (user %L)', current_user);
END;
$$;

INSERT INTO autopilot.learned_patterns (pattern_type, pattern_key, occurrences, successes, failures, codebases)
VALUES ('style', 'k1', 3, 2, 1, '{api}'), ('style', 'k2', 1, 1, 0, '{web}'), ('naming', 'k1', 2, 0, 0, '{api}');

-- misconfigured: no instance id
SELECT pg_temp.point_at(current_setting('port'), current_database());
SELECT throws_ok(
    'SELECT autopilot.sync_learning_to_centralcloud()',
    '55000',
    'centralcloud.instance_id is not set: the central database tells instances apart by it',
    'with a foreign server but no centralcloud.instance_id: object_not_in_prerequisite_state'
);
SELECT autopilot.set_setting('centralcloud.instance_id', 'tap-instance');

-- unreachable: nothing sent, nothing advanced, nothing left behind
SELECT pg_temp.point_at('1', current_database());
SELECT throws_like(
    'SELECT autopilot.sync_learning_to_centralcloud()',
    'cannot reach the central database through foreign server tap_central (nothing sent; the next run sends it): '
    || 'could not connect to server "tap_central"%',
    'an unreachable central database: a message that says what failed and that nothing was sent'
);
SELECT throws_ok(
    'SELECT autopilot.sync_learning_to_centralcloud()',
    '08001',
    NULL,
    '... with the connection error''s own SQLSTATE'
);
SELECT is_empty(
    $$SELECT * FROM autopilot.learning_watermarks WHERE name = 'centralcloud-sync'$$,
    '... and no watermark: the next run sends everything'
);
SELECT is(
    to_regclass('autopilot._centralcloud_inbox'), NULL, '... and no link table left behind'
);

-- a database without autopilot on the other end
SELECT pg_temp.point_at(current_setting('port'), 'template1');
SELECT throws_like(
    'SELECT autopilot.sync_learning_to_centralcloud()',
    'the database behind foreign server tap_central has no autopilot 0.2.0 or later to receive patterns '
    || '(nothing sent): relation "autopilot.centralcloud_info" does not exist',
    'a central database without autopilot: a clear error, nothing sent'
);

-- the real thing: this database as the central one
SELECT pg_temp.point_at(current_setting('port'), current_database());
CREATE TEMPORARY TABLE tap_runs (run integer, summary jsonb) ON COMMIT DROP;
INSERT INTO tap_runs (run, summary) VALUES (1, autopilot.sync_learning_to_centralcloud());
SELECT is((
    SELECT summary ->> 'rows_affected' FROM tap_runs
    WHERE run = 1
), '3', 'the first push sends every pattern');
SELECT is((
    SELECT summary ->> 'full' FROM tap_runs
    WHERE run = 1
), 'true', '... and says it was a full push');
SELECT matches(
    (
        SELECT summary ->> 'message' FROM tap_runs
        WHERE run = 1
    ),
    '^sent 3 changed patterns to the central database \(autopilot \d+\.\d+\.\d+\) as instance tap-instance',
    '... in its message'
);
SELECT is(
    to_regclass('autopilot._centralcloud_inbox'), NULL, 'the link tables live only during the run'
);

-- read the pushed rows back in the remote transaction (postgres_fdw reuses its connection)
CREATE FOREIGN TABLE autopilot.tap_remote_inbox (
    instance_id text, pattern_type text, pattern_key text, occurrences bigint, successes bigint,
    failures bigint, codebases text[]
) SERVER tap_central OPTIONS (schema_name 'autopilot', table_name 'central_pattern_inbox');
SELECT results_eq(
    $$SELECT instance_id, pattern_type, pattern_key, occurrences, successes, failures, codebases
      FROM autopilot.tap_remote_inbox ORDER BY pattern_type, pattern_key$$,
    $$VALUES ('tap-instance'::text, 'naming'::text, 'k1'::text, 2::bigint, 0::bigint, 0::bigint, '{api}'::text []),
             ('tap-instance', 'style', 'k1', 3, 2, 1, '{api}'),
             ('tap-instance', 'style', 'k2', 1, 1, 0, '{web}')$$,
    'the central inbox holds each pattern''s totals, tagged with the instance id'
);

SELECT is(
    autopilot.sync_learning_to_centralcloud() ->> 'rows_affected', '0',
    'a second push right after sends nothing'
);

-- a change: sent by the next run whose snapshot sees its transaction ended. Here the change is
-- this very transaction's, which no run of its own can see as ended: a run sends it later.
UPDATE autopilot.learned_patterns SET occurrences = occurrences + 1
WHERE pattern_key = 'k2';
SELECT is(
    (
        SELECT changed_xid FROM autopilot.learned_patterns
        WHERE pattern_key = 'k2'
    ),
    pg_current_xact_id(),
    'any UPDATE of a learned pattern marks it changed by its transaction'
);
SELECT is(
    autopilot.sync_learning_to_centralcloud() ->> 'rows_affected', '0',
    'a change of a transaction still open is not sent yet'
);
UPDATE autopilot.learned_patterns SET changed_xid = '3'
WHERE pattern_key = 'k2';
UPDATE autopilot.learning_watermarks SET horizon = '3'
WHERE name = 'centralcloud-sync';
SELECT is(
    autopilot.sync_learning_to_centralcloud() ->> 'rows_affected', '1',
    'a change below the horizon, and not sent before, is sent'
);
SELECT is(
    (
        SELECT count(*) FROM autopilot.tap_remote_inbox
        WHERE pattern_key = 'k2' AND pattern_type = 'style'
    ),
    2::bigint,
    '... as a second row for that pattern (the central merge keeps the newer)'
);
SELECT is(
    (
        SELECT occurrences FROM autopilot.tap_remote_inbox
        WHERE pattern_key = 'k2'
        ORDER BY occurrences DESC LIMIT 1
    ),
    2::bigint,
    '... carrying the new totals'
);

SELECT * FROM finish();
ROLLBACK;
