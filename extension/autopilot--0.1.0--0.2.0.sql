-- autopilot 0.1.0 -> 0.2.0: the learning jobs (pattern learning, agent knowledge, task assignment,
-- metrics refresh, PageRank, CentralCloud sync). Each part is the same SQL as the fresh 0.2.0
-- script's, plus the DDL that brings 0.1.0's tables to 0.2.0's shape.
\echo Use "ALTER EXTENSION autopilot UPDATE TO '0.2.0'" (or "autopilot upgrade") to load this file. \quit

CREATE OR REPLACE FUNCTION autopilot.version()
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '0.2.0'::text $$;

-- ===================================== pattern learning, agent knowledge
-- analysis_results.created_xid. Added with the constant default '0' (no table rewrite: the value
-- lives in the catalog), then given its real default: every row that existed before 0.2.0 carries
-- created_xid 0 and is folded once by the first pattern-learning run (into whatever
-- learned_patterns already holds).
ALTER TABLE autopilot.analysis_results ADD COLUMN created_xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE autopilot.analysis_results ALTER COLUMN created_xid SET DEFAULT pg_catalog.pg_current_xact_id();
CREATE INDEX analysis_results_created_xid_idx ON autopilot.analysis_results (created_xid);
COMMENT ON COLUMN autopilot.analysis_results.created_xid IS
'The inserting transaction (its default, pg_current_xact_id(); never set it yourself). Pattern learning folds a row once every transaction below its horizon has ended, so rows committed out of id order are still counted exactly once. 0 on rows that existed before autopilot 0.2.0 (folded by the first run) and on rows relabelled after a restore into another cluster.';


-- learned_patterns.score_count: the weight of mean_score. A mean written before 0.2.0 (not by
-- autopilot, which had no pattern learning) gets the best weight there is: its occurrences.
ALTER TABLE autopilot.learned_patterns
ADD COLUMN score_count bigint NOT NULL DEFAULT 0,
ADD CONSTRAINT learned_patterns_score_count_check CHECK (score_count >= 0);
UPDATE autopilot.learned_patterns SET score_count = occurrences
WHERE mean_score IS NOT NULL;
COMMENT ON COLUMN autopilot.learned_patterns.occurrences IS
'Analysis rows folded into the pattern, whatever their outcome (neutral ones included).';
COMMENT ON COLUMN autopilot.learned_patterns.success_rate IS
'successes / (successes + failures); neutral outcomes are not evidence either way. NULL while there is no evidence.';
COMMENT ON COLUMN autopilot.learned_patterns.confidence IS
'The Wilson score lower bound at 95% (z = 1.96) of the success rate over successes + failures: between 0 and 1, grows with evidence; 0 without any.';
COMMENT ON COLUMN autopilot.learned_patterns.mean_score IS
'Mean of the non-null scores of the folded rows (an exact running mean, weighted by score_count); NULL while none had a score.';
COMMENT ON COLUMN autopilot.learned_patterns.score_count IS
'How many folded rows had a score: the weight of mean_score when new rows are folded in.';
COMMENT ON COLUMN autopilot.learned_patterns.codebases IS 'Every codebase the pattern was seen in, sorted, without duplicates.';
COMMENT ON COLUMN autopilot.learned_patterns.first_seen_at IS 'Earliest created_at of the folded analysis rows.';
COMMENT ON COLUMN autopilot.learned_patterns.last_seen_at IS 'Latest created_at of the folded analysis rows.';
COMMENT ON COLUMN autopilot.learned_patterns.updated_at IS 'When a pattern-learning run last changed the row.';

-- learned_patterns.changed_xid: centralcloud-sync's mark. Rows of 0.1.0 get '0' (no table rewrite);
-- the first push sends every pattern anyway. It replaces 0.1.0's index on updated_at, which was
-- meant for the push (a timestamp cannot tell which transactions have committed).
ALTER TABLE autopilot.learned_patterns ADD COLUMN changed_xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE autopilot.learned_patterns ALTER COLUMN changed_xid SET DEFAULT pg_catalog.pg_current_xact_id();
DROP INDEX autopilot.learned_patterns_updated_at_idx;
-- centralcloud-sync: patterns changed since the last push
CREATE INDEX learned_patterns_changed_xid_idx ON autopilot.learned_patterns (changed_xid);
COMMENT ON COLUMN autopilot.learned_patterns.changed_xid IS
'The transaction that last inserted or changed the row (pattern-learning sets it; a trigger sets it for any other UPDATE): centralcloud-sync sends the rows changed since its last push.';


-- new tables
CREATE TABLE autopilot.agent_knowledge_pending (
    changed_xid xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    agent_id bigint NOT NULL,
    CONSTRAINT agent_knowledge_pending_pkey PRIMARY KEY (changed_xid, agent_id)
);

COMMENT ON TABLE autopilot.agent_knowledge_pending IS
'Agents whose task outcomes changed: one row per agent and writing transaction, added by the statement triggers on autopilot.tasks and consumed by agent-knowledge-update once the transaction has ended. No foreign key: a deleted agent''s rows are simply consumed.';
COMMENT ON COLUMN autopilot.agent_knowledge_pending.changed_xid IS
'The transaction that changed the agent''s tasks (pg_current_xact_id()).';

-- Where pattern learning and agent knowledge have got to. One row per job,
-- created by the job's first run (not by the install script: in extension
-- mode the rows are dumped, and CREATE EXTENSION must not recreate them).
CREATE TABLE autopilot.learning_watermarks (
    name text NOT NULL,
    horizon xid8 NOT NULL DEFAULT '0',
    max_id bigint NOT NULL DEFAULT 0,
    system_identifier bigint,
    rows_total bigint NOT NULL DEFAULT 0,
    runs bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT learning_watermarks_pkey PRIMARY KEY (name),
    CONSTRAINT learning_watermarks_name_check CHECK (
        name IN ('pattern-learning', 'agent-knowledge-update', 'centralcloud-sync')
    ),
    CONSTRAINT learning_watermarks_counts_check CHECK (max_id >= 0 AND rows_total >= 0 AND runs >= 0)
);

COMMENT ON TABLE autopilot.learning_watermarks IS
'How far pattern-learning, agent-knowledge-update and centralcloud-sync have got, one row per job, advanced in the same transaction as the work. A run locks its row (FOR UPDATE), so two runs of one job never overlap.';
COMMENT ON COLUMN autopilot.learning_watermarks.horizon IS
'pattern-learning: every analysis row with created_xid below this has been folded, none at or above it. agent-knowledge-update: the pattern-learning horizon its last run saw. centralcloud-sync: every learned pattern changed (changed_xid) below this has been sent.';
COMMENT ON COLUMN autopilot.learning_watermarks.max_id IS
'pattern-learning: the highest analysis_results.id folded so far. After a restore into another cluster (whose transaction ids mean nothing here), rows above it are known to be new.';
COMMENT ON COLUMN autopilot.learning_watermarks.system_identifier IS
'The cluster (pg_control_system().system_identifier) whose transaction ids horizon counts in; NULL before the first run. A run that finds another one rebases (see the job''s function).';
COMMENT ON COLUMN autopilot.learning_watermarks.rows_total IS
'pattern-learning: analysis rows folded by all runs; agent-knowledge-update: agent summaries computed; centralcloud-sync: pattern rows sent.';
COMMENT ON COLUMN autopilot.learning_watermarks.runs IS 'Runs that changed the watermark.';

-- pg_dump marks for the new tables (extension mode only; as sql/grants/config_dump.sql does)
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'autopilot') THEN
        PERFORM pg_catalog.pg_extension_config_dump('autopilot.agent_knowledge_pending', '');
        PERFORM pg_catalog.pg_extension_config_dump('autopilot.learning_watermarks', '');
    END IF;
END;
$$;

-- functions (sql/manifest.txt order), the tasks triggers with them

-- sql/functions/learning/learn_patterns_from_analysis.sql
CREATE FUNCTION autopilot.learn_patterns_from_analysis()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- pattern-learning. Folds the analysis rows no run has folded yet into
-- autopilot.learned_patterns, one row per (pattern_type, pattern_key):
--   occurrences    every folded row, whatever its outcome;
--   successes, failures    rows with outcome success / failure (a neutral row
--                  is an occurrence but no evidence either way);
--   success_rate   successes / (successes + failures), NULL without evidence;
--   confidence     Wilson score lower bound at 95% (z = 1.96) of that rate
--                  over n = successes + failures, 0 without a success:
--                  (s + z^2/2 - z * sqrt(s*f/n + z^2/4)) / (n + z^2);
--   mean_score, score_count    exact running mean of the non-null scores,
--                  weighted by how many rows had one (a mean written by hand
--                  without a score_count carries no weight);
--   first_seen_at, last_seen_at    earliest / latest created_at folded;
--   codebases      union of the rows' codebases, sorted, no duplicates;
--   updated_at     now() on every row the run changed.
--
-- Exactly once. Each analysis row carries created_xid, the transaction that
-- inserted it. A run locks its watermark row (so runs are serialised: a second
-- concurrent run waits, then folds only what the first left), takes as new
-- horizon the xmin of its snapshot -- every transaction below it has ended,
-- so every committed row with created_xid below it is visible -- and folds
-- the rows with created_xid in [old horizon, new horizon) in one set-based
-- upsert, then advances the watermark in the same transaction. A row whose
-- transaction is still open (even one that began before rows already folded,
-- i.e. commits out of id order) stays at or above the horizon and is folded
-- by a later run; a run that fails or is killed rolls back with its
-- watermark. An open transaction anywhere in the cluster holds the horizon
-- back: learning is delayed, nothing is lost. The cost is the new rows (an
-- index range scan on created_xid), not the table; the whole backlog goes in
-- one transaction. Rows the calling transaction wrote itself wait for a
-- later run. Never set created_xid by hand: a value below the horizon is
-- never folded.
--
-- Rows that existed before autopilot 0.2.0 have created_xid 0 and are folded
-- once, by the first run, into whatever learned_patterns already holds.
--
-- Restore into another cluster. Transaction ids mean nothing across clusters,
-- so the watermark records the cluster (system identifier) its horizon counts
-- in, and the highest row id folded. A run that finds another cluster's
-- watermark (a pg_dump restored elsewhere; pg_upgrade too, harmlessly) takes
-- a SHARE lock on analysis_results (writers wait for the run), folds the rows
-- not folded yet -- id above the recorded maximum (restored identities only
-- grow) or created_xid at or above the recorded horizon -- then sets
-- created_xid to 0 on every row at or above the new horizon and starts
-- counting in this cluster. This one run reads the whole table.
DECLARE
    c_all_xids CONSTANT xid8 := '18446744073709551615'::xid8;
    v_system_identifier bigint := (pg_catalog.pg_control_system()).system_identifier;
    v_mark autopilot.learning_watermarks;
    v_rebase boolean;
    v_horizon xid8;
    v_from xid8[];
    v_to xid8[];
    v_after_id bigint[];
    v_pass_rows bigint;
    v_pass_patterns bigint;
    v_pass_max_id bigint;
    v_rows bigint := 0;
    v_patterns bigint := 0;
    v_max_id bigint;
    v_relabelled bigint := 0;
BEGIN
    INSERT INTO autopilot.learning_watermarks (name) VALUES ('pattern-learning')
    ON CONFLICT (name) DO NOTHING;
    SELECT w.* INTO STRICT v_mark
    FROM autopilot.learning_watermarks AS w
    WHERE w.name = 'pattern-learning'
    FOR UPDATE;

    v_rebase := v_mark.system_identifier IS DISTINCT FROM v_system_identifier
        AND v_mark.system_identifier IS NOT NULL;
    IF v_rebase THEN
        -- no writer in flight: every row of the table is committed and visible
        LOCK TABLE autopilot.analysis_results IN SHARE MODE;
    END IF;
    v_horizon := pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot());
    IF NOT v_rebase THEN
        -- never backwards (that would fold rows twice)
        v_horizon := greatest(v_horizon, v_mark.horizon);
    END IF;
    v_max_id := v_mark.max_id;

    IF v_rebase THEN
        v_from := ARRAY[v_mark.horizon, '0'::xid8];
        v_to := ARRAY[c_all_xids, v_mark.horizon];
        v_after_id := ARRAY[0, v_mark.max_id];
    ELSE
        v_from := ARRAY[v_mark.horizon];
        v_to := ARRAY[v_horizon];
        v_after_id := ARRAY[0::bigint];
    END IF;

    FOR v_pass IN 1 .. cardinality(v_from) LOOP
        WITH batch AS (
            SELECT
                a.pattern_type,
                a.pattern_key,
                count(*) AS occurrences,
                count(*) FILTER (WHERE a.outcome = 'success') AS successes,
                count(*) FILTER (WHERE a.outcome = 'failure') AS failures,
                count(a.score) AS score_count,
                avg(a.score) AS mean_score,
                min(a.created_at) AS first_seen_at,
                max(a.created_at) AS last_seen_at,
                array_agg(DISTINCT a.codebase ORDER BY a.codebase) AS codebases,
                max(a.id) AS max_id
            FROM autopilot.analysis_results AS a
            WHERE a.created_xid >= v_from[v_pass]
              AND a.created_xid < v_to[v_pass]
              AND a.id > v_after_id[v_pass]
            GROUP BY a.pattern_type, a.pattern_key
        ),

        upserted AS (
            INSERT INTO autopilot.learned_patterns AS lp (
                pattern_type, pattern_key, occurrences, successes, failures, success_rate, confidence,
                mean_score, score_count, codebases, first_seen_at, last_seen_at, updated_at
            )
            SELECT
                b.pattern_type,
                b.pattern_key,
                b.occurrences,
                b.successes,
                b.failures,
                b.successes::double precision / nullif(b.successes + b.failures, 0),
                -- Wilson lower bound, in double precision throughout
                CASE WHEN b.successes = 0 THEN 0 ELSE
                    greatest(0, least(1,
                        (b.successes::double precision + 1.9208::double precision
                         - 1.96::double precision
                         * sqrt(b.successes::double precision * b.failures / (b.successes + b.failures)
                                + 0.9604::double precision))
                        / ((b.successes + b.failures)::double precision + 3.8416::double precision)))
                END,
                b.mean_score,
                b.score_count,
                b.codebases,
                b.first_seen_at,
                b.last_seen_at,
                now()
            FROM batch AS b
            ON CONFLICT (pattern_type, pattern_key) DO UPDATE
            SET occurrences = lp.occurrences + excluded.occurrences,
                successes = lp.successes + excluded.successes,
                failures = lp.failures + excluded.failures,
                success_rate = (lp.successes + excluded.successes)::double precision
                / nullif(lp.successes + excluded.successes + lp.failures + excluded.failures, 0),
                confidence = CASE
                    WHEN lp.successes + excluded.successes = 0 THEN 0
                    ELSE greatest(0, least(1,
                        ((lp.successes + excluded.successes)::double precision + 1.9208::double precision
                         - 1.96::double precision
                         * sqrt((lp.successes + excluded.successes)::double precision
                                * (lp.failures + excluded.failures)
                                / (lp.successes + excluded.successes + lp.failures + excluded.failures)
                                + 0.9604::double precision))
                        / ((lp.successes + excluded.successes + lp.failures + excluded.failures)::double precision
                           + 3.8416::double precision)))
                END,
                mean_score = CASE
                    WHEN excluded.score_count = 0 THEN lp.mean_score
                    WHEN lp.score_count = 0 OR lp.mean_score IS NULL THEN excluded.mean_score
                    ELSE (lp.mean_score * lp.score_count + excluded.mean_score * excluded.score_count)
                    / (lp.score_count + excluded.score_count)
                END,
                score_count = lp.score_count + excluded.score_count,
                codebases = CASE
                    WHEN excluded.codebases <@ lp.codebases THEN lp.codebases
                    ELSE array(
                        SELECT DISTINCT c.codebase
                        FROM unnest(lp.codebases || excluded.codebases) AS c (codebase)
                        ORDER BY c.codebase
                    )
                END,
                first_seen_at = least(lp.first_seen_at, excluded.first_seen_at),
                last_seen_at = greatest(lp.last_seen_at, excluded.last_seen_at),
                updated_at = now(),
                -- centralcloud-sync's mark, set here rather than by the row trigger (cheaper)
                changed_xid = pg_current_xact_id()
            RETURNING 1
        )

        SELECT
            coalesce(sum(b.occurrences), 0)::bigint,
            max(b.max_id),
            (SELECT count(*) FROM upserted)
        INTO v_pass_rows, v_pass_max_id, v_pass_patterns
        FROM batch AS b;

        v_rows := v_rows + v_pass_rows;
        v_patterns := v_patterns + v_pass_patterns;
        v_max_id := greatest(v_max_id, v_pass_max_id);
    END LOOP;

    IF v_rebase THEN
        -- every row is folded now; those at or above the new horizon carry
        -- another cluster's transaction ids and must never be folded again
        UPDATE autopilot.analysis_results AS a
        SET created_xid = '0'
        WHERE a.created_xid >= v_horizon;
        GET DIAGNOSTICS v_relabelled = ROW_COUNT;
    END IF;

    UPDATE autopilot.learning_watermarks AS w
    SET horizon = v_horizon,
        max_id = v_max_id,
        system_identifier = v_system_identifier,
        rows_total = w.rows_total + v_rows,
        runs = w.runs + 1,
        updated_at = now()
    WHERE w.name = 'pattern-learning';

    RETURN jsonb_build_object(
        'rows_affected', v_rows,
        'message', format(
            '%s analysis %s folded into %s learned %s',
            v_rows, CASE WHEN v_rows = 1 THEN 'row' ELSE 'rows' END,
            v_patterns, CASE WHEN v_patterns = 1 THEN 'pattern' ELSE 'patterns' END
        ) || CASE WHEN v_rebase
            THEN format(' (first run in this cluster: rebased, %s rows relabelled)', v_relabelled)
            ELSE ''
        END,
        'patterns', v_patterns,
        'horizon', v_horizon::text,
        'previous_horizon', v_mark.horizon::text,
        'rebased', v_rebase
    );
