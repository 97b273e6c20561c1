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
