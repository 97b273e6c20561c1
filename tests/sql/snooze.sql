-- autopilot.snooze(): run again later without using up an attempt.
BEGIN;
SELECT plan(8);

SELECT has_function(
    'autopilot', 'snooze', ARRAY['bigint', 'integer', 'interval'], 'autopilot.snooze(bigint, integer, interval) exists'
);
INSERT INTO autopilot.jobs (queue, worker) VALUES ('tap', 'tap_worker');
CREATE TEMPORARY TABLE tap_claimed ON COMMIT DROP AS SELECT * FROM autopilot.claim('tap', 'node-1');

SELECT is(
    (SELECT autopilot.snooze(id, attempt, interval '5 minutes') FROM tap_claimed), true, 'an executing job snoozes'
);
SELECT results_eq(
    $$SELECT state, attempt, max_attempts, scheduled_at - now() FROM autopilot.jobs WHERE queue = 'tap'$$,
    $$VALUES ('scheduled'::text, 1, 21, interval '5 minutes')$$,
    '... scheduled for later, the attempt not used up (max_attempts + 1; the attempt number stays)'
);
SELECT is(
    (
        SELECT status FROM autopilot.job_runs
        WHERE details ->> 'job_id' = (SELECT c.id FROM tap_claimed AS c)::text
    ),
    'skipped', '... and the attempt is in job_runs as skipped'
);
SELECT is(
    (SELECT autopilot.snooze(id, attempt, interval '5 minutes') FROM tap_claimed), false,
    'a second snooze of the same attempt changes nothing'
);

-- due again and claimed by another runner: attempt 2, which the first runner cannot touch
UPDATE autopilot.jobs SET scheduled_at = now() - interval '1 second'
WHERE queue = 'tap';
SELECT is((SELECT attempt FROM autopilot.claim('tap', 'node-2')), 2, 'the next claim is a new attempt');
SELECT is(
    (SELECT autopilot.complete(id, attempt) FROM tap_claimed), false,
    '... so the snoozed attempt''s completion cannot complete it'
);
SELECT throws_ok(
    $$SELECT autopilot.snooze(1, 1, interval '-1 minute')$$, '22023', NULL, 'a negative delay: 22023'
);

SELECT * FROM finish();
ROLLBACK;
