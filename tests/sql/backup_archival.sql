-- backup-archival through run_job: old backup records move to the archive with
-- identical values; running ones stay; nothing is lost. Scheduled runs happen
-- on the first Sunday of the month only.
BEGIN;
SELECT plan(17);

DELETE FROM autopilot.backup_metadata;
DELETE FROM autopilot.backup_metadata_archive;
SELECT lives_ok(
    $$SELECT autopilot.set_setting('backups.archive_after', '90 days'),
             autopilot.set_setting('cleanup.batch_size', '2')$$,
    'fixture: records older than 90 days are archived; batches of 2'
);

INSERT INTO autopilot.backup_metadata (
    kind, database_name, file_path, size_bytes, sha256, status, started_at, finished_at,
    verified_at, verification, error, details
)
VALUES
(
    'hourly', 'app', '/b/h1.dump', 1024, repeat('a', 64), 'verified', now() - interval '120 days',
    now() - interval '120 days' + interval '5 minutes', now() - interval '119 days', 'pg_restore --list ok', NULL,
    '{"tables": 12}'
),
(
    'daily', 'app', '/b/d1.dump', 4096, repeat('b', 64), 'succeeded', now() - interval '100 days',
    now() - interval '100 days' + interval '1 hour', NULL, NULL, NULL, '{}'
),
(
    'daily', 'app', NULL, NULL, NULL, 'failed', now() - interval '95 days', now() - interval '95 days', NULL, NULL,
    'pg_dump: error: connection failed', '{"exit": 1}'
),
(
    'manual', 'other', '/b/m1.dump', 0, NULL, 'pruned', now() - interval '91 days', now() - interval '91 days',
    NULL, NULL, NULL, '{"note": "pruned file"}'
),
('hourly', 'app', '/b/h2.dump', NULL, NULL, 'running', now() - interval '200 days', NULL, NULL, NULL, NULL, '{}'),
(
    'hourly', 'app', '/b/h3.dump', 2048, repeat('c', 64), 'succeeded', now() - interval '89 days',
    now() - interval '89 days', NULL, NULL, NULL, '{}'
),
(
    'daily', 'app', '/b/d2.dump', 8192, repeat('d', 64), 'verified', now() - interval '1 day',
    now() - interval '1 day', now(), 'ok', NULL, '{}'
);

CREATE TEMPORARY TABLE tap_before ON COMMIT DROP AS
SELECT * FROM autopilot.backup_metadata;

CREATE TEMPORARY TABLE tap_run ON COMMIT DROP AS
SELECT * FROM autopilot.run_job('backup-archival');

SELECT is((SELECT status FROM tap_run), 'succeeded', 'backup-archival succeeds');
SELECT is((SELECT rows_affected FROM tap_run), 4::bigint, 'four records are archived');
SELECT set_eq(
    $$SELECT file_path FROM autopilot.backup_metadata$$,
    ARRAY['/b/h2.dump', '/b/h3.dump', '/b/d2.dump'],
    'kept: recent records, and an old one still running'
);
SELECT set_eq(
    $$SELECT id, kind, database_name, file_path, size_bytes, sha256, status, started_at, finished_at,
             verified_at, verification, error, details
      FROM autopilot.backup_metadata_archive$$,
    $$SELECT id, kind, database_name, file_path, size_bytes, sha256, status, started_at, finished_at,
             verified_at, verification, error, details
      FROM tap_before WHERE started_at < now() - interval '90 days' AND status <> 'running'$$,
    'the archive holds the old records with every column identical'
);
SELECT ok(
    (SELECT bool_and(archived_at = now()) FROM autopilot.backup_metadata_archive),
    'each archived record carries when it was archived'
);
SELECT set_eq(
    $$SELECT id FROM autopilot.backup_metadata UNION ALL SELECT id FROM autopilot.backup_metadata_archive$$,
    $$SELECT id FROM tap_before$$,
    'no record is lost or duplicated: each is in exactly one of the two tables'
);
SELECT set_eq(
    $$SELECT id, kind, database_name, file_path, size_bytes, sha256, status, started_at, finished_at,
             verified_at, verification, error, details
      FROM autopilot.backup_metadata$$,
    $$SELECT id, kind, database_name, file_path, size_bytes, sha256, status, started_at, finished_at,
             verified_at, verification, error, details
      FROM tap_before WHERE NOT (started_at < now() - interval '90 days' AND status <> 'running')$$,
    'the kept records are unchanged'
);
SELECT cmp_ok(
    (SELECT (details ->> 'batches')::integer FROM tap_run), '>=', 3, 'with a batch size of 2, several batches'
);
SELECT results_eq(
    $$SELECT status, rows_affected FROM autopilot.run_job('backup-archival')$$,
    $$VALUES ('succeeded'::text, 0::bigint)$$,
    'a second run moves nothing'
);

-- the schedule: first Sunday of the month, 05:00 UTC
SELECT results_eq(
    $$SELECT schedule, only_on_dow FROM autopilot.job_definitions WHERE name = 'backup-archival'$$,
    $$VALUES ('0 5 1-7 * *'::text, 0::smallint)$$,
    'backup-archival fires on days 1-7 at 05:00 and runs only on Sunday (0)'
);
SELECT is_empty(
    $$SELECT date_trunc('month', d) FROM generate_series('2020-01-01'::date, '2035-12-31'::date, '1 day') AS d
      WHERE extract(day FROM d) BETWEEN 1 AND 7 AND extract(dow FROM d) = 0
      GROUP BY 1 HAVING count(*) <> 1$$,
    'days 1-7 hold exactly one Sunday in every month: the first Sunday'
);
SELECT is(
    autopilot._skips_today('backup-archival'),
    extract(DOW FROM now() AT TIME ZONE 'UTC') <> 0,
    'a scheduled run skips today exactly when today (UTC) is not Sunday'
);
SELECT is(autopilot._skips_today('backup-hourly'), false, 'a job without a weekday restriction never skips');

UPDATE autopilot.job_catalog
SET only_on_dow = extract(DOW FROM now() AT TIME ZONE 'UTC')
WHERE name = 'backup-archival';
SELECT is(autopilot._skips_today('backup-archival'), false, 'restricted to today''s UTC weekday: runs');
UPDATE autopilot.job_catalog
SET only_on_dow = (extract(DOW FROM now() AT TIME ZONE 'UTC')::integer + 1) % 7
WHERE name = 'backup-archival';
SELECT is(autopilot._skips_today('backup-archival'), true, 'restricted to tomorrow''s UTC weekday: skips');
SELECT throws_ok(
    $$SELECT autopilot._skips_today('no-such-job')$$, '42704', NULL, 'an unknown job raises undefined_object'
);

SELECT * FROM finish();
ROLLBACK;
