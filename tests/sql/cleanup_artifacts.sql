-- old-artifact-cleanup through run_job: unused knowledge artifacts, and learned
-- patterns not seen for long whose confidence is low.
BEGIN;
SELECT plan(10);

DELETE FROM autopilot.knowledge_artifacts;
DELETE FROM autopilot.learned_patterns;
SELECT lives_ok(
    $$SELECT autopilot.set_setting('artifacts.unused_retention', '90 days'),
             autopilot.set_setting('patterns.unused_retention', '180 days'),
             autopilot.set_setting('patterns.keep_confidence', '0.8'),
             autopilot.set_setting('cleanup.batch_size', '2')$$,
    'fixture: artifacts unused for 90 days and patterns unseen for 180 days below confidence 0.8 go; batches of 2'
);

INSERT INTO autopilot.knowledge_artifacts (artifact_type, name, created_at, last_used_at, usage_count)
VALUES
('template', 'never used, old', now() - interval '100 days', NULL, 0),
('template', 'never used, old 2', now() - interval '91 days', NULL, 0),
('template', 'never used, new', now() - interval '10 days', NULL, 0),
('prompt', 'used long ago', now() - interval '400 days', now() - interval '100 days', 3),
('prompt', 'used long ago 2', now() - interval '400 days', now() - interval '95 days', 1),
('prompt', 'old but used recently', now() - interval '400 days', now() - interval '1 day', 7),
('prompt', 'used 89 days ago', now() - interval '400 days', now() - interval '89 days', 2);
INSERT INTO autopilot.knowledge_artifacts (artifact_type, name, created_at, last_used_at, usage_count, source)
VALUES ('template', 'from a file, never used, old', now() - interval '400 days', NULL, 0, 'knowledge-migration');

INSERT INTO autopilot.learned_patterns (pattern_type, pattern_key, confidence, first_seen_at, last_seen_at)
VALUES
('naming', 'unseen, unconfident', 0.3, now() - interval '300 days', now() - interval '200 days'),
('naming', 'unseen, unconfident 2', 0.0, now() - interval '300 days', now() - interval '181 days'),
('naming', 'unseen, unconfident 3', 0.79, now() - interval '300 days', now() - interval '365 days'),
('naming', 'unseen, confident', 0.9, now() - interval '300 days', now() - interval '200 days'),
('naming', 'unseen, at the threshold', 0.8, now() - interval '300 days', now() - interval '200 days'),
('naming', 'seen recently, unconfident', 0.1, now() - interval '300 days', now() - interval '10 days');

CREATE TEMPORARY TABLE tap_run ON COMMIT DROP AS
SELECT * FROM autopilot.run_job('old-artifact-cleanup');

SELECT is((SELECT status FROM tap_run), 'succeeded', 'old-artifact-cleanup succeeds');
SELECT set_eq(
    $$SELECT name FROM autopilot.knowledge_artifacts$$,
    ARRAY['never used, new', 'old but used recently', 'used 89 days ago', 'from a file, never used, old'],
    'artifacts unused (or, never used, created) for longer than the retention are deleted; recently used ones and'
    || ' those loaded from files (their loader would only write them again) are kept'
);
SELECT set_eq(
    $$SELECT pattern_key FROM autopilot.learned_patterns$$,
    ARRAY['unseen, confident', 'unseen, at the threshold', 'seen recently, unconfident'],
    'unconfident patterns not seen for long are deleted; confident and recently seen ones are kept'
);
SELECT is((SELECT rows_affected FROM tap_run), 7::bigint, 'rows_affected counts 4 artifacts and 3 patterns');
SELECT cmp_ok(
    (SELECT (details ->> 'batches')::integer FROM tap_run), '>=', 4,
    'with a batch size of 2, both phases took several batches'
);
SELECT results_eq(
    $$SELECT status, rows_affected FROM autopilot.run_job('old-artifact-cleanup')$$,
    $$VALUES ('succeeded'::text, 0::bigint)$$,
    'a second run deletes nothing'
);

-- the threshold is a setting
SELECT is(autopilot.set_setting('patterns.keep_confidence', '0.95'), '0.95', 'fixture: keep only confidence >= 0.95');
SELECT is(
    (SELECT rows_affected FROM autopilot.run_job('old-artifact-cleanup')), 2::bigint,
    'raising patterns.keep_confidence makes the next run delete 2 more patterns'
);
SELECT set_eq(
    $$SELECT pattern_key FROM autopilot.learned_patterns$$,
    ARRAY['seen recently, unconfident'],
    'raising patterns.keep_confidence deletes the formerly confident unseen patterns'
);

SELECT * FROM finish();
ROLLBACK;