END;
$$;

COMMENT ON FUNCTION autopilot.learn_patterns_from_analysis() IS
'pattern-learning: folds every analysis row not yet folded into autopilot.learned_patterns (occurrences, successes, failures, success rate, Wilson lower-bound confidence at 95%, running mean score, first/last seen, codebases), exactly once: rows are taken by inserting transaction, below a horizon every transaction under which has ended, and the watermark advances in the same transaction. Returns the job summary (rows_affected = rows folded).';

-- sql/functions/learning/_mark_agent_knowledge_pending.sql
CREATE FUNCTION autopilot._mark_agent_knowledge_pending()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- @plpgsql_check_options: oldtable = old_rows, newtable = new_rows
--
-- Statement trigger on autopilot.tasks (after INSERT, UPDATE, DELETE,
-- TRUNCATE): records in autopilot.agent_knowledge_pending, once per agent and
-- transaction, the agents whose task outcomes changed -- a task with an agent
-- entering or leaving succeeded/failed, or a finished task changing agent or
-- required skills; after TRUNCATE, every agent. Assigning, starting or
-- cancelling work writes nothing. One set-based INSERT per statement; ON
-- CONFLICT DO NOTHING on (transaction, agent) never waits on another
-- transaction.
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO autopilot.agent_knowledge_pending (agent_id)
        SELECT a.id FROM autopilot.agents AS a
        ON CONFLICT DO NOTHING;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO autopilot.agent_knowledge_pending (agent_id)
        SELECT DISTINCT n.agent_id
        FROM new_rows AS n
        WHERE n.agent_id IS NOT NULL AND n.status IN ('succeeded', 'failed')
        ON CONFLICT DO NOTHING;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO autopilot.agent_knowledge_pending (agent_id)
        SELECT DISTINCT o.agent_id
        FROM old_rows AS o
        WHERE o.agent_id IS NOT NULL AND o.status IN ('succeeded', 'failed')
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO autopilot.agent_knowledge_pending (agent_id)
        SELECT DISTINCT c.agent_id
        FROM (
            (
                SELECT n.id, n.agent_id, n.status, n.required_skills
                FROM new_rows AS n
                WHERE n.agent_id IS NOT NULL AND n.status IN ('succeeded', 'failed')
                EXCEPT
                SELECT o.id, o.agent_id, o.status, o.required_skills
                FROM old_rows AS o
                WHERE o.agent_id IS NOT NULL AND o.status IN ('succeeded', 'failed')
            )
            UNION ALL
            (
                SELECT o.id, o.agent_id, o.status, o.required_skills
                FROM old_rows AS o
                WHERE o.agent_id IS NOT NULL AND o.status IN ('succeeded', 'failed')
                EXCEPT
                SELECT n.id, n.agent_id, n.status, n.required_skills
                FROM new_rows AS n
                WHERE n.agent_id IS NOT NULL AND n.status IN ('succeeded', 'failed')
            )
        ) AS c
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION autopilot._mark_agent_knowledge_pending() IS
'Private: statement trigger on autopilot.tasks (insert, update, delete, truncate); records in autopilot.agent_knowledge_pending the agents whose finished (succeeded/failed) tasks changed, for agent-knowledge-update.';

CREATE TRIGGER tasks_agent_knowledge_insert_trg
AFTER INSERT ON autopilot.tasks
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_agent_knowledge_pending();

CREATE TRIGGER tasks_agent_knowledge_update_trg
AFTER UPDATE ON autopilot.tasks
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_agent_knowledge_pending();

CREATE TRIGGER tasks_agent_knowledge_delete_trg
AFTER DELETE ON autopilot.tasks
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_agent_knowledge_pending();

CREATE TRIGGER tasks_agent_knowledge_truncate_trg
AFTER TRUNCATE ON autopilot.tasks
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_agent_knowledge_pending();

COMMENT ON TRIGGER tasks_agent_knowledge_insert_trg ON autopilot.tasks IS
'Agents given an already finished task: their knowledge summary is recomputed by agent-knowledge-update.';
COMMENT ON TRIGGER tasks_agent_knowledge_update_trg ON autopilot.tasks IS
'Agents whose tasks finished, left a finished state, or changed agent or skills while finished: recomputed by agent-knowledge-update.';
COMMENT ON TRIGGER tasks_agent_knowledge_delete_trg ON autopilot.tasks IS
'Agents whose finished tasks were deleted: recomputed by agent-knowledge-update.';
COMMENT ON TRIGGER tasks_agent_knowledge_truncate_trg ON autopilot.tasks IS
'Every agent, after autopilot.tasks is truncated: recomputed by agent-knowledge-update.';

-- sql/functions/learning/update_agent_knowledge.sql
CREATE FUNCTION autopilot.update_agent_knowledge()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- agent-knowledge-update. For each agent, one row in autopilot.agent_knowledge
-- whose summary an agent reads in one query
-- (SELECT summary FROM autopilot.agent_knowledge WHERE agent_id = $1):
--   tasks          {"succeeded", "failed", "success_rate"}: its tasks that
--                  succeeded or failed (cancelled, pending, assigned and
--                  running ones are no outcome of its own and not counted);
--                  success_rate = succeeded / (succeeded + failed), null with
--                  none;
--   skills         {"<skill>": {"succeeded", "failed", "success_rate"}}: the
--                  same per required skill (a task requiring two skills counts
--                  for both; one requiring none only in tasks);
--   pattern_types  the pattern types of its analysis rows (the types it works
--                  with), sorted;
--   patterns_met   [{"pattern_type", "pattern_key", "met", "successes",
--                  "failures", "confidence", "success_rate"}]: the patterns of
--                  its analysis rows -- met/successes/failures are its own
--                  rows, confidence and success_rate the learned (global) ones
--                  -- most confident first, at most
--                  agent_knowledge.patterns_met_limit of them;
--   patterns_met_total    how many patterns it has met in all;
--   top_patterns   {"<pattern type>": [{"pattern_key", "confidence",
--                  "success_rate", "occurrences"}]}: for each of its pattern
--                  types the agent_knowledge.top_patterns most confident
--                  learned patterns (confidence > 0; ties: more occurrences,
--                  then key);
--   top_patterns_limit, patterns_met_limit    the settings it was built with.
-- Only analysis rows pattern learning has folded count (created_xid below its
-- horizon), so patterns_met agrees with autopilot.learned_patterns.
--
-- Recomputed only for agents whose inputs changed since the last run:
--   * agents without a summary yet (new agents);
--   * agents whose finished tasks changed (every agent after a TRUNCATE of
--     autopilot.tasks): the statement triggers on autopilot.tasks add
--     (transaction, agent) rows to autopilot.agent_knowledge_pending; a run
--     consumes the rows of transactions below the xmin of its snapshot (all
--     ended, all visible) and leaves the others for the next run. A trigger,
--     because tasks change state by UPDATE and carry no change marker; a
--     statement trigger with transition tables, so that a bulk change costs
--     one INSERT; only finished tasks count, so assignment writes nothing.
--     (In extension mode the triggers also fire while pg_restore loads
--     autopilot.tasks: the restored agents are recomputed once, harmlessly.);
--   * agents with analysis rows folded since the last run, and agents working
--     with a pattern type any folded row belongs to (its learned patterns,
--     hence their confidences and the type's top list, changed): the rows
--     with created_xid between the pattern-learning horizon the last run saw
--     and the current one;
--   * every agent when the two settings differ from those its summary was
--     built with.
-- Not noticed until one of the above happens: learned patterns deleted by
-- old-artifact-cleanup, analysis rows deleted or edited by hand.
-- Runs are serialised by the watermark row's lock. The first run, and the
-- first after a restore into another cluster (whose transaction ids mean
-- nothing here), recomputes every agent; until pattern learning has rebased
-- itself after such a restore, a run waits (changes nothing, says so).
DECLARE
    v_system_identifier bigint := (pg_catalog.pg_control_system()).system_identifier;
    v_top_patterns integer := autopilot.get_setting('agent_knowledge.top_patterns')::integer;
    v_met_limit integer := autopilot.get_setting('agent_knowledge.patterns_met_limit')::integer;
    v_mark autopilot.learning_watermarks;
    v_learning autopilot.learning_watermarks;
    v_learned xid8;
    v_full boolean;
    v_horizon xid8;
    v_types text[] := '{}'::text[];
    v_agents bigint[];
    v_computed bigint;
    v_consumed bigint;
BEGIN
    INSERT INTO autopilot.learning_watermarks (name) VALUES ('agent-knowledge-update')
    ON CONFLICT (name) DO NOTHING;
    SELECT w.* INTO STRICT v_mark
    FROM autopilot.learning_watermarks AS w
    WHERE w.name = 'agent-knowledge-update'
    FOR UPDATE;

    SELECT w.* INTO v_learning
    FROM autopilot.learning_watermarks AS w
    WHERE w.name = 'pattern-learning';
    IF v_learning.system_identifier IS DISTINCT FROM v_system_identifier
       AND v_learning.system_identifier IS NOT NULL THEN
        RETURN jsonb_build_object(
            'rows_affected', 0,
            'message', 'waiting for pattern-learning: it has not run since this database was restored '
            || 'into another cluster',
            'agents', '[]'::jsonb
        );
    END IF;
    -- the analysis rows folded so far: created_xid below this
    v_learned := coalesce(v_learning.horizon, '0');

    v_full := v_mark.system_identifier IS DISTINCT FROM v_system_identifier;
    IF v_full AND v_mark.system_identifier IS NOT NULL THEN
        -- restored into another cluster: no writer in flight, so every
        -- pending row is visible and consumed by this full recomputation
        LOCK TABLE autopilot.agent_knowledge_pending IN SHARE MODE;
    END IF;
    v_horizon := pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot());

    IF v_full THEN
        SELECT coalesce(array_agg(a.id ORDER BY a.id), '{}') INTO v_agents FROM autopilot.agents AS a;
    ELSE
        IF v_learned > v_mark.horizon THEN
            SELECT coalesce(array_agg(DISTINCT r.pattern_type), '{}')
            INTO v_types
            FROM autopilot.analysis_results AS r
            WHERE r.created_xid >= v_mark.horizon AND r.created_xid < v_learned;
        END IF;

        SELECT coalesce(array_agg(a.id ORDER BY a.id), '{}')
        INTO v_agents
        FROM autopilot.agents AS a
        WHERE NOT EXISTS (SELECT FROM autopilot.agent_knowledge AS k WHERE k.agent_id = a.id)
           OR a.id IN (
               SELECT p.agent_id
               FROM autopilot.agent_knowledge_pending AS p
               WHERE p.changed_xid < v_horizon
               UNION
               SELECT r.agent_id
               FROM autopilot.analysis_results AS r
               WHERE r.created_xid >= v_mark.horizon AND r.created_xid < v_learned
                 AND r.agent_id IS NOT NULL
               UNION
               SELECT k.agent_id
               FROM autopilot.agent_knowledge AS k
               WHERE (k.summary -> 'pattern_types') ?| v_types
                  OR (k.summary -> 'top_patterns_limit') IS DISTINCT FROM to_jsonb(v_top_patterns)
                  OR (k.summary -> 'patterns_met_limit') IS DISTINCT FROM to_jsonb(v_met_limit)
           );
    END IF;

    WITH agent AS (
        SELECT d.agent_id FROM unnest(v_agents) AS d (agent_id)
    ),

    finished AS MATERIALIZED (
        SELECT t.agent_id, t.status, t.required_skills
        FROM autopilot.tasks AS t
        WHERE t.agent_id = ANY(v_agents) AND t.status IN ('succeeded', 'failed')
    ),

    task_totals AS (
        SELECT
            f.agent_id,
            jsonb_build_object(
                'succeeded', count(*) FILTER (WHERE f.status = 'succeeded'),
                'failed', count(*) FILTER (WHERE f.status = 'failed'),
                'success_rate', (count(*) FILTER (WHERE f.status = 'succeeded'))::double precision / count(*)
            ) AS tasks
        FROM finished AS f
        GROUP BY f.agent_id
    ),

    skill_totals AS (
        SELECT
            s.agent_id,
            jsonb_object_agg(
                s.skill,
                jsonb_build_object(
                    'succeeded', s.succeeded,
                    'failed', s.failed,
                    'success_rate', s.succeeded::double precision / (s.succeeded + s.failed)
                )
            ) AS skills
        FROM (
            SELECT
                f.agent_id,
                k.skill,
                count(*) FILTER (WHERE f.status = 'succeeded') AS succeeded,
                count(*) FILTER (WHERE f.status = 'failed') AS failed
            FROM finished AS f
            CROSS JOIN LATERAL unnest(f.required_skills) AS k (skill)
            GROUP BY f.agent_id, k.skill
        ) AS s
        GROUP BY s.agent_id
    ),

    met AS MATERIALIZED (
        SELECT
            r.agent_id,
            r.pattern_type,
            r.pattern_key,
            count(*) AS met,
            count(*) FILTER (WHERE r.outcome = 'success') AS successes,
            count(*) FILTER (WHERE r.outcome = 'failure') AS failures
        FROM autopilot.analysis_results AS r
        WHERE r.agent_id = ANY(v_agents) AND r.created_xid < v_learned
        GROUP BY r.agent_id, r.pattern_type, r.pattern_key
    ),

    met_ranked AS (
        SELECT
            m.*,
            lp.confidence,
            lp.success_rate,
            row_number() OVER (
                PARTITION BY m.agent_id
                ORDER BY lp.confidence DESC NULLS LAST, m.met DESC, m.pattern_type, m.pattern_key
            ) AS rank
        FROM met AS m
        LEFT JOIN autopilot.learned_patterns AS lp
            ON m.pattern_type = lp.pattern_type AND m.pattern_key = lp.pattern_key
    ),

    met_totals AS (
        SELECT
            r.agent_id,
            count(*) AS total,
            array_agg(DISTINCT r.pattern_type ORDER BY r.pattern_type) AS pattern_types,
            jsonb_agg(
                jsonb_build_object(
                    'pattern_type', r.pattern_type,
                    'pattern_key', r.pattern_key,
                    'met', r.met,
                    'successes', r.successes,
                    'failures', r.failures,
                    'confidence', r.confidence,
                    'success_rate', r.success_rate
                )
                ORDER BY r.rank
            ) FILTER (WHERE r.rank <= v_met_limit) AS patterns
        FROM met_ranked AS r
        GROUP BY r.agent_id
    ),

    -- once per pattern type, not once per agent and type
    top_by_type AS MATERIALIZED (
        SELECT
            y.pattern_type,
            coalesce(
                (
                    SELECT
                        jsonb_agg(
                            jsonb_build_object(
                                'pattern_key', t.pattern_key,
                                'confidence', t.confidence,
                                'success_rate', t.success_rate,
                                'occurrences', t.occurrences
                            )
                            ORDER BY t.confidence DESC, t.occurrences DESC, t.pattern_key
                        )
                    FROM (
                        SELECT lp.pattern_key, lp.confidence, lp.success_rate, lp.occurrences
                        FROM autopilot.learned_patterns AS lp
                        WHERE lp.pattern_type = y.pattern_type AND lp.confidence > 0
                        ORDER BY lp.confidence DESC, lp.occurrences DESC, lp.pattern_key
                        LIMIT v_top_patterns
                    ) AS t
                ),
                '[]'
            ) AS patterns
        FROM (SELECT DISTINCT m.pattern_type FROM met AS m) AS y
    ),

    top_totals AS (
        SELECT
            m.agent_id,
            jsonb_object_agg(tb.pattern_type, tb.patterns) AS top_patterns
        FROM (SELECT DISTINCT m.agent_id, m.pattern_type FROM met AS m) AS m
        INNER JOIN top_by_type AS tb ON m.pattern_type = tb.pattern_type
        GROUP BY m.agent_id
    ),

    computed AS (
        INSERT INTO autopilot.agent_knowledge AS k (agent_id, summary, computed_at)
        SELECT
            a.agent_id,
            jsonb_build_object(
                'tasks', coalesce(tt.tasks, '{"succeeded": 0, "failed": 0, "success_rate": null}'),
                'skills', coalesce(st.skills, '{}'),
                'pattern_types', to_jsonb(coalesce(mt.pattern_types, '{}')),
                'patterns_met', coalesce(mt.patterns, '[]'),
                'patterns_met_total', coalesce(mt.total, 0),
                'top_patterns', coalesce(tp.top_patterns, '{}'),
                'top_patterns_limit', v_top_patterns,
                'patterns_met_limit', v_met_limit
            ),
            now()
        FROM agent AS a
        LEFT JOIN task_totals AS tt ON a.agent_id = tt.agent_id
        LEFT JOIN skill_totals AS st ON a.agent_id = st.agent_id
        LEFT JOIN met_totals AS mt ON a.agent_id = mt.agent_id
        LEFT JOIN top_totals AS tp ON a.agent_id = tp.agent_id
        ON CONFLICT (agent_id) DO UPDATE
        SET summary = excluded.summary,
            computed_at = excluded.computed_at
        RETURNING 1
    )

    SELECT count(*) INTO v_computed FROM computed;

    IF v_full AND v_mark.system_identifier IS NOT NULL THEN
        DELETE FROM autopilot.agent_knowledge_pending;
    ELSE
        DELETE FROM autopilot.agent_knowledge_pending AS p WHERE p.changed_xid < v_horizon;
    END IF;
    GET DIAGNOSTICS v_consumed = ROW_COUNT;

    UPDATE autopilot.learning_watermarks AS w
    SET horizon = v_learned,
        system_identifier = v_system_identifier,
        rows_total = w.rows_total + v_computed,
        runs = w.runs + 1,
        updated_at = now()
    WHERE w.name = 'agent-knowledge-update';

    RETURN jsonb_build_object(
        'rows_affected', v_computed,
        'message', format(
            '%s agent %s recomputed%s', v_computed, CASE WHEN v_computed = 1 THEN 'summary' ELSE 'summaries' END,
            CASE WHEN v_full THEN ' (all agents)' ELSE '' END
        ),
        'agents', to_jsonb(v_agents[1:100]),
        'pattern_types_changed', to_jsonb(v_types),
        'pending_consumed', v_consumed,
        'full', v_full
    );
