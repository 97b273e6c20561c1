CREATE FUNCTION autopilot.seed_plan(p_items jsonb)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- planning-seed (the runner reads the plan file and passes its items here).
--
-- p_items: a JSON array of items, each an object with
--   key              required, a non-empty string: the item's stable name
--   title            required, a non-empty string
--   required_skills  an array of non-empty strings (default: none)
--   priority         an integer (default 0; higher is assigned first)
--   depends_on       an array of keys: the item waits until each of those
--                    tasks has succeeded (a key of the plan, or of a task
--                    seeded before)
--   details          an object, copied into tasks.details
-- (a field whose value is null counts as absent).
--
-- Each item becomes one task (status pending, tasks.plan_key = its key) the
-- first time it is seen; an item whose key is already a task is left as that
-- task is -- its status, agent, title, priority and dependencies are never
-- changed, so running the seed again or with a longer plan only adds the new
-- items and never resets anyone's progress. Items that differ from their
-- task are named in the summary. New items' depends_on become rows of
-- autopilot.task_dependencies; an existing task gains no dependency (so no
-- dependency cycle can form through tasks seeded earlier).
--
-- The plan is checked whole before anything is written: an item that is not
-- an object, an unknown field, a missing or mistyped field, a key used twice,
-- a depends_on naming an unknown key, and a dependency cycle (an item
-- depending on itself included) each raise invalid_parameter_value naming the
-- item, and the transaction writes nothing. Runs are serialised by the job's
-- advisory lock, so two seeds at once add each item once.
DECLARE
    c_fields CONSTANT text[] := ARRAY['key', 'title', 'required_skills', 'priority', 'depends_on', 'details'];
    c_fields_hint CONSTANT text := 'An item''s fields: key and title (required), required_skills, priority, '
        || 'depends_on, details.';
    v_items jsonb;
    v_item jsonb;
    v_n bigint;
    v_label text;
    v_field text;
    v_keys text[];
    v_from text[];
    v_to text[];
    v_duplicate text;
    v_positions bigint[];
    v_missing text;
    v_cyclic text[];
    v_cycle text[];
    v_new_ids bigint[];
    v_edges bigint;
    v_existing bigint;
    v_differing text[];
    v_message text;
