-- The whole privilege model of autopilot. The extension creates no roles.
-- Nothing is executable or readable by PUBLIC: the owner (the installing role)
-- grants what other roles need; the README shows the grants for a runner role
-- and a read-only role. No function is SECURITY DEFINER.
REVOKE ALL ON SCHEMA autopilot FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA autopilot FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA autopilot FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA autopilot FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA autopilot FROM PUBLIC;