END;
$$;

COMMENT ON FUNCTION autopilot.update_agent_knowledge() IS
'agent-knowledge-update: recomputes autopilot.agent_knowledge.summary (task outcomes overall and per skill, success rate, the patterns the agent met with their learned confidence, the most confident learned patterns of its pattern types) for the agents whose inputs changed since the last run: new agents, agents whose finished tasks changed (autopilot.agent_knowledge_pending), agents with newly folded analysis rows or working with a pattern type that changed. Returns the job summary (rows_affected = summaries recomputed).';

REVOKE ALL ON FUNCTION autopilot.learn_patterns_from_analysis() FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot._mark_agent_knowledge_pending() FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.update_agent_knowledge() FROM PUBLIC;

-- settings (sql/settings/defaults.sql)
INSERT INTO autopilot.settings (name, value_type, default_value, min_value, max_value, description)
VALUES
(
    'agent_knowledge.top_patterns', 'integer', '10', '1', '1000',
    'agent-knowledge-update lists, for each pattern type an agent works with, this many of the most confident '
    || 'learned patterns.'
),
(
    'agent_knowledge.patterns_met_limit', 'integer', '200', '1', '100000',
    'agent-knowledge-update lists at most this many of the patterns an agent has met (the most confident); '
    || 'patterns_met_total counts them all.'
)
ON CONFLICT (name) DO UPDATE
    SET
        value_type = excluded.value_type, default_value = excluded.default_value,
        min_value = excluded.min_value, max_value = excluded.max_value, description = excluded.description;

-- vacuum-analyze lists every table (composable with other fragments' replace() calls)
UPDATE autopilot.job_catalog
SET
    target = replace(
        replace(
            target, 'autopilot.agent_knowledge, ', 'autopilot.agent_knowledge, autopilot.agent_knowledge_pending, '
        ),
        'autopilot.learned_patterns, ', 'autopilot.learned_patterns, autopilot.learning_watermarks, '
    )
WHERE name = 'vacuum-analyze' AND target NOT LIKE '%autopilot.learning_watermarks%';
-- ===== end of the learning fragment =====

-- ===================================== task assignment

-- agents.active_tasks: how many tasks each agent holds (assigned or running), counted once here
-- and kept by the triggers from then on. Added last, as in sql/schema/tables/agents.sql.
ALTER TABLE autopilot.agents ADD COLUMN active_tasks integer NOT NULL DEFAULT 0;

UPDATE autopilot.agents AS a
SET active_tasks = h.held
FROM (
    SELECT
        t.agent_id,
        count(*)::integer AS held
    FROM autopilot.tasks AS t
    WHERE t.status IN ('assigned', 'running')
    GROUP BY t.agent_id
) AS h
WHERE a.id = h.agent_id;

-- 0.1.0 did not enforce capacity: an agent that already holds more than it may stops the
-- upgrade with a clear message rather than with the bare check_violation of the constraint
-- (nothing is changed; the data is the user's to fix).
DO $$
DECLARE
    v_over text;
BEGIN
    SELECT string_agg(format('%s (id %s): %s tasks, capacity %s', a.name, a.id, a.active_tasks, a.capacity), '; '
                      ORDER BY a.id)
    INTO v_over
    FROM autopilot.agents AS a
    WHERE a.active_tasks > a.capacity;
    IF v_over IS NOT NULL THEN
        RAISE EXCEPTION 'autopilot 0.2.0 enforces agents.capacity, and some agents hold more assigned or running tasks than that'
            USING ERRCODE = 'check_violation',
                  DETAIL = v_over,
                  HINT = 'Raise those agents'' capacity, or set some of their assigned tasks back to pending '
                      || '(status ''pending'', agent_id NULL), then upgrade again.';
    END IF;
END;
$$;

ALTER TABLE autopilot.agents
ADD CONSTRAINT agents_active_tasks_check CHECK (active_tasks BETWEEN 0 AND capacity);

COMMENT ON COLUMN autopilot.agents.skills IS
'What the agent can do: it may hold a task only when it has every skill the task requires (tasks.required_skills <@ skills).';
COMMENT ON COLUMN autopilot.agents.active_tasks IS
'How many tasks the agent holds (status assigned or running), kept exact by the statement triggers on autopilot.tasks (autopilot._track_agent_load); always at most capacity (agents_active_tasks_check). Read it, never set it: a new agent starts at 0 and a direct change is refused.';

-- performance_metrics.hour is an hour in UTC whatever the session's TimeZone (0.1.0 truncated in
-- the session's zone: the same thing unless that zone is off UTC by a fraction of an hour).
DO $$
BEGIN
    IF EXISTS (
        SELECT FROM autopilot.performance_metrics AS m
        WHERE m.hour <> date_trunc('hour', m.hour, 'UTC')
    ) THEN
        RAISE EXCEPTION 'autopilot 0.2.0 keeps performance_metrics by UTC hour, and some rows are not on one'
            USING ERRCODE = 'check_violation',
                  HINT = 'Delete them (metrics-refresh recomputes every hour from the tasks and jobs after the upgrade), '
                      || 'then upgrade again.';
    END IF;
END;
$$;
ALTER TABLE autopilot.performance_metrics
DROP CONSTRAINT performance_metrics_hour_check,
ADD CONSTRAINT performance_metrics_hour_check CHECK (hour = date_trunc('hour', hour, 'UTC'));
COMMENT ON COLUMN autopilot.performance_metrics.subject_kind IS
'agent (from autopilot.tasks) or worker (a runner worker: from autopilot.jobs and the runner''s failed runs in autopilot.job_runs).';
COMMENT ON COLUMN autopilot.performance_metrics.subject IS
'The agent''s id (as text), or the worker''s name (autopilot.jobs.worker; a runner run''s catalog job maps to its worker).';
COMMENT ON COLUMN autopilot.performance_metrics.hour IS 'Start of the hour (UTC), truncated in UTC whatever the session''s TimeZone.';
COMMENT ON COLUMN autopilot.performance_metrics.succeeded IS
'Agent: tasks that succeeded in the hour (by finished_at). Worker: jobs completed in the hour (by completed_at).';
COMMENT ON COLUMN autopilot.performance_metrics.failed IS
'Agent: tasks that failed in the hour. Worker: the runner''s failed runs (job_runs, side runner, status failed) that finished in the hour.';
COMMENT ON COLUMN autopilot.performance_metrics.discarded IS 'Worker: jobs discarded in the hour (by discarded_at). Always 0 for an agent.';
COMMENT ON COLUMN autopilot.performance_metrics.success_rate IS 'succeeded / (succeeded + failed); NULL when both are 0.';
COMMENT ON COLUMN autopilot.performance_metrics.mean_duration IS
'Mean duration of what finished in the hour: a task''s finished_at - started_at (tasks never started are left out); a completed job''s completed_at - attempted_at, a failed run''s finished_at - started_at.';
COMMENT ON COLUMN autopilot.performance_metrics.p50_duration IS 'Median of the same durations (percentile_cont(0.5)).';
COMMENT ON COLUMN autopilot.performance_metrics.p95_duration IS '95th percentile of the same durations (percentile_cont(0.95)).';
COMMENT ON COLUMN autopilot.performance_metrics.computed_at IS 'When metrics-refresh last recomputed the row.';

-- the stale hours (as sql/schema/tables/performance_metrics_pending.sql)
CREATE TABLE autopilot.performance_metrics_pending (
    changed_xid xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    subject_kind text NOT NULL,
    hour timestamptz NOT NULL,
    CONSTRAINT performance_metrics_pending_pkey PRIMARY KEY (changed_xid, subject_kind, hour),
    CONSTRAINT performance_metrics_pending_subject_kind_check CHECK (subject_kind IN ('agent', 'worker'))
);

COMMENT ON TABLE autopilot.performance_metrics_pending IS
'Hours whose performance metrics must be recomputed: one row per writing transaction, kind of subject and hour, added by the statement triggers on autopilot.tasks, jobs and job_runs whenever a finished task, job or failed runner run appears, changes or moves hour; metrics-refresh deletes the rows it can see and recomputes their hours from the base tables.';
COMMENT ON COLUMN autopilot.performance_metrics_pending.changed_xid IS
'The writing transaction (pg_current_xact_id()): part of the key, so that concurrent writers never wait on each other''s rows.';
COMMENT ON COLUMN autopilot.performance_metrics_pending.subject_kind IS 'agent (from autopilot.tasks) or worker (from autopilot.jobs and job_runs).';
COMMENT ON COLUMN autopilot.performance_metrics_pending.hour IS 'Start of the stale hour (UTC).';
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'autopilot') THEN
        PERFORM pg_catalog.pg_extension_config_dump('autopilot.performance_metrics_pending', '');
    END IF;
END;
$$;

-- metrics-refresh reads finished jobs and failed runner runs by the hour they finished
CREATE INDEX jobs_outcome_at_idx ON autopilot.jobs ((coalesce(completed_at, discarded_at)))
WHERE state IN ('completed', 'discarded');
CREATE INDEX job_runs_runner_failed_idx ON autopilot.job_runs (finished_at)
WHERE side = 'runner' AND status = 'failed';


-- sql/functions/agents/_track_agent_load.sql
CREATE FUNCTION autopilot._track_agent_load()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- @plpgsql_check_options: oldtable = old_rows, newtable = new_rows
--
-- Statement triggers on autopilot.tasks (after INSERT, UPDATE, DELETE, TRUNCATE):
-- keep autopilot.agents.active_tasks equal to the number of the agent's tasks in
-- status assigned or running, and refuse a statement that would give an agent a
-- task it lacks a skill for or more tasks than its capacity. Whoever writes the
-- tasks (assign_pending_tasks or the application), the schema holds both
-- invariants.
--
-- Set-based: one pass over the transition tables per statement, so a bulk
-- assignment of 100,000 tasks costs one UPDATE per agent, not per task.
--
-- Concurrency: the agents concerned are locked in id order (FOR NO KEY UPDATE)
-- before anything is read from them, so two statements changing the same agent
-- queue up instead of both reading the old count; the counter itself moves by
-- a delta computed from the changed rows (never recounted from a snapshot), so
-- it is exact in any isolation level. The skills are compared after the lock:
-- a concurrent change of the agent's skills (autopilot._guard_agent, under the
-- same row lock) is either seen or waits.
DECLARE
    v_agents bigint[];
    v_deltas integer[];
    -- the (agent, required skills) pairs of the tasks that became held, changed
    -- agent or changed skills: the only ones whose skills need checking
    v_pair_agents bigint[];
    v_pair_skills text[];
    v_old_held bigint := 0;
    v_agent bigint;
    v_skills text;
    v_task bigint;
    v_held integer;
    v_capacity integer;
    v_delta integer;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE autopilot.agents SET active_tasks = 0 WHERE active_tasks <> 0;
        RETURN NULL;
    END IF;

    -- Only aggregates and set operations over the transition tables: their
    -- plans are cached with the size of the first statement a session ran, and
    -- these stay linear whatever that was.
    IF TG_OP = 'INSERT' THEN
        SELECT
            array_agg(d.agent_id ORDER BY d.agent_id),
            array_agg(d.delta ORDER BY d.agent_id)
        INTO v_agents, v_deltas
        FROM (
            SELECT n.agent_id, count(*)::integer AS delta
            FROM new_rows AS n
            WHERE n.status IN ('assigned', 'running')
            GROUP BY n.agent_id
        ) AS d;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT
            array_agg(d.agent_id ORDER BY d.agent_id),
            array_agg(d.delta ORDER BY d.agent_id)
        INTO v_agents, v_deltas
        FROM (
            SELECT o.agent_id, -count(*)::integer AS delta
            FROM old_rows AS o
            WHERE o.status IN ('assigned', 'running')
            GROUP BY o.agent_id
        ) AS d;
    ELSE
        SELECT
            array_agg(d.agent_id ORDER BY d.agent_id) FILTER (WHERE d.delta <> 0),
            array_agg(d.delta ORDER BY d.agent_id) FILTER (WHERE d.delta <> 0),
            coalesce(sum(d.old_held), 0)
        INTO v_agents, v_deltas, v_old_held
        FROM (
            SELECT
                c.agent_id,
                sum(c.delta)::integer AS delta,
                count(*) FILTER (WHERE c.delta < 0) AS old_held
            FROM (
                SELECT n.agent_id, 1 AS delta
                FROM new_rows AS n
                WHERE n.status IN ('assigned', 'running')
                UNION ALL
                SELECT o.agent_id, -1 AS delta
                FROM old_rows AS o
                WHERE o.status IN ('assigned', 'running')
            ) AS c
            GROUP BY c.agent_id
        ) AS d;
    END IF;

    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND v_old_held = 0) THEN
        -- every held task in the statement is newly held
        SELECT array_agg(c.agent_id), array_agg(c.required_skills::text)
        INTO v_pair_agents, v_pair_skills
        FROM (
            SELECT DISTINCT n.agent_id, n.required_skills
            FROM new_rows AS n
            WHERE n.status IN ('assigned', 'running')
        ) AS c;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT array_agg(c.agent_id), array_agg(c.required_skills::text)
        INTO v_pair_agents, v_pair_skills
        FROM (
            SELECT DISTINCT x.agent_id, x.required_skills
            FROM (
                SELECT n.id, n.agent_id, n.required_skills
                FROM new_rows AS n
                WHERE n.status IN ('assigned', 'running')
                EXCEPT
                SELECT o.id, o.agent_id, o.required_skills
                FROM old_rows AS o
                WHERE o.status IN ('assigned', 'running')
            ) AS x
        ) AS c;
    END IF;

    IF v_agents IS NULL AND v_pair_agents IS NULL THEN
        RETURN NULL;
    END IF;

    PERFORM
    FROM autopilot.agents AS a
    WHERE a.id = ANY(v_agents) OR a.id = ANY(v_pair_agents)
    ORDER BY a.id
    FOR NO KEY UPDATE;

    -- capacity (agents_active_tasks_check would refuse it too, with a vaguer message)
    SELECT a.id, a.active_tasks, a.capacity, d.delta
    INTO v_agent, v_held, v_capacity, v_delta
    FROM unnest(v_agents, v_deltas) AS d (agent_id, delta)
    INNER JOIN autopilot.agents AS a ON d.agent_id = a.id
    WHERE a.active_tasks + d.delta > a.capacity;
    IF FOUND THEN
        RAISE EXCEPTION 'agent % would hold % tasks, more than its capacity of %', v_agent, v_held + v_delta, v_capacity
            USING ERRCODE = 'check_violation',
                  DETAIL = format('It holds %s assigned or running tasks; this statement adds %s.', v_held, v_delta),
                  HINT = 'Assign tasks only to agents with free capacity (autopilot.assign_pending_tasks() does), '
                      || 'or raise the agent''s capacity first.';
    END IF;

    UPDATE autopilot.agents AS a
    SET active_tasks = a.active_tasks + d.delta
    FROM unnest(v_agents, v_deltas) AS d (agent_id, delta)
    WHERE a.id = d.agent_id;

    -- skills, read under the lock
    SELECT c.agent_id, c.required_skills
    INTO v_agent, v_skills
    FROM unnest(v_pair_agents, v_pair_skills) AS c (agent_id, required_skills)
    INNER JOIN autopilot.agents AS a ON c.agent_id = a.id
    WHERE NOT c.required_skills::text[] <@ a.skills;
    IF FOUND THEN
        SELECT min(n.id)
        INTO v_task
        FROM new_rows AS n
        WHERE n.agent_id = v_agent AND n.required_skills = v_skills::text[] AND n.status IN ('assigned', 'running');
        RAISE EXCEPTION 'task % requires a skill agent % does not have', v_task, v_agent
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Required skills %s; an assigned or running task''s required skills must all be among its agent''s.', v_skills),
                  HINT = 'Give the task to an agent with every required skill (autopilot.assign_pending_tasks() does).';
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION autopilot._track_agent_load() IS
'Private: statement trigger on autopilot.tasks; keeps agents.active_tasks equal to the agent''s assigned and running tasks and refuses a statement that would put an agent over its capacity or give it a task it lacks a skill for (check_violation).';

