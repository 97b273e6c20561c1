-- needs: pg_cron (cron.job, cron.schedule): left out on a server without it (tools/dev.py)
-- autopilot.reindex_bloated_indexes(): the pg_cron side of index-reindex. It never runs
-- REINDEX itself (impossible inside a function): it arms the statement job
-- index-reindex-step with one statement at a time and settles it from
-- cron.job_run_details. Here pg_cron's runs are written by hand into its history.
BEGIN;
SELECT plan(14);

SELECT has_function(
    'autopilot', 'reindex_bloated_indexes', ARRAY[]::text[], 'autopilot.reindex_bloated_indexes() exists'
);

-- start from compact indexes with current statistics: the rows earlier test files
-- rolled back leave real bloat behind in the indexes
DO $$
DECLARE
    v_table regclass;
BEGIN
    FOR v_table IN SELECT oid FROM pg_class WHERE relnamespace = 'autopilot'::regnamespace AND relkind = 'r' LOOP
        EXECUTE format('REINDEX TABLE %s', v_table);
        EXECUTE format('ANALYZE %s', v_table);
    END LOOP;
END;
$$;
DELETE FROM autopilot.index_maintenance;
DELETE FROM autopilot.job_arming;
SELECT autopilot.set_setting('reindex.min_size_bytes', '0');
SELECT autopilot.set_setting('reindex.bloat_threshold', '0.5');
SELECT count(*) FROM autopilot.sync_schedules();

-- nothing bloated: nothing armed
SELECT is(
    autopilot.reindex_bloated_indexes() ->> 'message', 'no index needs a rebuild',
    'with no bloated index the cycle is empty'
);
SELECT is(
    (
        SELECT active
        FROM cron.job
        WHERE
            jobname = autopilot._cron_jobname('index-reindex-step')
            AND database = current_database()
    ),
    false, 'index-reindex-step is registered with pg_cron, inactive until armed'
);

INSERT INTO autopilot.agents (name) SELECT 'ri-agent-' || lpad(g::text, 6, '0') FROM generate_series(1, 20000) AS g;
DELETE FROM autopilot.agents
WHERE id % 10 <> 0;
ANALYZE autopilot.agents;

SELECT matches(
    autopilot.reindex_bloated_indexes() ->> 'message', '^pg_cron runs next: REINDEX INDEX CONCURRENTLY ',
    'a bloated index: the first statement is handed to pg_cron'
);
SELECT is(
    (
        SELECT count(*)::integer FROM autopilot.index_maintenance
        WHERE state = 'armed'
    ), 1,
    'one statement is armed at a time'
);
SELECT results_eq(
    $$SELECT j.command, j.active FROM cron.job AS j
      WHERE j.jobname = autopilot._cron_jobname('index-reindex-step') AND j.database = current_database()$$,
    $$SELECT statement, true FROM autopilot.index_maintenance WHERE state = 'armed'$$,
    'pg_cron''s index-reindex-step now runs exactly the armed statement, at top level'
);
SELECT matches(
    (
        SELECT schedule
        FROM cron.job
        WHERE
            jobname = autopilot._cron_jobname('index-reindex-step')
            AND database = current_database()
    ),
    '^[0-9]+ [0-9]+ [0-9]+ [0-9]+ \*$', 'the step fires once, at the next minute'
);
SELECT is(
    (
        SELECT schedule FROM cron.job
        WHERE jobname = autopilot._cron_jobname('index-reindex') AND database = current_database()
    ),
    '* * * * *', 'index-reindex runs every minute while the cycle lasts'
);
SELECT matches(
    autopilot.reindex_bloated_indexes() ->> 'message', '^waiting for pg_cron to run: ',
    'until pg_cron has run the statement, the next run waits'
);

-- pg_cron runs the armed statement, and it fails
INSERT INTO cron.job_run_details (
    jobid, runid, job_pid, database, username, command, status,
    return_message, start_time, end_time
)
SELECT
    j.jobid,
    nextval('cron.runid_seq') AS runid,
    0 AS job_pid,
    current_database() AS database,
    current_user AS username,
    m.statement AS command,
    'failed' AS status,
    'could not obtain lock' AS return_message,
    now() AS start_time,
    now() AS end_time
FROM cron.job AS j, autopilot.index_maintenance AS m
WHERE
    j.jobname = autopilot._cron_jobname('index-reindex-step')
    AND j.database = current_database()
    AND m.state = 'armed';
SELECT autopilot.reindex_bloated_indexes();
SELECT is(
    (
        SELECT message FROM autopilot.index_maintenance
        WHERE state = 'failed'
    ),
    'pg_cron: could not obtain lock', 'a statement pg_cron ran and failed is recorded failed, with pg_cron''s error'
);

-- pg_cron runs every further armed statement successfully
DO $$
BEGIN
    FOR i IN 1..20 LOOP
        EXIT WHEN NOT EXISTS (SELECT FROM autopilot.index_maintenance WHERE state = 'armed');
        INSERT INTO cron.job_run_details (jobid, runid, job_pid, database, username, command, status,
                                          return_message, start_time, end_time)
        SELECT j.jobid, nextval('cron.runid_seq'), 0, current_database(), current_user, m.statement,
               'succeeded', 'REINDEX', now(), now()
        FROM cron.job AS j, autopilot.index_maintenance AS m
        WHERE j.jobname = autopilot._cron_jobname('index-reindex-step') AND j.database = current_database()
          AND m.state = 'armed';
        PERFORM autopilot.reindex_bloated_indexes();
    END LOOP;
END;
$$;

SELECT is_empty(
    $$SELECT id FROM autopilot.index_maintenance WHERE state IN ('pending', 'armed')$$,
    'every planned statement was handed to pg_cron and settled'
);
SELECT ok(
    (
        SELECT count(*) FROM autopilot.index_maintenance
        WHERE state = 'done'
    ) >= 1,
    'statements pg_cron ran successfully are done'
);
SELECT is_empty($$SELECT job_name FROM autopilot.job_arming$$, 'the cycle over, nothing stays armed');
SELECT results_eq(
    $$SELECT jobname::text COLLATE "C", schedule, active FROM cron.job
      WHERE jobname IN (autopilot._cron_jobname('index-reindex'), autopilot._cron_jobname('index-reindex-step'))
        AND database = current_database() ORDER BY jobname$$,
    $$VALUES (autopilot._cron_jobname('index-reindex') COLLATE "C", '0 3 * * 0'::text, true),
             (autopilot._cron_jobname('index-reindex-step'), '* * * * *', false)$$,
    'index-reindex is back on its weekly schedule and the step is inactive again'
);

SELECT * FROM finish();
ROLLBACK;
