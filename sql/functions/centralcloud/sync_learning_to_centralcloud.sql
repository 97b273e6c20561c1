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
            ERRCODE = 'object_not_in_prerequisite_state',
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
            USING ERRCODE = 'feature_not_supported', HINT = 'Upgrade autopilot where it is older, so that both speak one protocol.';
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
