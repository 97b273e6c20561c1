"""pg_autopilot: installs, upgrades and runs the ``autopilot`` PostgreSQL extension."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    __version__: str


def __getattr__(name: str) -> str:
    """``pg_autopilot.__version__``, read from the installed package's metadata on first use (PEP 562):
    not at every start of the CLI (`autopilot check` does not print it)."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("pg-autopilot")
    except PackageNotFoundError:  # running from a source tree
        found = "0+unknown"
    globals()["__version__"] = found
    return found
