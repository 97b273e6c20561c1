CREATE FUNCTION autopilot.drop_vector_index(p_embedding_model text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Drops the HNSW index autopilot.create_vector_index() made for one embedding
-- model, usable or not (a build interrupted leaves an invalid one); returns
-- whether there was one. Code search of that model ranks exactly from then on.
-- DROP INDEX in a function cannot be CONCURRENTLY: it waits for the searches
-- running on code_chunks and blocks new ones until it is done (a moment); at
-- top level, DROP INDEX CONCURRENTLY autopilot.<name> does not.
DECLARE
    v_name text;
BEGIN
    IF p_embedding_model IS NULL THEN
        RAISE EXCEPTION 'drop_vector_index needs an embedding model'
        USING ERRCODE = 'null_value_not_allowed';
    END IF;
    v_name := (SELECT x.index_name FROM autopilot._vector_index(p_embedding_model) AS x);
    IF NOT EXISTS (
        SELECT FROM pg_index AS i
        WHERE
            i.indexrelid = to_regclass(format('autopilot.%I', v_name))
            AND i.indrelid = 'autopilot.code_chunks'::regclass
    ) THEN
        RETURN false;
    END IF;
    EXECUTE format('DROP INDEX autopilot.%I', v_name);
    RETURN true;
END;
$$;

COMMENT ON FUNCTION autopilot.drop_vector_index(text) IS
'Drops the HNSW index of one embedding model''s code chunks (made by create_vector_index), if there is one; returns whether it did. Search of that model ranks exactly again.';
