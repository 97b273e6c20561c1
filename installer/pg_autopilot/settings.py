"""autopilot's settings: typed and range-checked in SQL (``autopilot.set_setting``,
``get_setting``, ``reset_setting``); this is their Python face for the CLI."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class Setting:
    name: str
    value: str  # the value in force: the DBA's, else the default
    default: str
    value_type: str
    description: str

    @property
    def changed(self) -> bool:
        return self.value != self.default


def settings(
    conn: psycopg.Connection, name: str | None = None, value: str | None = None, reset: bool = False
) -> list[Setting]:
    """Sets ``name`` to ``value`` (or back to its default with ``reset``) when given, then returns
    the settings (``name`` alone, or all), in one transaction. An unknown name or a value out of range
    raises the database's error; nothing is changed then."""
    with conn.transaction():
        if name and reset:
            conn.execute("SELECT autopilot.reset_setting(%s)", [name])
        elif name and value is not None:
            conn.execute("SELECT autopilot.set_setting(%s, %s)", [name, value])
        rows = conn.execute(
            "SELECT s.name, autopilot.get_setting(s.name), s.default_value, s.value_type, s.description "
            "FROM autopilot.settings AS s WHERE %s::text IS NULL OR s.name = %s ORDER BY s.name",
            [name, name],
        ).fetchall()
        if name and not rows:
            conn.execute("SELECT autopilot.get_setting(%s)", [name])  # raises: unknown setting
    return [Setting(*row) for row in rows]