CREATE TRIGGER tasks_agent_load_insert_trg
AFTER INSERT ON autopilot.tasks
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._track_agent_load();

CREATE TRIGGER tasks_agent_load_update_trg
AFTER UPDATE ON autopilot.tasks
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._track_agent_load();

CREATE TRIGGER tasks_agent_load_delete_trg
AFTER DELETE ON autopilot.tasks
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._track_agent_load();

CREATE TRIGGER tasks_agent_load_truncate_trg
AFTER TRUNCATE ON autopilot.tasks
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._track_agent_load();

COMMENT ON TRIGGER tasks_agent_load_insert_trg ON autopilot.tasks IS
'Inserted assigned/running tasks count towards their agent''s active_tasks (capacity and skills checked).';
COMMENT ON TRIGGER tasks_agent_load_update_trg ON autopilot.tasks IS
'Tasks entering or leaving assigned/running, or changing agent: active_tasks follows (capacity and skills checked).';
COMMENT ON TRIGGER tasks_agent_load_delete_trg ON autopilot.tasks IS
'Deleted assigned/running tasks no longer count towards their agent''s active_tasks.';
COMMENT ON TRIGGER tasks_agent_load_truncate_trg ON autopilot.tasks IS
'After TRUNCATE of the tasks no agent holds any: every active_tasks goes back to 0.';

-- sql/functions/agents/_guard_agent.sql
CREATE FUNCTION autopilot._guard_agent()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Row trigger on autopilot.agents (before INSERT, and before UPDATE of
-- active_tasks, capacity or skills): the agent's side of the invariants that
-- autopilot._track_agent_load keeps on the tasks' side.
--
-- * active_tasks belongs to the triggers on autopilot.tasks: a new agent holds
--   no task yet (0, whatever the INSERT says: a restore copies the agents before
--   their tasks, whose trigger counts them again), and a direct UPDATE of it is
--   refused (pg_trigger_depth() = 1: not from within a trigger).
-- * capacity may not drop below the tasks the agent holds;
-- * a skill may not be taken away while a held task requires it. The row is
--   locked while this runs, and every statement that gives the agent a task
--   takes the same lock first, so the check cannot miss a concurrent assignment.
DECLARE
    v_task bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.active_tasks := 0;
        RETURN NEW;
    END IF;

    IF NEW.active_tasks IS DISTINCT FROM OLD.active_tasks AND pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'agents.active_tasks is maintained by autopilot and cannot be set'
            USING ERRCODE = 'generated_always',
                  DETAIL = 'It counts the agent''s tasks in status assigned or running.',
                  HINT = 'Change the tasks instead; their triggers keep the count.';
    END IF;

    IF NEW.capacity < NEW.active_tasks THEN
        RAISE EXCEPTION 'agent % holds % tasks: its capacity cannot drop to %', NEW.id, NEW.active_tasks, NEW.capacity
            USING ERRCODE = 'check_violation',
                  HINT = 'Let tasks finish, or take them back (status pending, agent_id NULL) first; '
                      || 'status ''paused'' stops new assignments at once.';
    END IF;

    IF NEW.skills IS DISTINCT FROM OLD.skills AND NEW.active_tasks > 0 THEN
        SELECT t.id
        INTO v_task
        FROM autopilot.tasks AS t
        WHERE t.agent_id = NEW.id
          AND t.status IN ('assigned', 'running')
          AND NOT t.required_skills <@ NEW.skills
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'agent % holds task %, which requires a skill the agent would no longer have', NEW.id, v_task
                USING ERRCODE = 'check_violation',
                      HINT = 'Let the task finish, or take it back (status pending, agent_id NULL) first.';
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION autopilot._guard_agent() IS
'Private: row trigger on autopilot.agents; a new agent holds no task (active_tasks 0), active_tasks cannot be set directly, capacity cannot drop below the held tasks, and a skill a held task requires cannot be removed (check_violation).';

CREATE TRIGGER agents_guard_insert_trg
BEFORE INSERT ON autopilot.agents
FOR EACH ROW EXECUTE FUNCTION autopilot._guard_agent();

CREATE TRIGGER agents_guard_update_trg
BEFORE UPDATE OF active_tasks, capacity, skills ON autopilot.agents
FOR EACH ROW EXECUTE FUNCTION autopilot._guard_agent();

COMMENT ON TRIGGER agents_guard_insert_trg ON autopilot.agents IS
'A new agent holds no task: active_tasks starts at 0 (the triggers on autopilot.tasks count its tasks).';
COMMENT ON TRIGGER agents_guard_update_trg ON autopilot.agents IS
'active_tasks is not set directly; capacity stays at or above it; skills held tasks require stay.';

-- sql/functions/agents/assign_pending_tasks.sql
CREATE FUNCTION autopilot.assign_pending_tasks()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- task-assignment. Semantics (README, "Task assignment"):
--
-- 1. Tasks assigned to an agent not seen (last_seen_at NULL, or older than
--    agents.silence_timeout) go back to pending (agent_id, assigned_at cleared).
--    Running tasks are left alone: they may have side effects.
-- 2. Pending tasks go, highest priority first, then oldest (created_at, then
--    id), each to the least-loaded agent that can take it: status active, seen
--    within the timeout, every required skill (required_skills <@ skills),
--    active_tasks < capacity. Least loaded = lowest active_tasks / capacity
--    (double precision), then lowest id -- counting the tasks this run gave it.
--    That is the sequential greedy, computed exactly: it is the unique stable
--    matching of tasks (ranked by order) to agent slots (ranked by the load
--    ratio at which the agent would take it), so it is built from the slot
--    side -- free slots in ratio order, each taking the first remaining task
--    any of its agent's skill sets offers -- over arrays in memory, with the
--    reading and the writing done set-based (one statement each).
-- 3. Every agent that got tasks gets one NOTIFY autopilot_task_assigned,
--    payload {"agent_id": n, "task_ids": [...]} (at most 256 ids each, a
--    payload stays far below the 8000-byte limit); delivered at commit.
--
-- Locking: the job's advisory lock makes runs exclusive (a second caller waits
-- and then sees the first one's assignments). The agents it plans for are
-- locked (FOR NO KEY UPDATE SKIP LOCKED: an agent another transaction is
-- changing waits for the next run), so their load cannot move under the plan;
-- the tasks it writes are locked the same way (a task the application is
-- changing is left for the next run), and the UPDATE re-checks status and
-- skills on the row it writes. Capacity and skills are also the schema's
-- (agents_active_tasks_check, autopilot._track_agent_load), whoever writes.
DECLARE
    c_none CONSTANT bigint := 9223372036854775807;
    v_timeout interval := autopilot.get_setting('agents.silence_timeout')::interval;
    v_reclaimed bigint;
    -- the agents planned for, in id order: index i everywhere below
    v_agent_ids bigint[];
    v_load integer[];
    v_capacity integer[];
    v_dead boolean[];
    v_busy_agents bigint;
    -- candidates: the first tasks of each skill set (as many as its agents have
    -- free slots), grouped by skill set (g = 1..) and in order within a group
    v_read_ids bigint[];
    v_read_ords bigint[];
    v_read_pos integer[];
    v_task_ids bigint[];
    v_task_ord bigint[];
    v_head integer[];
    v_head_ord bigint[];
    v_group_end integer[];
    -- the skill sets agent i can serve: v_capable[v_capable_first[i] .. v_capable_last[i]]
    v_capable integer[];
    v_capable_first integer[];
    v_capable_last integer[];
    v_pending bigint;
    v_unassignable bigint;
    v_left integer;
    -- slots: agent indexes, in the order of the load ratio at which they take a task
    v_slots integer[];
    v_per_agent integer;
    v_cut_key double precision;
    v_cut_agent integer;
    v_batches integer := 0;
    -- the plan
    v_plan_tasks bigint[] := '{}'::bigint[];
    v_plan_agents bigint[] := '{}'::bigint[];
    v_planned integer := 0;
    v_i integer;
    v_h integer;
    v_best integer;
    v_best_ord bigint;
    -- the outcome
    v_assigned bigint;
    v_agents_used bigint;
    v_notifications bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(autopilot._job_lock_key('task-assignment'));

    -- 1. take tasks back from silent agents
    UPDATE autopilot.tasks AS t
    SET status = 'pending', agent_id = NULL, assigned_at = NULL
    FROM autopilot.agents AS a
    WHERE t.agent_id = a.id
      AND t.status = 'assigned'
      AND (a.last_seen_at IS NULL OR a.last_seen_at < now() - v_timeout);
    GET DIAGNOSTICS v_reclaimed = ROW_COUNT;

    -- 2. the agents that can take tasks now, locked
    SELECT
        coalesce(array_agg(e.id ORDER BY e.id), '{}'),
        coalesce(array_agg(e.active_tasks ORDER BY e.id), '{}'),
        coalesce(array_agg(e.capacity ORDER BY e.id), '{}'),
        coalesce(array_agg(false ORDER BY e.id), '{}')
    INTO v_agent_ids, v_load, v_capacity, v_dead
    FROM (
        SELECT a.id, a.active_tasks, a.capacity
        FROM autopilot.agents AS a
        WHERE a.status = 'active'
          AND a.active_tasks < a.capacity
          AND a.last_seen_at >= now() - v_timeout
        ORDER BY a.id
        FOR NO KEY UPDATE SKIP LOCKED
    ) AS e;

    SELECT count(*) - cardinality(v_agent_ids)
    INTO v_busy_agents
    FROM autopilot.agents AS a
    WHERE a.status = 'active'
      AND a.active_tasks < a.capacity
      AND a.last_seen_at >= now() - v_timeout;

    -- 3. the pending tasks, by skill set (a set: {b,a} and {a,b,a} are {a,b}).
    -- A skill set's candidates are its first tasks in order, as many as the free
    -- slots of the agents that have every skill in it (it can never use more);
    -- they get positions first_pos .. first_pos + take - 1 of the arrays below.
    WITH pending AS MATERIALIZED (
        SELECT
            t.id,
            t.required_skills,
            row_number() OVER (ORDER BY t.priority DESC, t.created_at ASC, t.id ASC) AS ord
        FROM autopilot.tasks AS t
        WHERE t.status = 'pending'
    ),

    eligible AS MATERIALIZED (
        SELECT
            e.i::integer AS i,
            a.skills,
            a.capacity - a.active_tasks AS free
        FROM unnest(v_agent_ids) WITH ORDINALITY AS e (id, i)
        INNER JOIN autopilot.agents AS a ON e.id = a.id
    ),

    written AS MATERIALIZED (
        SELECT
            p.required_skills AS written,
            count(*) AS tasks,
            array(SELECT DISTINCT r.skill FROM unnest(p.required_skills) AS r (skill) ORDER BY r.skill) AS skills
        FROM pending AS p
        GROUP BY p.required_skills
    ),

    skill_sets AS MATERIALIZED (
        SELECT
            w.skills,
            sum(w.tasks)::bigint AS tasks,
            (
                SELECT coalesce(sum(e.free), 0)
                FROM eligible AS e
                WHERE w.skills <@ e.skills
            ) AS free,
            EXISTS (
                SELECT
                FROM autopilot.agents AS a
                WHERE a.status = 'active' AND a.capacity > 0 AND w.skills <@ a.skills
            ) AS assignable
        FROM written AS w
        GROUP BY w.skills
    ),

    groups AS MATERIALIZED (
        SELECT
            s.skills,
            row_number() OVER (ORDER BY s.skills)::integer AS g,
            least(s.tasks, s.free)::integer AS take,
            (sum(least(s.tasks, s.free)) OVER (ORDER BY s.skills) - least(s.tasks, s.free) + 1)::integer AS first_pos
        FROM skill_sets AS s
        WHERE s.free > 0
    ),

    candidates AS MATERIALIZED (
        SELECT
            r.id,
            r.ord,
            (r.first_pos + r.rank - 1)::integer AS pos
        FROM (
            SELECT
                p.id,
                p.ord,
                g.take,
                g.first_pos,
                row_number() OVER (PARTITION BY g.g ORDER BY p.ord) AS rank
            FROM pending AS p
            INNER JOIN written AS w ON p.required_skills = w.written
            INNER JOIN groups AS g ON w.skills = g.skills
        ) AS r
        WHERE r.rank <= r.take
    ),

    capable AS MATERIALIZED (
        SELECT
            e.i,
            g.g,
            row_number() OVER (ORDER BY e.i, g.g)::integer AS pos
        FROM eligible AS e
        INNER JOIN groups AS g ON g.skills <@ e.skills
    )

    SELECT
        (SELECT count(*) FROM pending),
        (SELECT coalesce(sum(s.tasks), 0)::bigint FROM skill_sets AS s WHERE NOT s.assignable),
        (SELECT coalesce(array_agg(g.first_pos ORDER BY g.g), '{}') FROM groups AS g),
        (SELECT coalesce(array_agg(g.first_pos + g.take - 1 ORDER BY g.g), '{}') FROM groups AS g),
        (SELECT coalesce(array_agg(c.g ORDER BY c.pos), '{}') FROM capable AS c),
        (
            SELECT coalesce(array_agg(coalesce(b.first_pos, 1) ORDER BY e.i), '{}')
            FROM eligible AS e
            LEFT JOIN (SELECT c.i, min(c.pos) AS first_pos FROM capable AS c GROUP BY c.i) AS b ON e.i = b.i
        ),
        (
            SELECT coalesce(array_agg(coalesce(b.last_pos, 0) ORDER BY e.i), '{}')
            FROM eligible AS e
            LEFT JOIN (SELECT c.i, max(c.pos) AS last_pos FROM capable AS c GROUP BY c.i) AS b ON e.i = b.i
        ),
        -- one aggregate pass: the three arrays are aligned, in no particular order
        coalesce(array_agg(c.id), '{}'),
        coalesce(array_agg(c.ord), '{}'),
        coalesce(array_agg(c.pos), '{}')
    INTO
        v_pending, v_unassignable, v_head, v_group_end, v_capable, v_capable_first, v_capable_last,
        v_read_ids, v_read_ords, v_read_pos
    FROM candidates AS c;

    v_left := cardinality(v_read_ids);
    v_task_ids := array_fill(0::bigint, ARRAY[v_left]);
    v_task_ord := array_fill(0::bigint, ARRAY[v_left]);
    FOR v_p IN 1 .. v_left LOOP
        v_task_ids[v_read_pos[v_p]] := v_read_ids[v_p];
        v_task_ord[v_read_pos[v_p]] := v_read_ords[v_p];
    END LOOP;
    v_head_ord := array_fill(0::bigint, ARRAY[cardinality(v_head)]);
    FOR v_g IN 1 .. cardinality(v_head) LOOP
        v_head_ord[v_g] := v_task_ord[v_head[v_g]];
    END LOOP;

    -- 4. the plan: free slots in the order of the load ratio at which their agent
    -- takes a task (agent i's k-th free slot: (active_tasks + k) / capacity, then
    -- i), each taking the first remaining task of the skill sets agent i serves.
    -- An agent whose slot finds nothing is done: tasks only ever get taken.
    -- Slots come in batches of at most ~2 per candidate (an agent's huge capacity
    -- is never spelled out): a batch holds every slot ordered before the first
    -- one it leaves out, so the order across batches is exact.
    WHILE v_left > 0 LOOP
        v_per_agent := greatest(1, ceil(2.0 * v_left / greatest(cardinality(v_agent_ids), 1)))::integer;

        SELECT (a.load + v_per_agent)::double precision / a.capacity, a.i::integer
        INTO v_cut_key, v_cut_agent
        FROM unnest(v_load, v_capacity, v_dead) WITH ORDINALITY AS a (load, capacity, dead, i)
        WHERE NOT a.dead AND a.capacity - a.load > v_per_agent
        ORDER BY 1, 2
        LIMIT 1;

        SELECT array_agg(s.i ORDER BY s.slot_key, s.i)
        INTO v_slots
        FROM (
            SELECT
                a.i::integer AS i,
                (a.load + k.k)::double precision / a.capacity AS slot_key
            FROM unnest(v_load, v_capacity, v_dead) WITH ORDINALITY AS a (load, capacity, dead, i)
            CROSS JOIN LATERAL generate_series(0, least(a.capacity - a.load, v_per_agent) - 1) AS k (k)
            WHERE NOT a.dead AND a.load < a.capacity
        ) AS s
        WHERE v_cut_agent IS NULL OR (s.slot_key, s.i) < (v_cut_key, v_cut_agent);

        EXIT WHEN v_slots IS NULL;
        v_batches := v_batches + 1;

        FOREACH v_i IN ARRAY v_slots LOOP
            CONTINUE WHEN v_dead[v_i];
            v_best := 0;
            v_best_ord := c_none;
            FOR v_p IN v_capable_first[v_i] .. v_capable_last[v_i] LOOP
                IF v_head_ord[v_capable[v_p]] < v_best_ord THEN
                    v_best := v_capable[v_p];
                    v_best_ord := v_head_ord[v_best];
                END IF;
            END LOOP;
            IF v_best = 0 THEN
                v_dead[v_i] := true;
                CONTINUE;
            END IF;
            v_h := v_head[v_best];
            v_planned := v_planned + 1;
            v_plan_tasks[v_planned] := v_task_ids[v_h];
            v_plan_agents[v_planned] := v_agent_ids[v_i];
            IF v_h = v_group_end[v_best] THEN
                v_head_ord[v_best] := c_none;
            ELSE
                v_head[v_best] := v_h + 1;
                v_head_ord[v_best] := v_task_ord[v_h + 1];
            END IF;
            v_load[v_i] := v_load[v_i] + 1;
            v_left := v_left - 1;
            EXIT WHEN v_left = 0;
        END LOOP;

        EXIT WHEN v_cut_agent IS NULL;
    END LOOP;

    -- 5. write the plan, announce it
    WITH plan AS (
        SELECT p.task_id, p.agent_id
        FROM unnest(v_plan_tasks, v_plan_agents) AS p (task_id, agent_id)
    ),

    claimed AS MATERIALIZED (
        SELECT
            t.id,
            p.agent_id
        FROM autopilot.tasks AS t
        INNER JOIN plan AS p ON t.id = p.task_id
        WHERE t.status = 'pending'
        FOR NO KEY UPDATE OF t SKIP LOCKED
    ),

    assigned AS (
        UPDATE autopilot.tasks AS t
        SET status = 'assigned', agent_id = c.agent_id, assigned_at = now()
        FROM claimed AS c
        WHERE t.id = c.id
          AND t.status = 'pending'
          -- the agent is locked: its skills are as planned; the task's may have changed since
          AND t.required_skills <@ (SELECT a.skills FROM autopilot.agents AS a WHERE a.id = c.agent_id)
        RETURNING t.id, t.agent_id
    ),

    notifications AS (
        SELECT
            pg_notify(
                'autopilot_task_assigned',
                json_build_object('agent_id', n.agent_id, 'task_ids', n.task_ids)::text
            )
        FROM (
            SELECT
                x.agent_id,
                array_agg(x.id ORDER BY x.id) AS task_ids
            FROM (
                SELECT
                    s.agent_id,
                    s.id,
                    (row_number() OVER (PARTITION BY s.agent_id ORDER BY s.id) - 1) / 256 AS chunk
                FROM assigned AS s
            ) AS x
            GROUP BY x.agent_id, x.chunk
        ) AS n
    )

    SELECT
        (SELECT count(*) FROM assigned),
        (SELECT count(DISTINCT s.agent_id) FROM assigned AS s),
        (SELECT count(*) FROM notifications)
    INTO v_assigned, v_agents_used, v_notifications;

    RETURN jsonb_build_object(
        'rows_affected', v_assigned,
        'message', format(
            'assigned %s %s to %s %s; %s taken back from silent agents; %s still pending (%s unassignable)',
            v_assigned, CASE WHEN v_assigned = 1 THEN 'task' ELSE 'tasks' END,
            v_agents_used, CASE WHEN v_agents_used = 1 THEN 'agent' ELSE 'agents' END,
            v_reclaimed, v_pending - v_assigned, v_unassignable
        ),
        'assigned', v_assigned,
        'agents', v_agents_used,
        'reclaimed', v_reclaimed,
        'pending', v_pending - v_assigned,
        'unassignable', v_unassignable,
        'waiting', v_pending - v_assigned - v_unassignable,
        'skipped_busy_tasks', v_planned - v_assigned,
        'skipped_busy_agents', v_busy_agents,
        'notifications', v_notifications,
        'slot_batches', v_batches
    );
