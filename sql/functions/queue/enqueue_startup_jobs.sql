CREATE FUNCTION autopilot.enqueue_startup_jobs(p_workers text[])
RETURNS TABLE (job_name text, job_id bigint, depends_on bigint[])
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- What a runner enqueues when it starts: the enabled runner-side catalog jobs
-- that run at startup and whose worker is among p_workers (the workers the
-- runner has), each with the unique key pg_cron's enqueues use (catalog:<name>),
-- so that a job already pending is not added twice. The jobs with a
-- startup_order form a chain in that order, each waiting for the one before it
-- (the seed's order: knowledge-migration, templates-data-load, planning-seed,
-- code-ingest, graph-populate, rag-setup); a link whose worker this runner
-- lacks, or that is disabled, is left out of the chain. Returns the jobs in
-- that order.
DECLARE
    v_entry record;
    v_previous bigint;
BEGIN
    FOR v_entry IN
        SELECT d.name, d.target, d.args, d.queue, c.startup_order
        FROM autopilot.job_definitions AS d
        INNER JOIN autopilot.job_catalog AS c ON d.name = c.name
        WHERE d.side = 'runner' AND d.run_at_startup AND d.enabled AND d.target = ANY(p_workers)
        ORDER BY c.startup_order NULLS LAST, d.name
    LOOP
        job_name := v_entry.name;
        depends_on := CASE WHEN v_entry.startup_order IS NOT NULL AND v_previous IS NOT NULL THEN ARRAY[v_previous] END;
        job_id := autopilot.enqueue(
            v_entry.target, v_entry.args, v_entry.queue,
            p_unique_key => 'catalog:' || v_entry.name,
            p_meta => jsonb_build_object('catalog', v_entry.name),
            p_depends_on => depends_on
        );
        IF v_entry.startup_order IS NOT NULL THEN
            v_previous := job_id;
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION autopilot.enqueue_startup_jobs(text[]) IS
'Enqueues the enabled startup jobs of the runner-side catalog that these workers run (deduplicated by the catalog''s unique keys), those with a startup_order chained in that order; returns each job with the job it waits for.';
