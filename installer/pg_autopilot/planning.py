"""The work plan: a YAML file of items that planning-seed turns into tasks (autopilot.seed_plan).

The file (its path is the setting ``planning.plan_file``)::

    items:
      - key: schema-audit            # required: a stable name, the item's identity across runs
        title: Audit the schema      # required
        required_skills: [sql]       # an agent needs every one of them to take the task
        priority: 5                  # higher first (default 0)
      - key: index-review
        title: Review the indexes
        required_skills: [sql, review]
        depends_on: [schema-audit]   # not given out before schema-audit has succeeded
        details: {ticket: OPS-42}    # copied into tasks.details

Each item becomes one task the first time its key is seen; a task seeded before is never changed,
so extending the plan adds only the new items and nobody's progress is reset. The database checks
the items (:func:`seed` passes them whole to ``autopilot.seed_plan``); this module reads the file
safely and refuses YAML that would hide a mistake: a field written twice in one item, dates and
times read as something else than the text written.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from typing import Any

import psycopg
import yaml

from .errors import AutopilotError

MAX_PLAN_BYTES = 16 * 1024 * 1024
DEFAULT_SETTING = "planning.plan_file"


class PlanError(AutopilotError):
    """The plan file cannot be read, is not valid YAML, or describes an invalid plan: nothing was seeded."""


@dataclass(frozen=True)
class SeedResult:
    path: str
    summary: dict[str, Any] | None  # autopilot.seed_plan's, None when there was no plan file

    def line(self) -> str:
        if self.summary is None:
            return f"no plan file at {self.path}: nothing to seed (set {DEFAULT_SETTING})"
        return f"{self.path}: {self.summary['message']}"


class _PlanLoader(yaml.SafeLoader):
    """YAML's safe loader, but a mapping key written twice is an error (PyYAML keeps the last one
    silently) and timestamps stay the text written (a title such as 2024-05-01 is not a date)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found {key!r} twice (first at line {seen[key].line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_PlanLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read_plan(path: str) -> list[Any]:
    """The items of the plan file at ``path`` (raises :class:`PlanError`; FileNotFoundError when
    there is no file). The file is opened without following a FIFO into a hang and read only when it
    is a regular file of at most 16 MiB."""
    data = _read_regular(path)
    try:
        document = yaml.load(data, Loader=_PlanLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as exc:
        raise PlanError(f"plan file {path} is not valid YAML: {_yaml_problem(exc)}") from exc
    if not isinstance(document, dict) or set(document) != {"items"}:
        raise PlanError(
            f"plan file {path}: the document must be a mapping with one field, items",
            hint="items: [ {key: ..., title: ...}, ... ] (see the README, 'The work plan')",
        )
    items = document["items"]
    if items is None:
        return []
    if not isinstance(items, list):
        raise PlanError(f"plan file {path}: items must be a list of items, not {type(items).__name__}")
    return items


def seed(conn: psycopg.Connection, path: str | None = None) -> SeedResult:
    """Seeds the plan at ``path`` (default: the setting planning.plan_file) in one transaction.
    A missing file at the setting's default path is no plan (nothing to seed); a missing file at a
    path a DBA set, or given here, is a :class:`PlanError`, as is an invalid plan (the database's
    message names the item)."""
    explicit = path is not None
    if path is None:
        path, explicit = conn.execute(
            "SELECT autopilot.get_setting(%s),"
            " EXISTS (SELECT FROM autopilot.setting_values AS v WHERE v.name = %s)",
            [DEFAULT_SETTING, DEFAULT_SETTING],
        ).fetchone()
    try:
        items = read_plan(path)
    except FileNotFoundError:
        if explicit:
            raise PlanError(
                f"plan file {path} does not exist",
                hint=f"create it, or point {DEFAULT_SETTING} at the plan "
                f"(SELECT autopilot.set_setting('{DEFAULT_SETTING}', '/path/plan.yaml'))",
            ) from None
        return SeedResult(path, None)
    try:
        text = json.dumps(items)
    except (TypeError, ValueError) as exc:
        raise PlanError(f"plan file {path}: a value JSON cannot hold ({exc})") from exc
    try:
        with conn.transaction():
            summary = conn.execute("SELECT autopilot.seed_plan(%s::jsonb)", [text]).fetchone()[0]
    except psycopg.errors.InvalidParameterValue as exc:
        diag = exc.diag
        detail = f" ({diag.message_detail})" if diag.message_detail else ""
        raise PlanError(
            f"plan file {path}: {diag.message_primary}{detail}; nothing was seeded",
            hint=diag.message_hint,
            sqlstate=diag.sqlstate,
        ) from exc
    return SeedResult(path, summary)


def _read_regular(path: str) -> bytes:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise PlanError(f"plan file {path} cannot be opened: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise PlanError(f"plan file {path} is not a regular file")
    with os.fdopen(descriptor, "rb") as handle:
        data = handle.read(MAX_PLAN_BYTES + 1)
    if len(data) > MAX_PLAN_BYTES:
        raise PlanError(f"plan file {path} is larger than {MAX_PLAN_BYTES} bytes")
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where, without quoting the file (a path set by mistake to another file must
    not copy its lines into the job's error)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        context = f"{exc.context}: " if exc.context else ""
        mark = exc.problem_mark
        return f"{context}{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return type(exc).__name__
