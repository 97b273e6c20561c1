-- autopilot.enqueue_startup_jobs(): the runner's startup jobs, a chain in the catalog's
-- startup_order, only for the workers the runner has, deduplicated, enabled ones only.
BEGIN;
SELECT plan(6);

SELECT has_function(
    'autopilot', 'enqueue_startup_jobs', ARRAY['text[]'], 'autopilot.enqueue_startup_jobs(text[]) exists'
);
SELECT results_eq(
    $$SELECT name FROM autopilot.job_catalog WHERE startup_order IS NOT NULL ORDER BY startup_order$$,
    $$VALUES ('knowledge-migration'::text), ('templates-data-load'), ('planning-seed'), ('code-ingest'),
             ('graph-populate'), ('rag-setup')$$,
    'the startup chain is the seed''s order'
);
UPDATE autopilot.job_catalog SET disabled_reason = NULL
WHERE startup_order IS NOT NULL;
CREATE TEMPORARY TABLE tap_first AS
SELECT * FROM autopilot.enqueue_startup_jobs(ARRAY['graph_populate', 'code_ingest', 'rag_setup', 'backup', 'nope']);
SELECT results_eq(
    $$SELECT f.job_name, f.depends_on = ARRAY[p.job_id]
      FROM tap_first AS f LEFT JOIN tap_first AS p ON f.depends_on[1] = p.job_id$$,
    $$VALUES ('code-ingest'::text, NULL::boolean), ('graph-populate', true), ('rag-setup', true)$$,
    'only the startup jobs of the workers named, each waiting for the one before it (links it lacks left out)'
);
SELECT results_eq(
    $$SELECT j.state FROM tap_first AS f INNER JOIN autopilot.jobs AS j ON f.job_id = j.id ORDER BY j.id$$,
    $$VALUES ('available'::text), ('waiting'), ('waiting')$$,
    'the head of the chain is available, the rest wait'
);
SELECT results_eq(
    $$SELECT job_name, job_id
      FROM autopilot.enqueue_startup_jobs(ARRAY['graph_populate', 'code_ingest', 'rag_setup'])$$,
    $$SELECT job_name, job_id FROM tap_first$$,
    'a second start adds nothing: the pending jobs are returned (catalog unique keys)'
);
SELECT autopilot.set_job_enabled('graph-populate', false);
DELETE FROM autopilot.jobs;
SELECT results_eq(
    $$SELECT job_name, depends_on IS NOT NULL
      FROM autopilot.enqueue_startup_jobs(ARRAY['graph_populate', 'code_ingest', 'rag_setup'])$$,
    $$VALUES ('code-ingest'::text, false), ('rag-setup', true)$$,
    'a disabled job is not enqueued at startup, and the chain closes over it'
);

SELECT * FROM finish();
ROLLBACK;