END;
$$;

COMMENT ON FUNCTION autopilot.assign_pending_tasks() IS
'task-assignment: takes assigned tasks back from agents silent longer than agents.silence_timeout, then gives pending tasks (highest priority, then oldest first) to active, recently seen agents with every required skill and free capacity, each to the least-loaded one (lowest active_tasks/capacity, then id); one NOTIFY autopilot_task_assigned per agent, payload {"agent_id", "task_ids"}. Unassignable tasks (no active agent with capacity has their skills) stay pending and are counted.';

-- sql/functions/agents/_mark_task_metrics_pending.sql
CREATE FUNCTION autopilot._mark_task_metrics_pending()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- @plpgsql_check_options: oldtable = old_rows, newtable = new_rows
--
-- Statement trigger on autopilot.tasks (after INSERT and UPDATE): records in
-- autopilot.performance_metrics_pending, once per transaction, the hours of agents
-- whose metrics a statement changed -- a task with an agent finishing (succeeded or failed)
-- appearing, changing, or leaving (the hours before and after an update both
-- count). Deleting rows marks nothing: the cleanups delete old tasks (never today), and the
-- metrics already computed from them stay. One set-based INSERT per statement;
-- ON CONFLICT DO NOTHING on (transaction, kind, hour) never waits on another
-- transaction.
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO autopilot.performance_metrics_pending (subject_kind, hour)
        SELECT DISTINCT 'agent'::text, date_trunc('hour', n.finished_at, 'UTC')
        FROM new_rows AS n
        WHERE n.status IN ('succeeded', 'failed') AND n.agent_id IS NOT NULL AND n.finished_at IS NOT NULL
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO autopilot.performance_metrics_pending (subject_kind, hour)
        SELECT DISTINCT 'agent'::text, date_trunc('hour', c.finished_at, 'UTC')
        FROM (
            (
                SELECT n.id, n.agent_id, n.status, n.started_at, n.finished_at AS finished_at
                FROM new_rows AS n
                WHERE n.status IN ('succeeded', 'failed') AND n.agent_id IS NOT NULL AND n.finished_at IS NOT NULL
                EXCEPT
                SELECT o.id, o.agent_id, o.status, o.started_at, o.finished_at AS finished_at
                FROM old_rows AS o
                WHERE o.status IN ('succeeded', 'failed') AND o.agent_id IS NOT NULL AND o.finished_at IS NOT NULL
            )
            UNION ALL
            (
                SELECT o.id, o.agent_id, o.status, o.started_at, o.finished_at AS finished_at
                FROM old_rows AS o
                WHERE o.status IN ('succeeded', 'failed') AND o.agent_id IS NOT NULL AND o.finished_at IS NOT NULL
                EXCEPT
                SELECT n.id, n.agent_id, n.status, n.started_at, n.finished_at AS finished_at
                FROM new_rows AS n
                WHERE n.status IN ('succeeded', 'failed') AND n.agent_id IS NOT NULL AND n.finished_at IS NOT NULL
            )
        ) AS c
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION autopilot._mark_task_metrics_pending() IS
'Private: statement trigger on autopilot.tasks; records in autopilot.performance_metrics_pending the hours (UTC) whose agent metrics a statement changed, for metrics-refresh.';

CREATE TRIGGER tasks_metrics_insert_trg
AFTER INSERT ON autopilot.tasks
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_task_metrics_pending();

CREATE TRIGGER tasks_metrics_update_trg
AFTER UPDATE ON autopilot.tasks
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_task_metrics_pending();

COMMENT ON TRIGGER tasks_metrics_insert_trg ON autopilot.tasks IS
'Tasks inserted already finished: their hour''s agent metrics are recomputed by metrics-refresh.';
COMMENT ON TRIGGER tasks_metrics_update_trg ON autopilot.tasks IS
'Tasks that finished, changed while finished (agent, times) or left a finished state: their hours are recomputed by metrics-refresh.';

-- sql/functions/agents/_mark_job_metrics_pending.sql
CREATE FUNCTION autopilot._mark_job_metrics_pending()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- @plpgsql_check_options: oldtable = old_rows, newtable = new_rows
--
-- Statement trigger on autopilot.jobs (after INSERT and UPDATE): records in
-- autopilot.performance_metrics_pending, once per transaction, the hours of runner workers
-- whose metrics a statement changed -- a completed or discarded job
-- appearing, changing, or leaving (the hours before and after an update both
-- count). Deleting rows marks nothing: the cleanups delete old jobs, and the
-- metrics already computed from them stay. One set-based INSERT per statement;
-- ON CONFLICT DO NOTHING on (transaction, kind, hour) never waits on another
-- transaction.
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO autopilot.performance_metrics_pending (subject_kind, hour)
        SELECT DISTINCT 'worker'::text, date_trunc('hour', coalesce(n.completed_at, n.discarded_at), 'UTC')
        FROM new_rows AS n
        WHERE n.state IN ('completed', 'discarded') AND coalesce(n.completed_at, n.discarded_at) IS NOT NULL
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO autopilot.performance_metrics_pending (subject_kind, hour)
        SELECT DISTINCT 'worker'::text, date_trunc('hour', c.finished_at, 'UTC')
        FROM (
            (
                SELECT n.id, n.worker, n.state, n.attempted_at, coalesce(n.completed_at, n.discarded_at) AS finished_at
                FROM new_rows AS n
                WHERE n.state IN ('completed', 'discarded') AND coalesce(n.completed_at, n.discarded_at) IS NOT NULL
                EXCEPT
                SELECT o.id, o.worker, o.state, o.attempted_at, coalesce(o.completed_at, o.discarded_at) AS finished_at
                FROM old_rows AS o
                WHERE o.state IN ('completed', 'discarded') AND coalesce(o.completed_at, o.discarded_at) IS NOT NULL
            )
            UNION ALL
            (
                SELECT o.id, o.worker, o.state, o.attempted_at, coalesce(o.completed_at, o.discarded_at) AS finished_at
                FROM old_rows AS o
                WHERE o.state IN ('completed', 'discarded') AND coalesce(o.completed_at, o.discarded_at) IS NOT NULL
                EXCEPT
                SELECT n.id, n.worker, n.state, n.attempted_at, coalesce(n.completed_at, n.discarded_at) AS finished_at
                FROM new_rows AS n
                WHERE n.state IN ('completed', 'discarded') AND coalesce(n.completed_at, n.discarded_at) IS NOT NULL
            )
        ) AS c
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION autopilot._mark_job_metrics_pending() IS
'Private: statement trigger on autopilot.jobs; records in autopilot.performance_metrics_pending the hours (UTC) whose worker metrics a statement changed, for metrics-refresh.';

CREATE TRIGGER jobs_metrics_insert_trg
AFTER INSERT ON autopilot.jobs
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_job_metrics_pending();

CREATE TRIGGER jobs_metrics_update_trg
AFTER UPDATE ON autopilot.jobs
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_job_metrics_pending();

COMMENT ON TRIGGER jobs_metrics_insert_trg ON autopilot.jobs IS
'Jobs inserted already completed or discarded: their hour''s worker metrics are recomputed by metrics-refresh.';
COMMENT ON TRIGGER jobs_metrics_update_trg ON autopilot.jobs IS
'Jobs that completed or were discarded, or changed since: their hours are recomputed by metrics-refresh.';

-- sql/functions/agents/_mark_run_metrics_pending.sql
CREATE FUNCTION autopilot._mark_run_metrics_pending()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- @plpgsql_check_options: oldtable = old_rows, newtable = new_rows
--
-- Statement trigger on autopilot.job_runs (after INSERT and UPDATE): records in
-- autopilot.performance_metrics_pending, once per transaction, the hours of runner workers
-- whose metrics a statement changed -- a failed run of the runner (side runner, status failed)
-- appearing, changing, or leaving (the hours before and after an update both
-- count). Deleting rows marks nothing: the cleanups delete old runs, and the
-- metrics already computed from them stay. One set-based INSERT per statement;
-- ON CONFLICT DO NOTHING on (transaction, kind, hour) never waits on another
-- transaction.
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO autopilot.performance_metrics_pending (subject_kind, hour)
        SELECT DISTINCT 'worker'::text, date_trunc('hour', n.finished_at, 'UTC')
        FROM new_rows AS n
        WHERE n.side = 'runner' AND n.status = 'failed' AND n.finished_at IS NOT NULL
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO autopilot.performance_metrics_pending (subject_kind, hour)
        SELECT DISTINCT 'worker'::text, date_trunc('hour', c.finished_at, 'UTC')
        FROM (
            (
                SELECT n.id, n.job_name, n.started_at, n.finished_at AS finished_at
                FROM new_rows AS n
                WHERE n.side = 'runner' AND n.status = 'failed' AND n.finished_at IS NOT NULL
                EXCEPT
                SELECT o.id, o.job_name, o.started_at, o.finished_at AS finished_at
                FROM old_rows AS o
                WHERE o.side = 'runner' AND o.status = 'failed' AND o.finished_at IS NOT NULL
            )
            UNION ALL
            (
                SELECT o.id, o.job_name, o.started_at, o.finished_at AS finished_at
                FROM old_rows AS o
                WHERE o.side = 'runner' AND o.status = 'failed' AND o.finished_at IS NOT NULL
                EXCEPT
                SELECT n.id, n.job_name, n.started_at, n.finished_at AS finished_at
                FROM new_rows AS n
                WHERE n.side = 'runner' AND n.status = 'failed' AND n.finished_at IS NOT NULL
            )
        ) AS c
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION autopilot._mark_run_metrics_pending() IS
'Private: statement trigger on autopilot.job_runs; records in autopilot.performance_metrics_pending the hours (UTC) whose worker metrics a statement changed, for metrics-refresh.';

CREATE TRIGGER job_runs_metrics_insert_trg
AFTER INSERT ON autopilot.job_runs
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_run_metrics_pending();

CREATE TRIGGER job_runs_metrics_update_trg
AFTER UPDATE ON autopilot.job_runs
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_run_metrics_pending();

COMMENT ON TRIGGER job_runs_metrics_insert_trg ON autopilot.job_runs IS
'The runner''s failed runs: their hour''s worker metrics are recomputed by metrics-refresh.';
COMMENT ON TRIGGER job_runs_metrics_update_trg ON autopilot.job_runs IS
'Runner runs that failed, or changed since: their hours are recomputed by metrics-refresh.';

