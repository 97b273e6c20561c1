"""Knowledge and templates: the domain code of knowledge-migration, templates-data-load, template-sync and
template-embed, and of ``autopilot knowledge`` / ``autopilot search --knowledge``.

* :mod:`.documents`: strict JSON, safe YAML, the template schema (``template.schema.json``);
* :mod:`.templates`: template files into ``autopilot.knowledge_artifacts`` (with their versions);
* :mod:`.migration`: knowledge-migration, the templates directory;
* :mod:`.templates_data`: templates-data-load, the templates_data directory into ``autopilot.template_data``;
* :mod:`.git` and :mod:`.sync`: template-sync, a git repository's templates, change by change;
* :mod:`.embed`: template-embed;
* :mod:`.queries`: listing, showing and searching artifacts.
"""

from __future__ import annotations

import os
import threading

from ..errors import AutopilotError


class KnowledgeError(AutopilotError):
    """A knowledge job cannot run (its directory unreadable, git failing): it fails and changes nothing."""


class Cancelled(KnowledgeError):
    """The job was cancelled or passed its deadline: its transaction is rolled back."""


def check_cancelled(cancelled: threading.Event | None, what: str) -> None:
    if cancelled is not None and cancelled.is_set():
        raise Cancelled(
            f"{what} stopped: the job was cancelled or ran past its deadline; nothing was changed"
        )


def setting(conn, name: str) -> str:
    """A setting's value in force (the DBA's, else its default)."""
    return conn.execute("SELECT autopilot.get_setting(%s)", [name]).fetchone()[0]


def directory_setting(conn, name: str, given: str | None) -> tuple[str, bool]:
    """The directory a loader reads (``given``, else the setting's value), and whether to read it: False
    when it does not exist and is the setting's default (not configured: nothing to load). A directory
    the DBA named that does not exist is an error (a typo must not pass for an empty directory)."""
    value, default = conn.execute(
        "SELECT autopilot.get_setting(s.name), s.default_value FROM autopilot.settings AS s"
        " WHERE s.name = %s",
        [name],
    ).fetchone()
    directory = given or value
    if os.path.isdir(directory):
        return directory, True
    if given is None and value == default and not os.path.exists(directory):
        return directory, False
    raise KnowledgeError(
        f"{name} is {directory}, which is not a directory; nothing was loaded",
        hint=f"Create it, or set {name} to the directory to load: autopilot settings {name} /path",
    )
