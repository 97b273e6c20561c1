-- What an instance checks before it pushes: the central database's autopilot
-- and the centralcloud protocol it speaks (the shape of central_pattern_inbox).
CREATE VIEW autopilot.centralcloud_info AS
SELECT
    autopilot.version() AS extension_version,
    1 AS protocol;

COMMENT ON VIEW autopilot.centralcloud_info IS
'Central database: the autopilot version and the centralcloud protocol (1: central_pattern_inbox as of 0.2.0) that instances check, through postgres_fdw, before pushing.';