-- sql/functions/agents/refresh_performance_metrics.sql
CREATE FUNCTION autopilot.refresh_performance_metrics()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- metrics-refresh. Hourly (UTC) aggregates into autopilot.performance_metrics:
--
-- * per agent (subject: its id), from autopilot.tasks by finished_at: tasks
--   succeeded and failed, success rate, mean / p50 / p95 of finished_at -
--   started_at (tasks never started count, without a duration);
-- * per runner worker (subject: autopilot.jobs.worker), from autopilot.jobs:
--   completed (succeeded, by completed_at, duration completed_at -
--   attempted_at) and discarded (by discarded_at); and from autopilot.job_runs:
--   the runner's failed runs (side runner, status failed, by finished_at,
--   duration finished_at - started_at; a catalog job's run counts for the
--   catalog's worker, job_catalog.target).
--
-- Only stale hours are recomputed: the statement triggers on tasks, jobs and
-- job_runs record every hour a change touches in
-- autopilot.performance_metrics_pending, in the writer's own transaction. A
-- run deletes the rows it can see and recomputes their hours from the base
-- tables, in one transaction: every row it consumes belongs to a committed
-- transaction whose changes it therefore sees, and the rows of transactions
-- still in progress (or committed after its snapshot) stay for the next run.
-- So a late row -- a task finishing into an old hour, a finished task updated
-- after its hour was computed -- is counted as soon as it commits, whatever its
-- timestamps say, and a crash mid-run loses nothing. Runs are exclusive (the
-- job's advisory lock).
DECLARE
    v_agent_hours timestamptz[];
    v_worker_hours timestamptz[];
    v_agent_written bigint;
    v_agent_removed bigint;
    v_worker_written bigint;
    v_worker_removed bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(autopilot._job_lock_key('metrics-refresh'));

    WITH consumed AS (
        DELETE FROM autopilot.performance_metrics_pending
        RETURNING subject_kind, hour
    )

    SELECT
        coalesce(array_agg(DISTINCT c.hour ORDER BY c.hour) FILTER (WHERE c.subject_kind = 'agent'), '{}'),
        coalesce(array_agg(DISTINCT c.hour ORDER BY c.hour) FILTER (WHERE c.subject_kind = 'worker'), '{}')
    INTO v_agent_hours, v_worker_hours
    FROM consumed AS c;

    -- agents. The percentiles are percentile_cont's, computed from ranks in one
    -- sort of all the hours' rows: an ordered-set aggregate per (agent, hour)
    -- costs a sort each, ten times slower over a month of hours.
    WITH ranked AS (
        SELECT
            t.agent_id,
            date_trunc('hour', t.finished_at, 'UTC') AS hour,
            t.status,
            t.finished_at - t.started_at AS duration,
            row_number() OVER (
                PARTITION BY t.agent_id, date_trunc('hour', t.finished_at, 'UTC')
                ORDER BY t.finished_at - t.started_at
            ) AS rank,
            count(t.finished_at - t.started_at) OVER (
                PARTITION BY t.agent_id, date_trunc('hour', t.finished_at, 'UTC')
            ) AS timed
        FROM autopilot.tasks AS t
        WHERE t.status IN ('succeeded', 'failed')
          AND t.agent_id IS NOT NULL
          -- an index range when the stale hours are close together, a hashed
          -- membership test for the rest: linear, whatever the plan
          AND t.finished_at >= v_agent_hours[1]
          AND t.finished_at < v_agent_hours[cardinality(v_agent_hours)] + interval '1 hour'
          AND date_trunc('hour', t.finished_at, 'UTC') IN (SELECT h.hour FROM unnest(v_agent_hours) AS h (hour))
    ),

    grouped AS (
        SELECT
            r.agent_id::text AS subject,
            r.hour,
            count(*) FILTER (WHERE r.status = 'succeeded') AS succeeded,
            count(*) FILTER (WHERE r.status = 'failed') AS failed,
            avg(r.duration) AS mean_duration,
            -- percentile_cont(p): the rows at 0-based ranks floor and ceil of p * (n - 1), interpolated
            0.5::double precision * (max(r.timed) - 1) AS k50,
            0.95::double precision * (max(r.timed) - 1) AS k95,
            min(r.duration) FILTER (WHERE r.rank = floor(0.5::double precision * (r.timed - 1)) + 1) AS p50_low,
            min(r.duration) FILTER (WHERE r.rank = ceil(0.5::double precision * (r.timed - 1)) + 1) AS p50_high,
            min(r.duration) FILTER (WHERE r.rank = floor(0.95::double precision * (r.timed - 1)) + 1) AS p95_low,
            min(r.duration) FILTER (WHERE r.rank = ceil(0.95::double precision * (r.timed - 1)) + 1) AS p95_high
        FROM ranked AS r
        GROUP BY r.agent_id, r.hour
    ),

    fresh AS MATERIALIZED (
        SELECT
            g.subject,
            g.hour,
            g.succeeded,
            g.failed,
            g.mean_duration,
            g.p50_low + (g.p50_high - g.p50_low) * (g.k50 - floor(g.k50)) AS p50_duration,
            g.p95_low + (g.p95_high - g.p95_low) * (g.k95 - floor(g.k95)) AS p95_duration
        FROM grouped AS g
    ),

    removed AS (
        DELETE FROM autopilot.performance_metrics AS m
        WHERE m.subject_kind = 'agent'
          AND m.hour = ANY(v_agent_hours)
          AND NOT EXISTS (SELECT FROM fresh AS f WHERE f.subject = m.subject AND f.hour = m.hour)
        RETURNING 1
    ),

    written AS (
        INSERT INTO autopilot.performance_metrics AS m (
            subject_kind, subject, hour, succeeded, failed, discarded, success_rate,
            mean_duration, p50_duration, p95_duration, computed_at
        )
        SELECT
            'agent',
            f.subject,
            f.hour,
            f.succeeded,
            f.failed,
            0,
            f.succeeded::double precision / nullif(f.succeeded + f.failed, 0),
            f.mean_duration,
            f.p50_duration,
            f.p95_duration,
            now()
        FROM fresh AS f
        ON CONFLICT (subject_kind, subject, hour) DO UPDATE
        SET succeeded = excluded.succeeded,
            failed = excluded.failed,
            discarded = excluded.discarded,
            success_rate = excluded.success_rate,
            mean_duration = excluded.mean_duration,
            p50_duration = excluded.p50_duration,
            p95_duration = excluded.p95_duration,
            computed_at = excluded.computed_at
        RETURNING 1
    )

    SELECT
        (SELECT count(*) FROM written),
        (SELECT count(*) FROM removed)
    INTO v_agent_written, v_agent_removed;

    -- runner workers
    WITH outcomes AS (
        SELECT
            j.worker AS subject,
            date_trunc('hour', coalesce(j.completed_at, j.discarded_at), 'UTC') AS hour,
            CASE j.state WHEN 'completed' THEN 'succeeded' ELSE 'discarded' END AS outcome,
            CASE WHEN j.state = 'completed' THEN j.completed_at - j.attempted_at END AS duration
        FROM autopilot.jobs AS j
        WHERE j.state IN ('completed', 'discarded')
          AND coalesce(j.completed_at, j.discarded_at) >= v_worker_hours[1]
          AND coalesce(j.completed_at, j.discarded_at) < v_worker_hours[cardinality(v_worker_hours)] + interval '1 hour'
          AND date_trunc('hour', coalesce(j.completed_at, j.discarded_at), 'UTC')
          IN (SELECT h.hour FROM unnest(v_worker_hours) AS h (hour))
        UNION ALL
        SELECT
            coalesce(c.target, r.job_name) AS subject,
            date_trunc('hour', r.finished_at, 'UTC') AS hour,
            'failed' AS outcome,
            r.finished_at - r.started_at AS duration
        FROM autopilot.job_runs AS r
        LEFT JOIN autopilot.job_catalog AS c ON r.job_name = c.name AND c.side = 'runner'
        WHERE r.side = 'runner'
          AND r.status = 'failed'
          AND r.finished_at >= v_worker_hours[1]
          AND r.finished_at < v_worker_hours[cardinality(v_worker_hours)] + interval '1 hour'
          AND date_trunc('hour', r.finished_at, 'UTC') IN (SELECT h.hour FROM unnest(v_worker_hours) AS h (hour))
    ),

    ranked AS (
        SELECT
            o.subject,
            o.hour,
            o.outcome,
            o.duration,
            row_number() OVER (PARTITION BY o.subject, o.hour ORDER BY o.duration) AS rank,
            count(o.duration) OVER (PARTITION BY o.subject, o.hour) AS timed
        FROM outcomes AS o
    ),

    grouped AS (
        SELECT
            r.subject,
            r.hour,
            count(*) FILTER (WHERE r.outcome = 'succeeded') AS succeeded,
            count(*) FILTER (WHERE r.outcome = 'failed') AS failed,
            count(*) FILTER (WHERE r.outcome = 'discarded') AS discarded,
            avg(r.duration) AS mean_duration,
            -- percentile_cont(p): the rows at 0-based ranks floor and ceil of p * (n - 1), interpolated
            0.5::double precision * (max(r.timed) - 1) AS k50,
            0.95::double precision * (max(r.timed) - 1) AS k95,
            min(r.duration) FILTER (WHERE r.rank = floor(0.5::double precision * (r.timed - 1)) + 1) AS p50_low,
            min(r.duration) FILTER (WHERE r.rank = ceil(0.5::double precision * (r.timed - 1)) + 1) AS p50_high,
            min(r.duration) FILTER (WHERE r.rank = floor(0.95::double precision * (r.timed - 1)) + 1) AS p95_low,
            min(r.duration) FILTER (WHERE r.rank = ceil(0.95::double precision * (r.timed - 1)) + 1) AS p95_high
        FROM ranked AS r
        GROUP BY r.subject, r.hour
    ),

    fresh AS MATERIALIZED (
        SELECT
            g.subject,
            g.hour,
            g.succeeded,
            g.failed,
            g.discarded,
            g.mean_duration,
            g.p50_low + (g.p50_high - g.p50_low) * (g.k50 - floor(g.k50)) AS p50_duration,
            g.p95_low + (g.p95_high - g.p95_low) * (g.k95 - floor(g.k95)) AS p95_duration
        FROM grouped AS g
    ),

    removed AS (
        DELETE FROM autopilot.performance_metrics AS m
        WHERE m.subject_kind = 'worker'
          AND m.hour = ANY(v_worker_hours)
          AND NOT EXISTS (SELECT FROM fresh AS f WHERE f.subject = m.subject AND f.hour = m.hour)
        RETURNING 1
    ),

    written AS (
        INSERT INTO autopilot.performance_metrics AS m (
            subject_kind, subject, hour, succeeded, failed, discarded, success_rate,
            mean_duration, p50_duration, p95_duration, computed_at
        )
        SELECT
            'worker',
            f.subject,
            f.hour,
            f.succeeded,
            f.failed,
            f.discarded,
            f.succeeded::double precision / nullif(f.succeeded + f.failed, 0),
            f.mean_duration,
            f.p50_duration,
            f.p95_duration,
            now()
        FROM fresh AS f
        ON CONFLICT (subject_kind, subject, hour) DO UPDATE
        SET succeeded = excluded.succeeded,
            failed = excluded.failed,
            discarded = excluded.discarded,
            success_rate = excluded.success_rate,
            mean_duration = excluded.mean_duration,
            p50_duration = excluded.p50_duration,
            p95_duration = excluded.p95_duration,
            computed_at = excluded.computed_at
        RETURNING 1
    )

    SELECT
        (SELECT count(*) FROM written),
        (SELECT count(*) FROM removed)
    INTO v_worker_written, v_worker_removed;

    RETURN jsonb_build_object(
        'rows_affected', v_agent_written + v_agent_removed + v_worker_written + v_worker_removed,
        'message', format(
            'recomputed %s agent %s and %s worker %s: %s metrics rows written, %s removed',
            cardinality(v_agent_hours), CASE WHEN cardinality(v_agent_hours) = 1 THEN 'hour' ELSE 'hours' END,
            cardinality(v_worker_hours), CASE WHEN cardinality(v_worker_hours) = 1 THEN 'hour' ELSE 'hours' END,
            v_agent_written + v_worker_written, v_agent_removed + v_worker_removed
        ),
        'agent_hours', cardinality(v_agent_hours),
        'worker_hours', cardinality(v_worker_hours),
        'agent_rows', v_agent_written,
        'worker_rows', v_worker_written,
        'removed', v_agent_removed + v_worker_removed,
        'oldest_hour', (SELECT min(h.hour) FROM unnest(v_agent_hours || v_worker_hours) AS h (hour)),
        'newest_hour', (SELECT max(h.hour) FROM unnest(v_agent_hours || v_worker_hours) AS h (hour))
    );
END;
$$;

COMMENT ON FUNCTION autopilot.refresh_performance_metrics() IS
'metrics-refresh: recomputes, in autopilot.performance_metrics, the hourly (UTC) aggregates of the hours changed since the last run (autopilot.performance_metrics_pending): per agent from its finished tasks (succeeded, failed, success rate, mean/p50/p95 duration), per runner worker from completed and discarded jobs and the runner''s failed runs. Late rows are counted once they commit.';


REVOKE ALL ON FUNCTION autopilot._track_agent_load() FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot._guard_agent() FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.assign_pending_tasks() FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot._mark_task_metrics_pending() FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot._mark_job_metrics_pending() FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot._mark_run_metrics_pending() FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.refresh_performance_metrics() FROM PUBLIC;
REVOKE ALL ON autopilot.performance_metrics_pending FROM PUBLIC;

INSERT INTO autopilot.settings (name, value_type, default_value, min_value, max_value, description)
VALUES (
    'agents.silence_timeout', 'interval', '10 minutes', '1 minute', NULL,
    'task-assignment takes assigned (not yet running) tasks back from agents not seen (last_seen_at) for '
    || 'longer than this, and gives new tasks only to agents seen within it.'
)
ON CONFLICT (name) DO UPDATE
    SET
        value_type = excluded.value_type,
        default_value = excluded.default_value,
        min_value = excluded.min_value,
        max_value = excluded.max_value,
        description = excluded.description;

-- every hour the data of 0.1.0 already holds is stale: the first metrics-refresh computes them all
INSERT INTO autopilot.performance_metrics_pending (subject_kind, hour)
SELECT
    'agent' AS subject_kind,
    date_trunc('hour', t.finished_at, 'UTC') AS hour
FROM autopilot.tasks AS t
WHERE t.status IN ('succeeded', 'failed') AND t.agent_id IS NOT NULL AND t.finished_at IS NOT NULL
UNION
SELECT
    'worker' AS subject_kind,
    date_trunc('hour', coalesce(j.completed_at, j.discarded_at), 'UTC') AS hour
FROM autopilot.jobs AS j
WHERE j.state IN ('completed', 'discarded') AND coalesce(j.completed_at, j.discarded_at) IS NOT NULL
UNION
SELECT
    'worker' AS subject_kind,
    date_trunc('hour', r.finished_at, 'UTC') AS hour
FROM autopilot.job_runs AS r
WHERE r.side = 'runner' AND r.status = 'failed' AND r.finished_at IS NOT NULL
ON CONFLICT DO NOTHING;

-- vacuum-analyze lists every table (composable with the other fragments' replace() calls)
UPDATE autopilot.job_catalog
SET
    target = replace(
        target,
        'autopilot.performance_metrics, ',
        'autopilot.performance_metrics, autopilot.performance_metrics_pending, '
    )
WHERE name = 'vacuum-analyze' AND target NOT LIKE '%autopilot.performance_metrics_pending%';
-- ===== end of the agents fragment =====

-- ===================================== pagerank
-- functions (sql/manifest.txt order)

-- sql/functions/graph/_pagerank_sql.sql
CREATE FUNCTION autopilot._pagerank_sql(
    p_node_ids bigint[],
    p_sources bigint[],
    p_targets bigint[],
    p_weights double precision[],
    p_damping double precision,
    p_tolerance double precision,
    p_max_iterations integer,
    OUT ranks double precision[],
    OUT iterations integer,
    OUT delta double precision,
    OUT ignored_edges bigint
)
LANGUAGE plpgsql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
-- PageRank's power iteration in SQL: the same computation, arguments, results
-- and errors as the compiled autopilot._pagerank_kernel, for servers where the
-- extension's library cannot be loaded (installed as a plain schema, or by a
-- role that may not create C functions). Each iteration is one join and one
-- aggregate over every edge: expect seconds per iteration on a million edges.
DECLARE
    v_count integer := coalesce(cardinality(p_node_ids), 0);
    v_edge_source integer [];
    v_edge_target integer [];
    v_edge_share double precision [];
    v_dangling integer [];
    v_next double precision [];
    v_base double precision;
BEGIN
    IF num_nulls(p_node_ids, p_sources, p_targets, p_weights, p_damping, p_tolerance, p_max_iterations) > 0 THEN
        RAISE EXCEPTION '_pagerank_sql: no argument may be NULL' USING ERRCODE = '22004';
    END IF;
    IF NOT (p_damping >= 0 AND p_damping < 1) THEN
        RAISE EXCEPTION 'pagerank damping must be at least 0 and less than 1, not %', p_damping
        USING ERRCODE = '22023';
    END IF;
    IF NOT (p_tolerance > 0 AND p_tolerance < 'infinity') THEN
        RAISE EXCEPTION 'pagerank tolerance must be a positive number, not %', p_tolerance
        USING ERRCODE = '22023';
    END IF;
    IF p_max_iterations < 1 THEN
        RAISE EXCEPTION 'pagerank max_iterations must be at least 1, not %', p_max_iterations
        USING ERRCODE = '22023';
    END IF;
    IF array_position(p_node_ids, NULL) IS NOT NULL OR array_position(p_sources, NULL) IS NOT NULL
        OR array_position(p_targets, NULL) IS NOT NULL OR array_position(p_weights, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'pagerank arrays must not contain NULL' USING ERRCODE = '22004';
    END IF;
    IF cardinality(p_sources) <> cardinality(p_targets) OR cardinality(p_sources) <> cardinality(p_weights) THEN
        RAISE EXCEPTION 'sources, targets and weights differ in length (%, % and %)',
            cardinality(p_sources), cardinality(p_targets), cardinality(p_weights)
        USING ERRCODE = '2202E';
    END IF;
    IF EXISTS (
        SELECT
        FROM unnest(p_node_ids) WITH ORDINALITY AS n (id, position)
        WHERE n.position > 1 AND n.id <= p_node_ids[n.position - 1]
    ) THEN
        RAISE EXCEPTION 'node_ids must be ascending and unique' USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT FROM unnest(p_weights) AS w (weight) WHERE NOT (w.weight > 0 AND w.weight < 'infinity')) THEN
        RAISE EXCEPTION 'pagerank edge weights must be positive and finite' USING ERRCODE = '22023';
    END IF;

    -- edges as positions in p_node_ids, each with its damped share of its source's rank
    WITH nodes AS (
        SELECT
            n.id,
            n.position::integer AS position
        FROM unnest(p_node_ids) WITH ORDINALITY AS n (id, position)
    ),

    edges AS (
        SELECT
            s.position AS source,
            t.position AS target,
            e.weight
        FROM unnest(p_sources, p_targets, p_weights) AS e (source_id, target_id, weight)
        INNER JOIN nodes AS s ON e.source_id = s.id
        INNER JOIN nodes AS t ON e.target_id = t.id
    ),

    out_weight AS (
        SELECT
            e.source,
            sum(e.weight) AS total
        FROM edges AS e
        GROUP BY e.source
    )

    SELECT
        coalesce(array_agg(e.source), '{}'),
        coalesce(array_agg(e.target), '{}'),
        coalesce(array_agg(p_damping * e.weight / o.total), '{}')
    INTO v_edge_source, v_edge_target, v_edge_share
    FROM edges AS e
    INNER JOIN out_weight AS o ON e.source = o.source;

    ignored_edges := cardinality(p_sources) - cardinality(v_edge_source);

    SELECT coalesce(array_agg(g.position), '{}')
    INTO v_dangling
    FROM generate_series(1, v_count) AS g (position)
    WHERE g.position <> ALL(v_edge_source);

    iterations := 0;
    delta := 0;
    IF v_count = 0 THEN
        ranks := '{}';
        RETURN;
    END IF;
    ranks := array_fill(1.0::double precision / v_count, ARRAY[v_count]);

    WHILE iterations < p_max_iterations LOOP
        SELECT (1 - p_damping) / v_count + p_damping * coalesce(sum(ranks[d.position]), 0) / v_count
        INTO v_base
        FROM unnest(v_dangling) AS d (position);

        SELECT array_agg(v_base + coalesce(i.inflow, 0) ORDER BY g.position)
        INTO v_next
        FROM generate_series(1, v_count) AS g (position)
        LEFT JOIN (
            SELECT
                e.target,
                sum(ranks[e.source] * e.share) AS inflow
            FROM unnest(v_edge_source, v_edge_target, v_edge_share) AS e (source, target, share)
            GROUP BY e.target
        ) AS i ON g.position = i.target;

        SELECT sum(abs(u.new_rank - u.old_rank))
        INTO delta
        FROM unnest(v_next, ranks) AS u (new_rank, old_rank);

        ranks := v_next;
        iterations := iterations + 1;
        EXIT WHEN delta < p_tolerance;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION autopilot._pagerank_sql(
    bigint[], bigint[], bigint[], double precision[], double precision, double precision, integer
) IS
'Private: PageRank power iteration in SQL, identical in arguments and results to autopilot._pagerank_kernel; '
'recalculate_all_pagerank() uses it where the compiled kernel is not installed.';

-- sql/functions/graph/_pagerank_kernel.sql
-- The compiled PageRank kernel (src/pagerank.c) exists only where it can: in an
-- extension install (CREATE EXTENSION / ALTER EXTENSION UPDATE, the library
-- installed beside the control file) by a superuser (C functions are untrusted).
-- Installed as a plain schema, or by another role, recalculate_all_pagerank()
-- runs the same iteration in SQL (autopilot._pagerank_sql).
DO $do$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'autopilot')
        OR NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user) THEN
        RETURN;
    END IF;
    CREATE FUNCTION autopilot._pagerank_kernel(
        p_node_ids bigint [],
        p_sources bigint [],
        p_targets bigint [],
        p_weights double precision [],
        p_damping double precision,
        p_tolerance double precision,
        p_max_iterations integer,
        OUT ranks double precision [],
        OUT iterations integer,
        OUT delta double precision,
        OUT ignored_edges bigint
    )
    LANGUAGE c
    IMMUTABLE
    PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS '$libdir/autopilot', 'autopilot_pagerank_kernel';

    COMMENT ON FUNCTION autopilot._pagerank_kernel(
        bigint [], bigint [], bigint [], double precision [], double precision, double precision, integer
    ) IS
    'Private: PageRank power iteration, compiled (src/pagerank.c). Ranks of node_ids (ascending) from the '
    'weighted edges; stops when the L1 change is below the tolerance or after max_iterations; edges with an '
    'end outside node_ids are skipped and counted.';
