-- autopilot.snooze(): run again later without using up an attempt.
BEGIN;
SELECT plan(5);

SELECT has_function(
    'autopilot', 'snooze', ARRAY['bigint', 'integer', 'interval'], 'autopilot.snooze(bigint, integer, interval) exists'
);
INSERT INTO autopilot.jobs (queue, worker) VALUES ('tap', 'tap_worker');
CREATE TEMPORARY TABLE tap_claimed ON COMMIT DROP AS SELECT * FROM autopilot.claim('tap', 'node-1');

SELECT is(
    (SELECT autopilot.snooze(id, attempt, interval '5 minutes') FROM tap_claimed), true, 'an executing job snoozes'
);
SELECT results_eq(
    $$SELECT state, attempt, scheduled_at - now() FROM autopilot.jobs WHERE queue = 'tap'$$,
    $$VALUES ('scheduled'::text, 0, interval '5 minutes')$$,
    '... scheduled for later, its attempt not counted'
);
SELECT is(
    (
        SELECT status FROM autopilot.job_runs
        WHERE details ->> 'job_id' = (SELECT c.id FROM tap_claimed AS c)::text
    ),
    'skipped', '... and the attempt is in job_runs as skipped'
);
SELECT throws_ok(
    $$SELECT autopilot.snooze(1, 1, interval '-1 minute')$$, '22023', NULL, 'a negative delay: 22023'
);

SELECT * FROM finish();
ROLLBACK;