BEGIN
    IF p_items IS NULL OR jsonb_typeof(p_items) <> 'array' THEN
        RAISE EXCEPTION 'a plan is a list of items, not %',
            CASE jsonb_typeof(p_items) WHEN 'object' THEN 'a mapping' ELSE coalesce('a ' || jsonb_typeof(p_items), 'NULL') END
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass a JSON array of objects (the plan file''s items).';
    END IF;

    PERFORM pg_catalog.pg_advisory_xact_lock(autopilot._job_lock_key('planning-seed'));

    -- each item on its own: an object of known fields with values of the right type
    FOR v_item, v_n IN
        SELECT e.item, e.n FROM pg_catalog.jsonb_array_elements(p_items) WITH ORDINALITY AS e (item, n)
    LOOP
        IF pg_catalog.jsonb_typeof(v_item) <> 'object' THEN
            RAISE EXCEPTION 'plan item #% is not a mapping of fields but a %', v_n,
                CASE pg_catalog.jsonb_typeof(v_item) WHEN 'array' THEN 'list' ELSE pg_catalog.jsonb_typeof(v_item) END
                USING ERRCODE = 'invalid_parameter_value', HINT = c_fields_hint;
        END IF;
        v_item := (
            SELECT coalesce(pg_catalog.jsonb_object_agg(f.key, f.value), '{}'::jsonb)
            FROM pg_catalog.jsonb_each(v_item) AS f (key, value)
            WHERE pg_catalog.jsonb_typeof(f.value) <> 'null'
        );
        IF pg_catalog.jsonb_typeof(v_item -> 'key') = 'string' THEN
            v_label := pg_catalog.format('plan item "%s"', v_item ->> 'key');
        ELSE
            v_label := pg_catalog.format('plan item #%s', v_n);
        END IF;

        SELECT f.key INTO v_field
        FROM pg_catalog.jsonb_object_keys(v_item) AS f (key)
        WHERE f.key <> ALL (c_fields)
        ORDER BY f.key
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION '%: unknown field "%"', v_label, v_field
                USING ERRCODE = 'invalid_parameter_value', HINT = c_fields_hint;
        END IF;

        IF NOT v_item ? 'key' THEN
            RAISE EXCEPTION '%: no key', v_label
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Every item needs a key: a stable name that identifies it across runs of the seed.';
        ELSIF pg_catalog.jsonb_typeof(v_item -> 'key') <> 'string'
            OR pg_catalog.btrim(v_item ->> 'key') = ''
            OR pg_catalog.length(v_item ->> 'key') > 200
            OR (v_item ->> 'key') ~ '[[:cntrl:]]' THEN
            RAISE EXCEPTION '%: the key must be a non-empty string of at most 200 characters without control characters', v_label
                USING ERRCODE = 'invalid_parameter_value', HINT = 'Quote a key that YAML would read as a number.';
        END IF;

        IF pg_catalog.jsonb_typeof(v_item -> 'title') IS DISTINCT FROM 'string'
            OR pg_catalog.btrim(v_item ->> 'title') = '' THEN
            RAISE EXCEPTION '%: the title must be a non-empty string', v_label
                USING ERRCODE = 'invalid_parameter_value', HINT = c_fields_hint;
        END IF;

        IF v_item ? 'required_skills' AND (
            pg_catalog.jsonb_typeof(v_item -> 'required_skills') <> 'array'
            OR EXISTS (
                SELECT
                FROM pg_catalog.jsonb_array_elements(v_item -> 'required_skills') AS s (skill)
                WHERE pg_catalog.jsonb_typeof(s.skill) <> 'string' OR pg_catalog.btrim(s.skill #>> '{}') = ''
            )
        ) THEN
            RAISE EXCEPTION '%: required_skills must be a list of non-empty strings', v_label
                USING ERRCODE = 'invalid_parameter_value';
        END IF;

        IF v_item ? 'priority' AND (
            pg_catalog.jsonb_typeof(v_item -> 'priority') <> 'number'
            OR (v_item ->> 'priority')::numeric <> pg_catalog.trunc((v_item ->> 'priority')::numeric)
            OR (v_item ->> 'priority')::numeric NOT BETWEEN -2147483648 AND 2147483647
        ) THEN
            RAISE EXCEPTION '%: priority must be a whole number (a 32-bit integer)', v_label
                USING ERRCODE = 'invalid_parameter_value';
        END IF;

        IF v_item ? 'depends_on' AND (
            pg_catalog.jsonb_typeof(v_item -> 'depends_on') <> 'array'
            OR EXISTS (
                SELECT
                FROM pg_catalog.jsonb_array_elements(v_item -> 'depends_on') AS d (dependency)
                WHERE pg_catalog.jsonb_typeof(d.dependency) <> 'string'
            )
        ) THEN
            RAISE EXCEPTION '%: depends_on must be a list of item keys', v_label
                USING ERRCODE = 'invalid_parameter_value', HINT = 'Quote a key that YAML would read as a number.';
        END IF;

        IF v_item ? 'details' AND pg_catalog.jsonb_typeof(v_item -> 'details') <> 'object' THEN
            RAISE EXCEPTION '%: details must be a mapping', v_label
                USING ERRCODE = 'invalid_parameter_value';
        END IF;

        v_items := coalesce(v_items, '[]'::jsonb) || pg_catalog.jsonb_build_array(v_item);
    END LOOP;
    v_items := coalesce(v_items, '[]'::jsonb);

    -- the plan as a whole: unique keys, known dependencies, no cycle
    SELECT e.item ->> 'key', pg_catalog.array_agg(e.n ORDER BY e.n)
    INTO v_duplicate, v_positions
    FROM pg_catalog.jsonb_array_elements(v_items) WITH ORDINALITY AS e (item, n)
    GROUP BY e.item ->> 'key'
    HAVING pg_catalog.count(*) > 1
    ORDER BY pg_catalog.min(e.n)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'plan item "%" appears more than once (items #%)', v_duplicate,
            pg_catalog.array_to_string(v_positions, ', #')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Each item needs a key of its own.';
    END IF;

    SELECT pg_catalog.array_agg(e.item ->> 'key' ORDER BY e.n)
    INTO v_keys
    FROM pg_catalog.jsonb_array_elements(v_items) WITH ORDINALITY AS e (item, n);
    v_keys := coalesce(v_keys, '{}'::text[]);

    SELECT
        coalesce(pg_catalog.array_agg(x.from_key ORDER BY x.n, x.to_key), '{}'::text[]),
        coalesce(pg_catalog.array_agg(x.to_key ORDER BY x.n, x.to_key), '{}'::text[])
    INTO v_from, v_to
    FROM (
        SELECT DISTINCT
            e.n,
            e.item ->> 'key' AS from_key,
            d.to_key
        FROM pg_catalog.jsonb_array_elements(v_items) WITH ORDINALITY AS e (item, n)
        CROSS JOIN LATERAL pg_catalog.jsonb_array_elements_text(
            coalesce(e.item -> 'depends_on', '[]'::jsonb)
        ) AS d (to_key)
    ) AS x;

    SELECT pg_catalog.format('plan item "%s" depends on "%s", which is neither in the plan nor seeded before', x.f, x.t)
    INTO v_missing
    FROM unnest(v_from, v_to) WITH ORDINALITY AS x (f, t, n)
    WHERE x.t <> ALL (v_keys)
      AND NOT EXISTS (SELECT FROM autopilot.tasks AS t WHERE t.plan_key = x.t)
    ORDER BY x.n
    LIMIT 1;
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION '%', v_missing
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Add that item to the plan, or fix the key.';
    END IF;

    -- the items on a cycle: those that reach themselves (UNION: each pair once, so this ends)
    WITH RECURSIVE edges AS (
        SELECT x.f, x.t
        FROM unnest(v_from, v_to) AS x (f, t)
        WHERE x.t = ANY (v_keys)
    ),

    reach (start_key, node) AS (
        SELECT e.f, e.t FROM edges AS e
        UNION
        SELECT r.start_key, e.t
        FROM reach AS r
        INNER JOIN edges AS e ON r.node = e.f
    )

    SELECT pg_catalog.array_agg(DISTINCT r.start_key ORDER BY r.start_key)
    INTO v_cyclic
    FROM reach AS r
    WHERE r.start_key = r.node;

    IF v_cyclic IS NOT NULL THEN
        -- one cycle through the first of them, to name in the message (simple paths within the cycles)
        WITH RECURSIVE edges AS (
            SELECT x.f, x.t
            FROM unnest(v_from, v_to) AS x (f, t)
            WHERE x.f = ANY (v_cyclic) AND x.t = ANY (v_cyclic)
        ),

        walk (node, path) AS (
            SELECT e.t, ARRAY[e.f, e.t]
            FROM edges AS e
            WHERE e.f = v_cyclic[1]
            UNION ALL
            SELECT e.t, w.path || e.t
            FROM walk AS w
            INNER JOIN edges AS e ON w.node = e.f
            WHERE w.node <> v_cyclic[1] AND e.t <> ALL (w.path[2:])
        )

        SELECT w.path INTO v_cycle
        FROM walk AS w
        WHERE w.node = v_cyclic[1]
        LIMIT 1;
        RAISE EXCEPTION 'plan items form a dependency cycle: "%"', pg_catalog.array_to_string(v_cycle, '" -> "')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format(
                      'Each arrow reads "depends on". Items on a cycle: %s.',
                      pg_catalog.array_to_string(v_cyclic, ', ')
                  ),
                  HINT = 'Remove one of these depends_on entries: no task of a cycle could ever start.';
    END IF;

    -- the new items, in plan order (ids follow it: the tie-break of equal priorities)
    WITH items AS (
        SELECT e.item, e.n
        FROM pg_catalog.jsonb_array_elements(v_items) WITH ORDINALITY AS e (item, n)
    ),

    inserted AS (
        INSERT INTO autopilot.tasks (title, required_skills, priority, details, plan_key)
        SELECT
            i.item ->> 'title',
            ARRAY(SELECT pg_catalog.jsonb_array_elements_text(coalesce(i.item -> 'required_skills', '[]'::jsonb))),
            coalesce((i.item ->> 'priority')::integer, 0),
            coalesce(i.item -> 'details', '{}'::jsonb),
            i.item ->> 'key'
        FROM items AS i
        WHERE NOT EXISTS (SELECT FROM autopilot.tasks AS t WHERE t.plan_key = i.item ->> 'key')
        ORDER BY i.n
        ON CONFLICT (plan_key) DO NOTHING
        RETURNING id
    )

    SELECT coalesce(pg_catalog.array_agg(s.id), '{}'::bigint[]) INTO v_new_ids FROM inserted AS s;

    INSERT INTO autopilot.task_dependencies (task_id, depends_on_task_id)
    SELECT DISTINCT
        t.id,
        d.id
    FROM unnest(v_from, v_to) AS x (f, t)
    INNER JOIN autopilot.tasks AS t ON x.f = t.plan_key
    INNER JOIN autopilot.tasks AS d ON x.t = d.plan_key
    WHERE t.id = ANY (v_new_ids)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_edges = ROW_COUNT;

    -- the items already seeded, and those of them the plan now describes otherwise
    WITH items AS (
        SELECT e.item, e.n
        FROM pg_catalog.jsonb_array_elements(v_items) WITH ORDINALITY AS e (item, n)
    ),

    seeded AS (
        SELECT
            i.n,
            i.item,
            t.id,
            t.title,
            t.required_skills,
            t.priority,
            t.details
        FROM items AS i
        INNER JOIN autopilot.tasks AS t ON i.item ->> 'key' = t.plan_key
        WHERE t.id <> ALL (v_new_ids)
    )

    SELECT
        pg_catalog.count(*),
        pg_catalog.array_agg(s.item ->> 'key' ORDER BY s.n) FILTER (
            WHERE s.title IS DISTINCT FROM s.item ->> 'title'
            OR s.required_skills IS DISTINCT FROM ARRAY(
                SELECT pg_catalog.jsonb_array_elements_text(coalesce(s.item -> 'required_skills', '[]'::jsonb))
            )
            OR s.priority IS DISTINCT FROM coalesce((s.item ->> 'priority')::integer, 0)
            OR s.details IS DISTINCT FROM coalesce(s.item -> 'details', '{}'::jsonb)
            OR ARRAY(
                SELECT d.plan_key
                FROM autopilot.task_dependencies AS td
                INNER JOIN autopilot.tasks AS d ON td.depends_on_task_id = d.id
                WHERE td.task_id = s.id
                ORDER BY d.plan_key
            ) IS DISTINCT FROM ARRAY(
                SELECT DISTINCT k.key
                FROM pg_catalog.jsonb_array_elements_text(coalesce(s.item -> 'depends_on', '[]'::jsonb)) AS k (key)
                ORDER BY k.key
            )
        )
    INTO v_existing, v_differing
    FROM seeded AS s;

    v_message := pg_catalog.format(
        'plan of %s %s: %s %s added (%s %s), %s already seeded',
        pg_catalog.cardinality(v_keys), CASE WHEN pg_catalog.cardinality(v_keys) = 1 THEN 'item' ELSE 'items' END,
        pg_catalog.cardinality(v_new_ids), CASE WHEN pg_catalog.cardinality(v_new_ids) = 1 THEN 'task' ELSE 'tasks' END,
        v_edges, CASE WHEN v_edges = 1 THEN 'dependency' ELSE 'dependencies' END,
        v_existing
    );
    IF v_differing IS NOT NULL THEN
        v_message := v_message || pg_catalog.format(
            '; %s of them %s from the plan and %s kept as seeded: "%s"',
            pg_catalog.cardinality(v_differing),
            CASE WHEN pg_catalog.cardinality(v_differing) = 1 THEN 'differs' ELSE 'differ' END,
            CASE WHEN pg_catalog.cardinality(v_differing) = 1 THEN 'is' ELSE 'are' END,
            pg_catalog.array_to_string(v_differing[1:10], '", "')
        ) || CASE WHEN pg_catalog.cardinality(v_differing) > 10 THEN ' ...' ELSE '' END;
    END IF;

    RETURN pg_catalog.jsonb_build_object(
        'items', pg_catalog.cardinality(v_keys),
        'added', pg_catalog.cardinality(v_new_ids),
        'dependencies_added', v_edges,
        'existing', v_existing,
        'differing', coalesce(pg_catalog.to_jsonb(v_differing), '[]'::jsonb),
        'message', v_message
    );
END;
$$;

COMMENT ON FUNCTION autopilot.seed_plan(jsonb) IS
'planning-seed: adds each item of a plan (a JSON array of {key, title, required_skills, priority, depends_on, details}) as a pending task once, by its key (tasks.plan_key), with its dependencies (autopilot.task_dependencies); items already seeded are left as they are (their progress is never reset) and those that differ are named. The whole plan is checked first: an unknown field, a mistyped value, a key used twice, an unknown dependency or a cycle raises invalid_parameter_value naming the item, and nothing is written.';
