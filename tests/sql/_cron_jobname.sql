-- autopilot._cron_jobname(): the pg_cron job name of an autopilot job, autopilot:<database>:<job>,
-- never longer than pg_cron's 63 bytes.
BEGIN;
SELECT plan(9);

SELECT has_function(
    'autopilot', '_cron_jobname', ARRAY['text', 'text'], 'autopilot._cron_jobname(text, text) exists'
);
SELECT volatility_is(
    'autopilot', '_cron_jobname', ARRAY['text', 'text'], 'immutable', '_cron_jobname is immutable'
);
SELECT is(
    autopilot._cron_jobname('vacuum-analyze', 'app'), 'autopilot:app:vacuum-analyze', 'autopilot:<database>:<job>'
);
SELECT is(
    autopilot._cron_jobname('vacuum-analyze'), 'autopilot:' || current_database() || ':vacuum-analyze',
    'the database defaults to the current one'
);
SELECT isnt(
    autopilot._cron_jobname('pagerank', 'app'), autopilot._cron_jobname('pagerank', 'app2'),
    'two databases, two names'
);
SELECT is(
    autopilot._cron_jobname('agent-knowledge-update', repeat('d', 63)),
    'autopilot:dddddddddddddddd~' || left(md5(repeat('d', 63)), 8) || ':agent-knowledge-update',
    'a database name too long for 63 bytes: its first 16 characters, ~ and 8 hex digits of its md5'
);
SELECT is_empty(
    $$SELECT c.name, d.datname
      FROM autopilot.job_catalog AS c
      CROSS JOIN (VALUES (repeat('é', 31)), (repeat('x', 63)), ('a:b c'), (current_database())) AS d (datname)
      WHERE octet_length(autopilot._cron_jobname(c.name, d.datname)) > 63$$,
    'every catalog job''s name fits in 63 bytes, whatever the database name (multibyte included)'
);
SELECT isnt(
    autopilot._cron_jobname('pagerank', repeat('x', 60) || '1'),
    autopilot._cron_jobname('pagerank', repeat('x', 60) || '2'),
    'two long names that share their first characters stay apart'
);

SELECT is_empty(
    $$SELECT name FROM autopilot.job_definitions WHERE cron_jobname IS DISTINCT FROM autopilot._cron_jobname(name)$$,
    'job_definitions.cron_jobname (written out in the view) is autopilot._cron_jobname(name)'
);

SELECT * FROM finish();
ROLLBACK;
