CREATE FUNCTION autopilot._notify_jobs_available()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- @plpgsql_check_options: newtable = new_rows
--
-- Statement trigger on autopilot.jobs (after UPDATE): one NOTIFY autopilot_jobs
-- per queue in which the statement made a job ready to run now (retried,
-- rescued, released), payload the queue's name, so that an idle runner
-- LISTENing starts it at once instead of at its next poll. Delivered at commit;
-- PostgreSQL folds identical notifications of one transaction. Jobs due later
-- are found by the runners' polling. New jobs are announced by the functions
-- that add them (enqueue, enqueue_many, _enqueue_catalog_job), not by an INSERT
-- trigger: its transition table cost a one-job enqueue more than the NOTIFY.
BEGIN
    PERFORM pg_notify('autopilot_jobs', q.queue)
    FROM (
        SELECT DISTINCT n.queue
        FROM new_rows AS n
        WHERE n.state IN ('available', 'scheduled', 'retryable') AND n.scheduled_at <= now()
    ) AS q;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION autopilot._notify_jobs_available() IS
'Private: statement trigger on autopilot.jobs (after UPDATE); NOTIFY autopilot_jobs (payload: the queue) for each queue in which a statement made a job ready to run now.';

CREATE TRIGGER jobs_notify_update_trg
AFTER UPDATE ON autopilot.jobs
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._notify_jobs_available();

COMMENT ON TRIGGER jobs_notify_update_trg ON autopilot.jobs IS
'Jobs retried or rescued, ready now: NOTIFY autopilot_jobs with their queue.';
