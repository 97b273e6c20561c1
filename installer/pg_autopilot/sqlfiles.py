"""The extension's SQL, shipped as package data: the control file and every version's scripts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from .errors import VersionError

_SCRIPT = re.compile(r"^autopilot--(\d+\.\d+\.\d+)\.sql$")
_UPDATE = re.compile(r"^autopilot--(\d+\.\d+\.\d+)--(\d+\.\d+\.\d+)\.sql$")


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def _source_root() -> Path | None:
    # running from a source checkout (not installed): control/ and extension/ beside installer/
    root = Path(__file__).resolve().parents[2]
    return root if (root / "control" / "autopilot.control").exists() else None


@dataclass(frozen=True)
class SqlBundle:
    control: str
    scripts: dict[str, str]  # version -> full install script
    updates: dict[tuple[str, str], str]  # (from, to) -> upgrade script

    @property
    def default_version(self) -> str:
        match = re.search(r"^default_version\s*=\s*'([^']+)'", self.control, re.M)
        if not match:
            raise VersionError("the packaged control file has no default_version")
        return match.group(1)

    @property
    def versions(self) -> list[str]:
        known = set(self.scripts) | {v for pair in self.updates for v in pair}
        return sorted(known, key=parse_version)

    def install_script(self, version: str) -> str:
        if version not in self.scripts:
            raise VersionError(
                f"this package has no install script for autopilot {version}",
                hint=f"Packaged versions: {', '.join(sorted(self.scripts, key=parse_version))}.",
            )
        return strip_psql_guard(self.scripts[version])

    def upgrade_path(self, start: str, target: str) -> list[tuple[str, str]]:
        """The chain of update scripts from start to target (shortest), as pg_extension would choose."""
        if start == target:
            return []
        frontier: list[list[tuple[str, str]]] = [[]]
        seen = {start}
        while frontier:
            nxt: list[list[tuple[str, str]]] = []
            for path in frontier:
                here = path[-1][1] if path else start
                for a, b in sorted(self.updates):
                    if a == here and b not in seen:
                        step = [*path, (a, b)]
                        if b == target:
                            return step
                        seen.add(b)
                        nxt.append(step)
            frontier = nxt
        raise VersionError(
            f"no upgrade path from autopilot {start} to {target} in this package",
            hint="Install a pg-autopilot release that carries the upgrade scripts.",
        )


def strip_psql_guard(script: str) -> str:
    """Drop the ``\\echo ... \\quit`` line that keeps psql from running a script by hand."""
    return "\n".join(line for line in script.splitlines() if not line.startswith("\\echo"))


@cache
def bundle() -> SqlBundle:
    packaged = resources.files("pg_autopilot") / "sql"
    if packaged.joinpath("autopilot.control").is_file():
        control = packaged.joinpath("autopilot.control").read_text()
        files = {f.name: f.read_text() for f in packaged.joinpath("extension").iterdir()}
    else:
        root = _source_root()
        if root is None:
            raise VersionError("the autopilot SQL is missing from this installation of pg-autopilot")
        control = (root / "control" / "autopilot.control").read_text()
        files = {p.name: p.read_text() for p in (root / "extension").glob("autopilot--*.sql")}
    scripts, updates = {}, {}
    for name, text in files.items():
        if m := _SCRIPT.match(name):
            scripts[m.group(1)] = text
        elif m := _UPDATE.match(name):
            updates[(m.group(1), m.group(2))] = text
    return SqlBundle(control=control, scripts=scripts, updates=updates)