EXCEPTION
    WHEN undefined_file THEN
        RAISE NOTICE 'autopilot''s library is not installed on this server: PageRank will run in SQL, slower'
        USING HINT = 'Install the library (make install) before CREATE EXTENSION autopilot to use the compiled kernel.';
END;
$do$;

-- sql/functions/graph/recalculate_all_pagerank.sql
CREATE FUNCTION autopilot.recalculate_all_pagerank()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- pagerank. PageRank of every node of autopilot.graph_nodes, per codebase, over
-- the weighted edges of autopilot.graph_edges, with networkx.pagerank's
-- semantics: damping pagerank.damping, edge weights normalised per source, the
-- rank of dangling nodes spread uniformly over the codebase, isolated nodes
-- included (they keep the teleport share). It stops when the absolute L1 change
-- of an iteration is below pagerank.tolerance (not networkx's N * tol, which
-- stops far from convergence on large graphs) and fails, writing nothing, when
-- pagerank.max_iterations are not enough. An edge whose target is in another
-- codebase is not part of either graph: skipped, and counted in the summary.
--
-- Each codebase's nodes and edges are read in one statement (one snapshot);
-- the power iteration runs in the compiled autopilot._pagerank_kernel where it
-- is installed, else in autopilot._pagerank_sql; the scores are written back
-- in this transaction, so readers see all of a run's scores or none of them.
DECLARE
    v_damping double precision := autopilot.get_setting('pagerank.damping')::double precision;
    v_tolerance double precision := autopilot.get_setting('pagerank.tolerance')::double precision;
    v_max_iterations integer := autopilot.get_setting('pagerank.max_iterations')::integer;
    v_kernel regproc := to_regprocedure(
        'autopilot._pagerank_kernel(bigint[], bigint[], bigint[], double precision[], '
        || 'double precision, double precision, integer)'
    )::regproc;
    v_compiled boolean := v_kernel IS NOT NULL;
    v_codebase text;
    v_node_ids bigint [];
    v_sources bigint [];
    v_targets bigint [];
    v_weights double precision [];
    v_ranks double precision [];
    v_iterations integer;
    v_delta double precision;
    v_skipped bigint;
    v_written bigint;
    v_codebases jsonb := '{}'::jsonb;
    v_codebase_count integer := 0;
    v_nodes bigint := 0;
    v_edges bigint := 0;
    v_ignored bigint := 0;
    v_updated bigint := 0;
    v_max_iterations_used integer := 0;
    v_max_delta double precision := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(autopilot._job_lock_key('pagerank'));

    FOR v_codebase IN SELECT DISTINCT n.codebase FROM autopilot.graph_nodes AS n ORDER BY n.codebase LOOP
        WITH nodes AS MATERIALIZED (
            SELECT n.id
            FROM autopilot.graph_nodes AS n
            WHERE n.codebase = v_codebase
        )

        SELECT
            (SELECT coalesce(array_agg(n.id ORDER BY n.id), '{}') FROM nodes AS n),
            coalesce(array_agg(e.source_id), '{}'),
            coalesce(array_agg(e.target_id), '{}'),
            coalesce(array_agg(e.weight), '{}')
        INTO v_node_ids, v_sources, v_targets, v_weights
        FROM autopilot.graph_edges AS e
        INNER JOIN nodes AS s ON e.source_id = s.id;

        IF v_compiled THEN
            -- dynamic, only because the function does not exist in every install (nothing may
            -- resolve its name where it is absent); v_kernel is its regproc, not user input
            EXECUTE format(
                'SELECT k.ranks, k.iterations, k.delta, k.ignored_edges FROM %s($1, $2, $3, $4, $5, $6, $7) AS k',
                v_kernel
            )
            INTO v_ranks, v_iterations, v_delta, v_skipped
            USING v_node_ids, v_sources, v_targets, v_weights, v_damping, v_tolerance, v_max_iterations;
        ELSE
            SELECT k.ranks, k.iterations, k.delta, k.ignored_edges
            INTO v_ranks, v_iterations, v_delta, v_skipped
            FROM autopilot._pagerank_sql(
                v_node_ids, v_sources, v_targets, v_weights, v_damping, v_tolerance, v_max_iterations
            ) AS k;
        END IF;

        IF v_delta >= v_tolerance THEN
            -- the remedy is in the message itself: the ledger (job_runs.message) keeps only that
            RAISE EXCEPTION
                'pagerank of codebase % did not converge in % iterations (pagerank.max_iterations): '
                'the last changed the ranks by % (L1), pagerank.tolerance is %; no score was written',
                v_codebase, v_iterations, v_delta, v_tolerance
            USING
                ERRCODE = '54000',
                HINT = 'Raise pagerank.max_iterations (or pagerank.tolerance) with autopilot.set_setting().';
        END IF;

        UPDATE autopilot.graph_nodes AS n
        SET pagerank = r.pagerank
        FROM unnest(v_node_ids, v_ranks) AS r (id, pagerank)
        WHERE n.id = r.id AND n.pagerank IS DISTINCT FROM r.pagerank;
        GET DIAGNOSTICS v_written = ROW_COUNT;

        v_codebases := v_codebases || jsonb_build_object(v_codebase, jsonb_build_object(
            'nodes', cardinality(v_node_ids),
            'edges', cardinality(v_sources) - v_skipped,
            'cross_codebase_edges', v_skipped,
            'iterations', v_iterations,
            'final_change', v_delta
        ));
        v_codebase_count := v_codebase_count + 1;
        v_nodes := v_nodes + cardinality(v_node_ids);
        v_edges := v_edges + cardinality(v_sources) - v_skipped;
        v_ignored := v_ignored + v_skipped;
        v_updated := v_updated + v_written;
        v_max_iterations_used := greatest(v_max_iterations_used, v_iterations);
        v_max_delta := greatest(v_max_delta, v_delta);
    END LOOP;

    RETURN jsonb_build_object(
        'rows_affected', v_updated,
        'message', format(
            'PageRank of %s %s in %s %s (%s edges) converged in at most %s iterations (final L1 change %s)%s',
            v_nodes, CASE WHEN v_nodes = 1 THEN 'node' ELSE 'nodes' END,
            v_codebase_count, CASE WHEN v_codebase_count = 1 THEN 'codebase' ELSE 'codebases' END,
            v_edges, v_max_iterations_used, v_max_delta,
            CASE WHEN v_ignored > 0 THEN format('; %s cross-codebase edges skipped', v_ignored) ELSE '' END
        ),
        'kernel', CASE WHEN v_compiled THEN 'compiled' ELSE 'sql' END,
        'nodes', v_nodes,
        'edges', v_edges,
        'cross_codebase_edges', v_ignored,
        'iterations', v_max_iterations_used,
        'final_change', v_max_delta,
        'damping', v_damping,
        'tolerance', v_tolerance,
        'codebases', v_codebases
    );
END;
$$;

COMMENT ON FUNCTION autopilot.recalculate_all_pagerank() IS
'pagerank job: PageRank of every graph node per codebase (networkx semantics, L1 stopping rule: settings '
'pagerank.damping, pagerank.tolerance, pagerank.max_iterations), written back in one transaction; returns the '
'iterations and final change per codebase.';

REVOKE ALL ON FUNCTION autopilot._pagerank_sql(
    bigint[], bigint[], bigint[], double precision[], double precision, double precision, integer
) FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.recalculate_all_pagerank() FROM PUBLIC;
DO $$
BEGIN
    IF to_regproc('autopilot._pagerank_kernel') IS NOT NULL THEN
        REVOKE ALL ON FUNCTION autopilot._pagerank_kernel(
            bigint[], bigint[], bigint[], double precision[], double precision, double precision, integer
        ) FROM PUBLIC;
    END IF;
END;
$$;

INSERT INTO autopilot.settings (name, value_type, default_value, min_value, max_value, description)
VALUES
(
    'pagerank.damping', 'numeric', '0.85', '0', '0.99',
    'pagerank: probability of following an edge rather than jumping to a random node of the codebase.'
),
(
    'pagerank.tolerance', 'numeric', '1e-10', '1e-15', '0.1',
    'pagerank stops when one iteration changes the ranks by less than this in total (absolute L1).'
),
(
    'pagerank.max_iterations', 'integer', '1000', '1', '100000',
    'pagerank fails, writing no score, when this many iterations do not reach pagerank.tolerance.'
)
ON CONFLICT (name) DO UPDATE
    SET
        value_type = excluded.value_type,
        default_value = excluded.default_value,
        min_value = excluded.min_value,
        max_value = excluded.max_value,
        description = excluded.description;
-- ===== end of the pagerank fragment =====

-- ===================================== centralcloud
-- new tables and the view the instances check

-- sql/schema/tables/central_pattern_inbox.sql
-- Central database side of centralcloud-sync. Instances INSERT here through
-- postgres_fdw (the only privilege they need); centralcloud-merge consumes it.
CREATE TABLE autopilot.central_pattern_inbox (
    id bigint GENERATED ALWAYS AS IDENTITY,
    instance_id text NOT NULL,
    pattern_type text NOT NULL,
    pattern_key text NOT NULL,
    occurrences bigint NOT NULL,
    successes bigint NOT NULL,
    failures bigint NOT NULL,
    mean_score double precision,
    score_count bigint NOT NULL,
    first_seen_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    codebases text[] NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT central_pattern_inbox_pkey PRIMARY KEY (id),
    CONSTRAINT central_pattern_inbox_instance_id_check CHECK (instance_id <> ''),
    CONSTRAINT central_pattern_inbox_counts_check CHECK (
        successes >= 0 AND failures >= 0 AND successes + failures <= occurrences AND score_count >= 0
    )
);

COMMENT ON TABLE autopilot.central_pattern_inbox IS
'Central database: learned patterns pushed by instances (centralcloud-sync, through postgres_fdw), each row an instance''s running totals for one pattern at the time it was sent; centralcloud-merge consumes the rows.';
COMMENT ON COLUMN autopilot.central_pattern_inbox.id IS
'Arrival order. An instance pushes one batch at a time, so for one instance and pattern the highest id is the newest state.';
COMMENT ON COLUMN autopilot.central_pattern_inbox.instance_id IS
'The sending instance''s centralcloud.instance_id.';

-- sql/schema/tables/central_instance_patterns.sql
CREATE TABLE autopilot.central_instance_patterns (
    instance_id text NOT NULL,
    pattern_type text NOT NULL,
    pattern_key text NOT NULL,
    occurrences bigint NOT NULL,
    successes bigint NOT NULL,
    failures bigint NOT NULL,
    mean_score double precision,
    score_count bigint NOT NULL,
    first_seen_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    codebases text[] NOT NULL,
    inbox_id bigint NOT NULL,
    received_at timestamptz NOT NULL,
    CONSTRAINT central_instance_patterns_pkey PRIMARY KEY (instance_id, pattern_type, pattern_key),
    CONSTRAINT central_instance_patterns_counts_check CHECK (
        successes >= 0 AND failures >= 0 AND successes + failures <= occurrences AND score_count >= 0
    )
);

-- centralcloud-merge recomputes global_patterns by pattern, over every instance
CREATE INDEX central_instance_patterns_pattern_idx ON autopilot.central_instance_patterns (
    pattern_type, pattern_key
);

COMMENT ON TABLE autopilot.central_instance_patterns IS
'Central database: the newest totals each instance has sent for each pattern. A re-sent row replaces, never adds to, what the instance sent before, so re-sending cannot double-count.';
COMMENT ON COLUMN autopilot.central_instance_patterns.inbox_id IS
'central_pattern_inbox.id of the row these totals came from; an older row (lower id) never replaces a newer one.';

-- sql/schema/tables/global_patterns.sql
CREATE TABLE autopilot.global_patterns (
    pattern_type text NOT NULL,
    pattern_key text NOT NULL,
    instances integer NOT NULL,
    occurrences bigint NOT NULL,
    successes bigint NOT NULL,
    failures bigint NOT NULL,
    success_rate double precision,
    confidence double precision NOT NULL,
    mean_score double precision,
    score_count bigint NOT NULL,
    first_seen_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    codebases text[] NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT global_patterns_pkey PRIMARY KEY (pattern_type, pattern_key),
    CONSTRAINT global_patterns_counts_check CHECK (
        instances > 0 AND successes >= 0 AND failures >= 0 AND successes + failures <= occurrences
    ),
    CONSTRAINT global_patterns_confidence_check CHECK (confidence BETWEEN 0 AND 1)
);

COMMENT ON TABLE autopilot.global_patterns IS
'Central database: every pattern learned anywhere, summed over the instances'' newest totals (centralcloud-merge): occurrences, successes, failures, success rate, Wilson lower-bound confidence at 95%, mean score, first/last seen, codebases.';
COMMENT ON COLUMN autopilot.global_patterns.instances IS 'How many instances have sent the pattern.';
COMMENT ON COLUMN autopilot.global_patterns.confidence IS
'The Wilson score lower bound at 95% of the success rate over all instances'' successes + failures; 0 without a success.';

-- sql/schema/views/centralcloud_info.sql
-- What an instance checks before it pushes: the central database's autopilot
-- and the centralcloud protocol it speaks (the shape of central_pattern_inbox).
CREATE VIEW autopilot.centralcloud_info AS
SELECT
    autopilot.version() AS extension_version,
    1 AS protocol;

COMMENT ON VIEW autopilot.centralcloud_info IS
'Central database: the autopilot version and the centralcloud protocol (1: central_pattern_inbox as of 0.2.0) that instances check, through postgres_fdw, before pushing.';

-- pg_dump marks for the new tables (extension mode only; as sql/grants/config_dump.sql does)
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'autopilot') THEN
        PERFORM pg_catalog.pg_extension_config_dump('autopilot.central_pattern_inbox', '');
        PERFORM pg_catalog.pg_extension_config_dump('autopilot.central_pattern_inbox_id_seq', '');
        PERFORM pg_catalog.pg_extension_config_dump('autopilot.central_instance_patterns', '');
        PERFORM pg_catalog.pg_extension_config_dump('autopilot.global_patterns', '');
    END IF;
END;
$$;

-- functions (sql/manifest.txt order), the learned_patterns trigger with them

-- sql/functions/learning/_stamp_pattern_change.sql
CREATE FUNCTION autopilot._stamp_pattern_change()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
-- Row trigger (BEFORE UPDATE, only when the statement left changed_xid as it
-- was): an UPDATE of a learned pattern by anyone marks it changed by its
-- transaction, so centralcloud-sync sends it. pattern-learning sets
-- changed_xid itself, and the trigger's WHEN clause skips it for those rows.
BEGIN
    NEW.changed_xid := pg_current_xact_id();
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION autopilot._stamp_pattern_change() IS
'Private: trigger on autopilot.learned_patterns that records the updating transaction in changed_xid, for centralcloud-sync.';

CREATE TRIGGER learned_patterns_stamp_change_trg
BEFORE UPDATE ON autopilot.learned_patterns
FOR EACH ROW
WHEN (old.changed_xid = new.changed_xid)
EXECUTE FUNCTION autopilot._stamp_pattern_change();

