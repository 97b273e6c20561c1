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
