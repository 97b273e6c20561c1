-- code-chunk-cleanup through run_job: chunks superseded for longer than
-- code_chunks.obsolete_retention.
BEGIN;
SELECT plan(9);

DELETE FROM autopilot.code_chunks;
SELECT lives_ok(
    $$SELECT autopilot.set_setting('code_chunks.obsolete_retention', '7 days'),
             autopilot.set_setting('cleanup.batch_size', '2')$$,
    'fixture: obsolete chunks go after 7 days; batches of 2'
);

-- file a.ex was re-ingested three times; b.ex disappeared 8 days ago; c.ex is current
INSERT INTO autopilot.code_chunks (
    codebase, file_path, chunk_index, content, content_hash, created_at, superseded_at
)
VALUES
('app', 'lib/a.ex', 0, 'v1', 'h1', now() - interval '60 days', now() - interval '30 days'),
('app', 'lib/a.ex', 1, 'v1', 'h2', now() - interval '60 days', now() - interval '30 days'),
('app', 'lib/a.ex', 0, 'v2', 'h3', now() - interval '30 days', now() - interval '2 days'),
('app', 'lib/a.ex', 1, 'v2', 'h4', now() - interval '30 days', now() - interval '2 days'),
('app', 'lib/a.ex', 0, 'v3', 'h5', now() - interval '2 days', NULL),
('app', 'lib/a.ex', 1, 'v3', 'h6', now() - interval '2 days', NULL),
('app', 'lib/b.ex', 0, 'v1', 'h7', now() - interval '90 days', now() - interval '8 days'),
('app', 'lib/b.ex', 1, 'v1', 'h8', now() - interval '90 days', now() - interval '8 days'),
('app', 'lib/b.ex', 2, 'v1', 'h9', now() - interval '90 days', now() - interval '8 days'),
('app', 'lib/c.ex', 0, 'v1', 'h10', now() - interval '900 days', NULL);

SELECT throws_ok(
    $$INSERT INTO autopilot.code_chunks (codebase, file_path, chunk_index, content, content_hash)
      VALUES ('app', 'lib/c.ex', 0, 'v2', 'h11')$$,
    '23505', NULL, 'fixture check: one current chunk per position of a file'
);

CREATE TEMPORARY TABLE tap_run ON COMMIT DROP AS
SELECT * FROM autopilot.run_job('code-chunk-cleanup');

SELECT is((SELECT status FROM tap_run), 'succeeded', 'code-chunk-cleanup succeeds');
SELECT set_eq(
    $$SELECT content_hash FROM autopilot.code_chunks$$,
    ARRAY['h3', 'h4', 'h5', 'h6', 'h10'],
    'chunks superseded longer ago than the retention are deleted; recently superseded and current chunks are kept'
);
SELECT is((SELECT rows_affected FROM tap_run), 5::bigint, 'rows_affected counts the 5 deleted chunks');
SELECT cmp_ok(
    (SELECT (details ->> 'batches')::integer FROM tap_run), '>=', 3, 'with a batch size of 2, several batches'
);

SELECT is(autopilot.set_setting('code_chunks.obsolete_retention', '0'), '0', 'fixture: retention 0');
SELECT is(
    (SELECT rows_affected FROM autopilot.run_job('code-chunk-cleanup')), 2::bigint,
    'with retention 0 the recently superseded chunks go too'
);
SELECT set_eq(
    $$SELECT content_hash FROM autopilot.code_chunks$$,
    ARRAY['h5', 'h6', 'h10'],
    'current chunks are never deleted'
);

SELECT * FROM finish();
ROLLBACK;