-- sql/functions/centralcloud/sync_learning_to_centralcloud.sql
CREATE FUNCTION autopilot.sync_learning_to_centralcloud()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- centralcloud-sync (instance side). Pushes every learned pattern changed since
-- the last successful push to the central database, tagged with this
-- instance's centralcloud.instance_id, through postgres_fdw: the connection
-- and credentials are the DBA's foreign server (setting centralcloud.server,
-- default autopilot_central) and user mapping, never a table of ours.
--
-- What is sent is each changed pattern's running totals (occurrences,
-- successes, failures, mean score and its weight, first/last seen,
-- codebases), not increments: the central database keeps the newest totals of
-- each instance and pattern and sums over instances (merge_central_patterns),
-- so sending a row twice can never double-count.
--
-- Changed since the last push: learned_patterns.changed_xid is the transaction
-- that last wrote the row; a run sends the rows with changed_xid in [last
-- horizon, xmin of its snapshot) -- every transaction below that xmin has
-- ended, so nothing committed below it can still appear -- and advances the
-- horizon in the same transaction. The remote INSERT commits just before the
-- local transaction; if the central database is unreachable or refuses the
-- rows, the run fails, nothing advances, and the next run sends it all. The
-- first run, and the first run after a restore into another cluster (whose
-- transaction ids mean nothing here), sends every pattern.
--
-- Checked first: the central database's autopilot.centralcloud_info, which
-- must speak centralcloud protocol 1. Not configured (no such foreign server):
-- nothing to do, and the run says so. Deleted patterns are not propagated: the
-- central database keeps what an instance last sent.
DECLARE
    c_protocol CONSTANT integer := 1;
    c_info CONSTANT text := 'autopilot._centralcloud_info';
    c_inbox CONSTANT text := 'autopilot._centralcloud_inbox';
    v_server text := autopilot.get_setting('centralcloud.server');
    v_instance text := autopilot.get_setting('centralcloud.instance_id');
    v_system_identifier bigint := (pg_catalog.pg_control_system()).system_identifier;
    v_mark autopilot.learning_watermarks;
    v_full boolean;
    v_horizon xid8;
    v_central_version text;
    v_central_protocol integer;
    v_sent bigint;
    v_relabelled bigint := 0;
    v_detail text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_foreign_server AS s WHERE s.srvname = v_server) THEN
        RETURN jsonb_build_object(
            'rows_affected', 0,
            'message', format(
                'not configured: there is no foreign server %I (setting centralcloud.server); nothing sent',
                v_server
            ),
            'configured', false
        );
    END IF;
    IF v_instance = '' THEN
        RAISE EXCEPTION 'centralcloud.instance_id is not set: the central database tells instances apart by it'
        USING
            ERRCODE = '55000',
            HINT = 'Give this database a name unique among the instances: '
            || 'SELECT autopilot.set_setting(''centralcloud.instance_id'', ''...'');';
    END IF;

    -- one run at a time: the central database orders an instance's rows by arrival
    INSERT INTO autopilot.learning_watermarks (name) VALUES ('centralcloud-sync')
    ON CONFLICT (name) DO NOTHING;
    SELECT w.* INTO STRICT v_mark
    FROM autopilot.learning_watermarks AS w
    WHERE w.name = 'centralcloud-sync'
    FOR UPDATE;

    v_full := v_mark.system_identifier IS DISTINCT FROM v_system_identifier;
    IF v_full THEN
        -- no writer in flight: every pattern is committed and visible, and sent
        LOCK TABLE autopilot.learned_patterns IN SHARE MODE;
    END IF;
    v_horizon := pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot());
    IF NOT v_full THEN
        v_horizon := greatest(v_horizon, v_mark.horizon);
    END IF;

    -- links to the central tables for this transaction only (nothing to dump or upgrade)
    EXECUTE format(
        'CREATE FOREIGN TABLE %s (extension_version text, protocol integer) SERVER %I '
        || 'OPTIONS (schema_name %L, table_name %L)',
        c_info, v_server, 'autopilot', 'centralcloud_info'
    );
    EXECUTE format(
        'CREATE FOREIGN TABLE %s (instance_id text, pattern_type text, pattern_key text, occurrences bigint, '
        || 'successes bigint, failures bigint, mean_score double precision, score_count bigint, '
        || 'first_seen_at timestamptz, last_seen_at timestamptz, codebases text[]) SERVER %I '
        || 'OPTIONS (schema_name %L, table_name %L, batch_size %L)',
        c_inbox, v_server, 'autopilot', 'central_pattern_inbox', '1000'
    );

    BEGIN
        EXECUTE format('SELECT i.extension_version, i.protocol FROM %s AS i', c_info)
        INTO v_central_version, v_central_protocol;
        IF v_central_protocol IS DISTINCT FROM c_protocol THEN
            RAISE EXCEPTION
                'the central database runs autopilot % (centralcloud protocol %); this instance runs autopilot % '
                '(protocol %): nothing sent',
                v_central_version, v_central_protocol, autopilot.version(), c_protocol
            USING ERRCODE = '0A000', HINT = 'Upgrade autopilot where it is older, so that both speak one protocol.';
        END IF;

        EXECUTE format(
            'INSERT INTO %s (instance_id, pattern_type, pattern_key, occurrences, successes, failures, mean_score, '
            || 'score_count, first_seen_at, last_seen_at, codebases) '
            || 'SELECT $1, p.pattern_type, p.pattern_key, p.occurrences, p.successes, p.failures, p.mean_score, '
            || 'p.score_count, p.first_seen_at, p.last_seen_at, p.codebases FROM autopilot.learned_patterns AS p '
            || 'WHERE $4 OR (p.changed_xid >= $2 AND p.changed_xid < $3)',
            c_inbox
        ) USING v_instance, v_mark.horizon, v_horizon, v_full;
        GET DIAGNOSTICS v_sent = ROW_COUNT;
    EXCEPTION
        WHEN connection_exception THEN
            GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
            RAISE EXCEPTION
                'cannot reach the central database through foreign server % (nothing sent; the next run sends it): %',
                v_server, concat_ws(': ', SQLERRM, nullif(v_detail, ''))
            USING
                ERRCODE = SQLSTATE,
                HINT = 'Check the foreign server''s host, port and dbname, and the user mapping for '
                || current_user || '.';
        WHEN undefined_table OR undefined_column THEN
            RAISE EXCEPTION
                'the database behind foreign server % has no autopilot 0.2.0 or later to receive patterns '
                '(nothing sent): %', v_server, SQLERRM
            USING
                ERRCODE = SQLSTATE,
                HINT = 'Install or upgrade autopilot in the central database (autopilot install / upgrade).';
    END;

    IF v_full THEN
        -- every pattern is sent; marks at or above the new horizon came from another cluster's
        -- transaction ids (or are this run's neighbours') and must not be sent again for nothing
        UPDATE autopilot.learned_patterns AS p
        SET changed_xid = '0'
        WHERE p.changed_xid >= v_horizon;
        GET DIAGNOSTICS v_relabelled = ROW_COUNT;
    END IF;

    UPDATE autopilot.learning_watermarks AS w
    SET horizon = v_horizon,
        system_identifier = v_system_identifier,
        rows_total = w.rows_total + v_sent,
        runs = w.runs + 1,
        updated_at = now()
    WHERE w.name = 'centralcloud-sync';

    EXECUTE format('DROP FOREIGN TABLE %s, %s', c_info, c_inbox);

    RETURN jsonb_build_object(
        'rows_affected', v_sent,
        'message', format(
            'sent %s changed %s to the central database (autopilot %s) as instance %s%s',
            v_sent, CASE WHEN v_sent = 1 THEN 'pattern' ELSE 'patterns' END, v_central_version, v_instance,
            CASE WHEN v_full THEN ' (first push from this cluster: every pattern)' ELSE '' END
        ),
        'configured', true,
        'instance_id', v_instance,
        'server', v_server,
        'central_version', v_central_version,
        'full', v_full,
        'relabelled', v_relabelled,
        'horizon', v_horizon::text,
        'previous_horizon', v_mark.horizon::text
    );
END;
$$;

COMMENT ON FUNCTION autopilot.sync_learning_to_centralcloud() IS
'centralcloud-sync: pushes the learned patterns changed since the last successful push (their running totals, tagged with centralcloud.instance_id) into the central database''s autopilot.central_pattern_inbox through postgres_fdw (foreign server centralcloud.server and its user mapping). Fails, sending nothing and keeping its place, when the central database is unreachable or speaks another protocol. Returns the job summary (rows_affected = patterns sent).';

-- sql/functions/centralcloud/merge_central_patterns.sql
CREATE FUNCTION autopilot.merge_central_patterns()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- centralcloud-merge (central database side). Consumes the rows instances
-- pushed into autopilot.central_pattern_inbox: for each (instance, pattern)
-- the newest row (highest inbox id: an instance pushes one batch at a time)
-- replaces what autopilot.central_instance_patterns held for it, unless that
-- came from a newer row; then every pattern whose instance totals changed is
-- recomputed in autopilot.global_patterns from all instances' newest totals:
--   occurrences, successes, failures    sums;
--   success_rate    successes / (successes + failures), NULL without evidence;
--   confidence      Wilson lower bound at 95% over the sums, as pattern-learning;
--   mean_score      the mean weighted by each instance's score_count;
--   first/last seen, codebases    min, max, union;  instances    how many sent it.
-- A re-sent row therefore replaces, never adds: nothing is double-counted,
-- however often an instance sends the same totals. Inbox rows of transactions
-- still open stay for the next run; a failed run rolls back and consumes
-- nothing. Runs are exclusive (the job's advisory lock). In an instance
-- database the inbox is empty and a run does nothing.
DECLARE
    v_consumed bigint;
    v_types text [];
    v_keys text [];
    v_global bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(autopilot._job_lock_key('centralcloud-merge'));

    WITH consumed AS (
        DELETE FROM autopilot.central_pattern_inbox
        RETURNING *
    ),

    newest AS (
        SELECT DISTINCT ON (c.instance_id, c.pattern_type, c.pattern_key) c.*
        FROM consumed AS c
        ORDER BY c.instance_id, c.pattern_type, c.pattern_key, c.id DESC
    ),

    replaced AS (
        INSERT INTO autopilot.central_instance_patterns AS ip (
            instance_id, pattern_type, pattern_key, occurrences, successes, failures, mean_score,
            score_count, first_seen_at, last_seen_at, codebases, inbox_id, received_at
        )
        SELECT
            n.instance_id,
            n.pattern_type,
            n.pattern_key,
            n.occurrences,
            n.successes,
            n.failures,
            n.mean_score,
            n.score_count,
            n.first_seen_at,
            n.last_seen_at,
            n.codebases,
            n.id,
            n.received_at
        FROM newest AS n
        ON CONFLICT (instance_id, pattern_type, pattern_key) DO UPDATE
            SET
                occurrences = excluded.occurrences,
                successes = excluded.successes,
                failures = excluded.failures,
                mean_score = excluded.mean_score,
                score_count = excluded.score_count,
                first_seen_at = excluded.first_seen_at,
                last_seen_at = excluded.last_seen_at,
                codebases = excluded.codebases,
                inbox_id = excluded.inbox_id,
                received_at = excluded.received_at
            WHERE ip.inbox_id < excluded.inbox_id
        RETURNING ip.pattern_type, ip.pattern_key
    )

    SELECT
        (SELECT count(*) FROM consumed),
        coalesce(array_agg(r.pattern_type), '{}'),
        coalesce(array_agg(r.pattern_key), '{}')
    INTO v_consumed, v_types, v_keys
    FROM (SELECT DISTINCT x.pattern_type, x.pattern_key FROM replaced AS x) AS r;

    WITH touched AS (
        SELECT
            t.pattern_type,
            t.pattern_key
        FROM unnest(v_types, v_keys) AS t (pattern_type, pattern_key)
    ),

    sums AS (
        SELECT
            ip.pattern_type,
            ip.pattern_key,
            count(*)::integer AS instances,
            sum(ip.occurrences)::bigint AS occurrences,
            sum(ip.successes)::bigint AS successes,
            sum(ip.failures)::bigint AS failures,
            sum(ip.mean_score * ip.score_count) FILTER (WHERE ip.score_count > 0 AND ip.mean_score IS NOT NULL)
            / nullif(sum(ip.score_count) FILTER (WHERE ip.score_count > 0 AND ip.mean_score IS NOT NULL), 0)
                AS mean_score,
            sum(ip.score_count)::bigint AS score_count,
            min(ip.first_seen_at) AS first_seen_at,
            max(ip.last_seen_at) AS last_seen_at,
            (
                SELECT array_agg(DISTINCT c.codebase ORDER BY c.codebase)
                FROM autopilot.central_instance_patterns AS cp, unnest(cp.codebases) AS c (codebase)
                WHERE cp.pattern_type = ip.pattern_type AND cp.pattern_key = ip.pattern_key
            ) AS codebases
        FROM touched AS t
        INNER JOIN autopilot.central_instance_patterns AS ip
            ON t.pattern_type = ip.pattern_type AND t.pattern_key = ip.pattern_key
        GROUP BY ip.pattern_type, ip.pattern_key
    ),

    upserted AS (
        INSERT INTO autopilot.global_patterns AS g (
            pattern_type, pattern_key, instances, occurrences, successes, failures, success_rate, confidence,
            mean_score, score_count, first_seen_at, last_seen_at, codebases, updated_at
        )
        SELECT
            s.pattern_type,
            s.pattern_key,
            s.instances,
            s.occurrences,
            s.successes,
            s.failures,
            s.successes::double precision / nullif(s.successes + s.failures, 0),
            CASE
                WHEN s.successes = 0 THEN 0
                ELSE greatest(0, least(1,
                    (s.successes::double precision + 1.9208::double precision
                     - 1.96::double precision
                     * sqrt(s.successes::double precision * s.failures / (s.successes + s.failures)
                            + 0.9604::double precision))
                    / ((s.successes + s.failures)::double precision + 3.8416::double precision)))
            END,
            s.mean_score,
            s.score_count,
            s.first_seen_at,
            s.last_seen_at,
            coalesce(s.codebases, '{}'),
            now()
        FROM sums AS s
        ON CONFLICT (pattern_type, pattern_key) DO UPDATE
            SET
                instances = excluded.instances,
                occurrences = excluded.occurrences,
                successes = excluded.successes,
                failures = excluded.failures,
                success_rate = excluded.success_rate,
                confidence = excluded.confidence,
                mean_score = excluded.mean_score,
                score_count = excluded.score_count,
                first_seen_at = excluded.first_seen_at,
                last_seen_at = excluded.last_seen_at,
                codebases = excluded.codebases,
                updated_at = excluded.updated_at
        RETURNING 1
    )

    SELECT count(*) INTO v_global FROM upserted;

    RETURN jsonb_build_object(
        'rows_affected', v_global,
        'message', format(
            'merged %s pushed %s: %s global %s recomputed',
            v_consumed, CASE WHEN v_consumed = 1 THEN 'row' ELSE 'rows' END,
            v_global, CASE WHEN v_global = 1 THEN 'pattern' ELSE 'patterns' END
        ),
        'consumed', v_consumed,
        'patterns_changed', cardinality(v_types)
    );
END;
$$;

COMMENT ON FUNCTION autopilot.merge_central_patterns() IS
'centralcloud-merge (central database): consumes autopilot.central_pattern_inbox, keeps each instance''s newest totals per pattern in autopilot.central_instance_patterns (a re-sent row replaces, never adds) and recomputes the touched autopilot.global_patterns over all instances. Returns the job summary (rows_affected = global patterns recomputed).';

REVOKE ALL ON FUNCTION autopilot._stamp_pattern_change() FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.sync_learning_to_centralcloud() FROM PUBLIC;
REVOKE ALL ON FUNCTION autopilot.merge_central_patterns() FROM PUBLIC;
REVOKE ALL ON autopilot.central_pattern_inbox, autopilot.central_instance_patterns, autopilot.global_patterns,
autopilot.centralcloud_info FROM PUBLIC;
REVOKE ALL ON SEQUENCE autopilot.central_pattern_inbox_id_seq FROM PUBLIC;

INSERT INTO autopilot.settings (name, value_type, default_value, min_value, max_value, description)
VALUES
(
    'centralcloud.server', 'text', 'autopilot_central', NULL, NULL,
    'centralcloud-sync pushes through this postgres_fdw foreign server (and the job owner''s user mapping); '
    || 'while it does not exist, the job does nothing.'
),
(
    'centralcloud.instance_id', 'text', '', NULL, NULL,
    'centralcloud-sync tags what it pushes with this name, unique among the instances of one central database; '
    || 'required once the foreign server exists.'
)
ON CONFLICT (name) DO UPDATE
    SET
        value_type = excluded.value_type,
        default_value = excluded.default_value,
        min_value = excluded.min_value,
        max_value = excluded.max_value,
        description = excluded.description;

INSERT INTO autopilot.job_catalog (name, side, kind, schedule, only_on_dow, target, description)
VALUES (
    'centralcloud-merge', 'database', 'function', '5-59/10 * * * *', NULL,
    'autopilot.merge_central_patterns',
    'Central database: merge the patterns instances pushed into global patterns (between their pushes).'
);

-- vacuum-analyze lists every table (composable with the other fragments' replace() calls)
UPDATE autopilot.job_catalog
SET
    target = replace(
        replace(
            target,
            'autopilot.backup_metadata_archive, ',
            'autopilot.backup_metadata_archive, autopilot.central_instance_patterns, '
            || 'autopilot.central_pattern_inbox, '
        ),
        'autopilot.code_chunks, ', 'autopilot.code_chunks, autopilot.global_patterns, '
    )
WHERE name = 'vacuum-analyze' AND target NOT LIKE '%autopilot.global_patterns%';
-- ===== end of the centralcloud fragment =====
