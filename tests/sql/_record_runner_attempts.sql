-- autopilot._record_runner_attempts: one ledger row per ended runner attempt, named after its catalog
-- job (else its worker), finished at the transaction's time, never before the attempt started.
BEGIN;
SELECT plan(4);

DELETE FROM autopilot.job_runs;
INSERT INTO autopilot.jobs (queue, worker, args, meta, state, attempt, attempted_at, attempted_by)
VALUES
('default', 'code_ingest', '{}', '{"catalog": "code-ingest"}', 'completed', 1, now() - interval '1 minute', 'n1'),
('default', 'adhoc_worker', '{}', '{}', 'completed', 2, now(), 'n1');

SELECT is(
    autopilot._record_runner_attempts(
        (SELECT array_agg(j ORDER BY j.id) FROM autopilot.jobs AS j),
        'succeeded',
        ARRAY['ingested 3 files', NULL]
    ),
    2::bigint,
    'one ledger row per attempt'
);
SELECT results_eq(
    $$SELECT job_name, side, trigger, status, message, details ->> 'attempt'
      FROM autopilot.job_runs ORDER BY id$$,
    $$VALUES ('code-ingest', 'runner', 'runner', 'succeeded', 'ingested 3 files', '1'),
             ('adhoc_worker', 'runner', 'runner', 'succeeded', NULL, '2')$$,
    'named after the catalog job, else the worker, each with its message'
);
-- the runner records completions in the transaction of its next claim: a job claimed in it
-- (attempted_at = now()) must not seem to start before they finished
SELECT ok(
    (SELECT bool_and(finished_at = now()) FROM autopilot.job_runs),
    'finished at the transaction''s time, as jobs.completed_at'
);
SELECT ok(
    (SELECT bool_and(finished_at >= started_at) FROM autopilot.job_runs),
    'never finished before it started'
);

SELECT * FROM finish();
ROLLBACK;
