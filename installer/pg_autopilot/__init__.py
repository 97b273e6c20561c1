"""pg_autopilot: installs, upgrades and runs the ``autopilot`` PostgreSQL extension."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pg-autopilot")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"
