"""knowledge-migration, templates-data-load and template-embed on a real server, with their bad input, and
`autopilot knowledge list/show` and `autopilot search --knowledge` over what they wrote.

The workers are called as the runner calls them (args, a JobContext); the embedder is the hashing one
(deterministic, instant). template-sync, which needs git repositories, is tests/py/test_template_sync.py.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import psycopg
import pytest
from helpers import flat

from pg_autopilot.knowledge import Cancelled, KnowledgeError
from pg_autopilot.knowledge.documents import template_schema
from pg_autopilot.knowledge.migration import migrate
from pg_autopilot.knowledge.templates_data import load
from pg_autopilot.workers import REGISTRY
from pg_autopilot.workers.knowledge_migration import knowledge_migration
from pg_autopilot.workers.registry import JobContext
from pg_autopilot.workers.template_embed import template_embed
from pg_autopilot.workers.templates_data_load import templates_data_load

GENSERVER = {
    "type": "code_template",
    "name": "elixir-genserver",
    "description": "A GenServer skeleton with init, handle_call and a supervisor child spec",
    "language": "elixir",
    "tags": ["elixir", "otp", "genserver"],
    "content": "defmodule MyApp.Worker do\n  use GenServer\nend\n",
}
REVIEW = {
    "type": "prompt",
    "name": "code-review",
    "description": "Review a pull request for correctness, naming and missing tests",
    "content": {"system": "You are a careful reviewer.", "checklist": ["naming", "tests", "errors"]},
}
RETRY = {
    "type": "code_template",
    "name": "python-retry",
    "description": "Retry a failing call with exponential backoff and jitter",
    "language": "python",
    "content": "def retry(call, attempts=5):\n    ...\n",
}


def job_context(dsn: str, cancelled: threading.Event | None = None) -> JobContext:
    context = JobContext(
        job_id=0, attempt=1, queue="default", node="test", dsn=dsn, deadline=time.monotonic() + 600
    )
    if cancelled is not None:
        context.cancelled = cancelled
    return context


def write_json(path: Path, document: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2))
    return path


def one(conn: psycopg.Connection, query: str, params: list | None = None):
    return conn.execute(query, params or []).fetchone()[0]


def written(conn: psycopg.Connection, table: str) -> str:
    """Every row's physical identity (ctid, xmin): unchanged exactly when nothing was written."""
    return one(
        conn,
        f"SELECT md5(coalesce(string_agg(ctid::text || xmin::text, ',' ORDER BY ctid), '')) FROM {table}",
    )


@pytest.fixture
def kdb(new_database, tmp_path):
    """autopilot installed (extension mode), the hashing embedder, and the templates and templates_data
    directories set to empty directories of tmp_path."""
    database = new_database("kn")
    database.install("extension")
    database.templates = tmp_path / "templates"
    database.data = tmp_path / "templates_data"
    database.templates.mkdir()
    database.data.mkdir()
    with database.connect() as conn:
        conn.execute(
            "SELECT autopilot.set_setting('knowledge.templates_directory', %s)", [str(database.templates)]
        )
        conn.execute("SELECT autopilot.set_setting('templates_data.directory', %s)", [str(database.data)])
        conn.execute("SELECT autopilot.set_setting('embeddings.model', 'hashing')")
    return database


def test_the_workers_ship_and_their_jobs_are_enabled(kdb) -> None:
    targets = ("knowledge_migration", "templates_data_load", "template_sync", "template_embed")
    assert set(targets) <= set(REGISTRY)
    with kdb.connect() as conn:
        rows = conn.execute(
            "SELECT name, enabled, disabled_reason FROM autopilot.job_definitions WHERE target = ANY(%s)"
            " ORDER BY name",
            [list(targets)],
        ).fetchall()
    assert rows == [
        ("knowledge-migration", True, None),
        ("template-embed", True, None),
        ("template-sync", True, None),
        ("templates-data-load", True, None),
    ]


def test_the_template_schema_is_a_valid_json_schema() -> None:
    from jsonschema import Draft202012Validator

    schema = template_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["required"] == ["type", "name", "content"]


# -- knowledge-migration ---------------------------------------------------------------------------------


def bad_templates(root: Path) -> None:
    """One template file wrong in each way, and a file that is no template at all."""
    (root / "broken.json").write_text('{"type": "prompt", "name": "x",\n "content": "y",}\n')
    write_json(root / "no-content.json", {"type": "prompt", "name": "no-content"})
    write_json(root / "typo.json", {"type": "prompt", "name": "typo", "content": "c", "descripton": "d"})
    write_json(root / "nul.json", {"type": "prompt", "name": "nul", "content": "a\u0000b"})
    (root / "twice.json").write_text('{"type": "prompt", "name": "twice", "name": "again", "content": "c"}')
    write_json(root / "dup" / "a.json", {"type": "prompt", "name": "same", "content": "a"})
    write_json(root / "dup" / "b.json", {"type": "prompt", "name": "same", "content": "b"})
    (root / "latin1.json").write_bytes(
        '{"type": "prompt", "name": "caf\xe9", "content": "c"}'.encode("latin-1")
    )
    (root / "notes.md").write_text("not a template\n")
    (root / os.fsdecode(b"caf\xe9.json")).write_text(
        json.dumps({"type": "prompt", "name": "n", "content": "c"})
    )


def test_knowledge_migration_loads_the_valid_templates_and_names_each_bad_file(kdb) -> None:
    write_json(kdb.templates / "elixir" / "genserver.json", GENSERVER)
    write_json(kdb.templates / "prompts" / "review.json", REVIEW)
    write_json(kdb.templates / "retry.json", RETRY)
    bad_templates(kdb.templates)

    message = knowledge_migration({}, job_context(kdb.dsn))
    assert message.startswith(
        f"templates {kdb.templates}: 12 template files; 3 added, 0 changed, 0 unchanged;"
    )
    assert "9 not loaded: broken.json: malformed JSON: line 2, column 17: Expecting property name" in message
    # the summary shows five problems, the log each (the worker's log lines)
    assert "and 4 more (the runner's log names each)" in message

    result = migrate(psycopg.connect(kdb.dsn))  # again: the same problems, nothing new
    reasons = {p.path: p.reason for p in result.applied.problems}
    assert reasons == {
        "broken.json": "malformed JSON: line 2, column 17: Expecting property name enclosed in double quotes",
        "caf\\xe9.json": "its name is not UTF-8: not loaded",
        "dup/a.json": "declares prompt 'same', as dup/b.json does too: neither is loaded",
        "dup/b.json": "declares prompt 'same', as dup/a.json does too: neither is loaded",
        "latin1.json": "not UTF-8 text (byte 0xe9 at offset 31)",
        "no-content.json": "does not match the template schema: 'content' is a required property",
        "nul.json": "at $.content: a NUL character (\\u0000), which PostgreSQL's jsonb cannot store",
        "twice.json": "duplicate key 'name' in an object",
        "typo.json": "does not match the template schema: Additional properties are not allowed "
        "('descripton' was unexpected)",
    }
    assert result.applied.counts() == {"added": 0, "changed": 0, "unchanged": 3, "deleted": 0, "invalid": 9}

    with kdb.connect() as conn:
        rows = conn.execute(
            "SELECT artifact_type, name, version, source, source_path, content ->> 'language',"
            " length(content_hash) FROM autopilot.knowledge_artifacts ORDER BY name"
        ).fetchall()
    assert rows == [
        ("prompt", "code-review", 1, "knowledge-migration", "prompts/review.json", None, 64),
        (
            "code_template",
            "elixir-genserver",
            1,
            "knowledge-migration",
            "elixir/genserver.json",
            "elixir",
            64,
        ),
        ("code_template", "python-retry", 1, "knowledge-migration", "retry.json", "python", 64),
    ]


def test_knowledge_migration_is_idempotent_and_keeps_earlier_versions(kdb) -> None:
    genserver = write_json(kdb.templates / "genserver.json", GENSERVER)
    write_json(kdb.templates / "review.json", REVIEW)
    knowledge_migration({}, job_context(kdb.dsn))
    with kdb.connect() as conn:
        before = written(conn, "autopilot.knowledge_artifacts")
        first_id = one(conn, "SELECT id FROM autopilot.knowledge_artifacts WHERE name = 'elixir-genserver'")

    # nothing changed: nothing parsed, nothing written
    assert "0 added, 0 changed, 2 unchanged" in knowledge_migration({}, job_context(kdb.dsn))
    with kdb.connect() as conn:
        assert written(conn, "autopilot.knowledge_artifacts") == before

    # reformatted only: the file's hash is recorded, the content and its version stay
    genserver.write_text(json.dumps(GENSERVER))
    assert "0 added, 0 changed, 2 unchanged" in knowledge_migration({}, job_context(kdb.dsn))
    with kdb.connect() as conn:
        assert one(conn, "SELECT version FROM autopilot.knowledge_artifacts WHERE id = %s", [first_id]) == 1
        assert one(conn, "SELECT count(*) FROM autopilot.knowledge_artifact_versions") == 0

    # changed twice: versions 1 and 2 kept, in order, the artifact is version 3 with the same id
    for body in ("defmodule V2 do end", "defmodule V3 do end"):
        write_json(genserver, {**GENSERVER, "content": body})
        assert "0 added, 1 changed, 1 unchanged" in knowledge_migration({}, job_context(kdb.dsn))
    with kdb.connect() as conn:
        current = conn.execute(
            "SELECT id, version, content ->> 'content' FROM autopilot.knowledge_artifacts"
            " WHERE name = 'elixir-genserver'"
        ).fetchone()
        assert current == (first_id, 3, "defmodule V3 do end")
        history = conn.execute(
            "SELECT version, content ->> 'content', valid_from <= valid_until"
            " FROM autopilot.knowledge_artifact_versions WHERE artifact_id = %s ORDER BY version",
            [first_id],
        ).fetchall()
    assert history == [(1, GENSERVER["content"], True), (2, "defmodule V2 do end", True)]


def test_a_template_that_breaks_keeps_its_artifact_and_a_moved_one_keeps_its_identity(kdb) -> None:
    write_json(kdb.templates / "genserver.json", GENSERVER)
    write_json(kdb.templates / "retry.json", RETRY)
    knowledge_migration({}, job_context(kdb.dsn))
    (kdb.templates / "genserver.json").write_text('{"type": "code_template", "name": ')  # broken
    (kdb.templates / "retry.json").rename(kdb.templates / "python-retry.json")  # moved
    message = knowledge_migration({}, job_context(kdb.dsn))
    assert "1 not loaded: genserver.json: malformed JSON" in message
    with kdb.connect() as conn:
        rows = conn.execute(
            "SELECT name, version, source_path, content ->> 'content' FROM autopilot.knowledge_artifacts"
            " ORDER BY name"
        ).fetchall()
    assert rows == [
        ("elixir-genserver", 1, "genserver.json", GENSERVER["content"]),
        ("python-retry", 1, "python-retry.json", RETRY["content"]),
    ]
    # fixed, it loads (its bytes differ from those loaded first: parsed, content unchanged)
    write_json(kdb.templates / "genserver.json", GENSERVER)
    assert "0 added, 0 changed, 2 unchanged" in knowledge_migration({}, job_context(kdb.dsn))


def test_knowledge_migration_leaves_other_writers_artifacts_alone(kdb) -> None:
    with kdb.connect() as conn:
        conn.execute(
            "INSERT INTO autopilot.knowledge_artifacts (artifact_type, name, content, source)"
            " VALUES ('prompt', 'code-review', '{\"mine\": true}', 'agent-7')"
        )
    write_json(kdb.templates / "review.json", REVIEW)
    write_json(kdb.templates / "retry.json", RETRY)
    message = knowledge_migration({}, job_context(kdb.dsn))
    assert "1 added" in message
    assert "review.json: declares prompt 'code-review', an artifact agent-7 wrote: not loaded" in message
    with kdb.connect() as conn:
        assert one(conn, "SELECT content FROM autopilot.knowledge_artifacts WHERE name = 'code-review'") == {
            "mine": True
        }


def test_knowledge_migration_without_its_directory(kdb) -> None:
    """The default directory absent: not configured, nothing to load. A directory the DBA set that does
    not exist: the job fails, saying so."""
    with kdb.connect() as conn:
        conn.execute("SELECT autopilot.reset_setting('knowledge.templates_directory')")
        default = one(conn, "SELECT autopilot.get_setting('knowledge.templates_directory')")
    if os.path.exists(default):
        pytest.skip(f"{default} exists on this machine")
    message = knowledge_migration({}, job_context(kdb.dsn))
    assert message == f"no templates directory {default} (knowledge.templates_directory): nothing loaded"

    missing = kdb.templates / "not-there"
    with kdb.connect() as conn:
        conn.execute("SELECT autopilot.set_setting('knowledge.templates_directory', %s)", [str(missing)])
    with pytest.raises(KnowledgeError) as error:
        knowledge_migration({}, job_context(kdb.dsn))
    assert str(error.value) == (
        f"knowledge.templates_directory is {missing}, which is not a directory; nothing was loaded"
    )


def test_a_cancelled_migration_writes_nothing(kdb) -> None:
    for i in range(5):
        write_json(kdb.templates / f"t{i}.json", {**RETRY, "name": f"retry-{i}"})
    cancelled = threading.Event()

    def progress(final: bool = False, **fields) -> None:
        if fields.get("files") == 3:
            cancelled.set()

    with kdb.connect(autocommit=False) as conn, pytest.raises(Cancelled, match="nothing was changed"):
        migrate(conn, progress=progress, cancelled=cancelled)
    with kdb.connect() as conn:
        assert one(conn, "SELECT count(*) FROM autopilot.knowledge_artifacts") == 0


# -- templates-data-load -----------------------------------------------------------------------------


def test_templates_data_load_syncs_json_and_yaml_and_names_each_bad_file(kdb) -> None:
    data = kdb.data
    (data / "frameworks").mkdir()
    (data / "frameworks" / "phoenix.yaml").write_text(
        "name: Phoenix\nlanguage: elixir\nreleased: 2014-08-28\ndetect:\n  files: [mix.exs]\n"
    )
    write_json(data / "frameworks" / "django.json", {"name": "Django", "language": "python"})
    write_json(data / "quality" / "naming.json", {"rules": ["snake_case functions"]})
    (data / "bad.yaml").write_text("rules: [a, b\n")
    (data / "twice.yml").write_text("a: 1\na: 2\n")
    write_json(data / "list.json", [1, 2])
    (data / "both.json").write_text("{}")
    (data / "both.yaml").write_text("x: 1\n")
    (data / "readme.txt").write_text("ignored")

    message = templates_data_load({}, job_context(kdb.dsn))
    assert message.startswith(
        f"templates_data {data}: 8 files; 3 added, 0 changed, 0 removed, 0 unchanged; 5 not loaded:"
    ), message
    result = load(psycopg.connect(kdb.dsn))
    assert {p.path: p.reason for p in result.problems} == {
        "bad.yaml": "malformed YAML: line 2, column 1: did not find expected ',' or ']'",
        "both.json": "has the name 'both', as both.yaml does too: neither is loaded",
        "both.yaml": "has the name 'both', as both.json does too: neither is loaded",
        "list.json": "holds a list; a templates_data file holds one object (a YAML mapping)",
        "twice.yml": "malformed YAML: line 2, column 1: duplicate key 'a'",
    }
    with kdb.connect() as conn:
        rows = conn.execute(
            "SELECT name, file_path, format, content, status FROM autopilot.template_data ORDER BY name"
        ).fetchall()
    assert rows == [
        (
            "frameworks/django",
            "frameworks/django.json",
            "json",
            {"name": "Django", "language": "python"},
            "loaded",
        ),
        (
            "frameworks/phoenix",
            "frameworks/phoenix.yaml",
            "yaml",
            {
                "name": "Phoenix",
                "language": "elixir",
                "released": "2014-08-28",
                "detect": {"files": ["mix.exs"]},
            },
            "loaded",
        ),
        ("quality/naming", "quality/naming.json", "json", {"rules": ["snake_case functions"]}, "loaded"),
    ]


def test_templates_data_load_marks_removed_files_and_writes_nothing_when_nothing_changed(kdb) -> None:
    data = kdb.data
    write_json(data / "a.json", {"v": 1})
    write_json(data / "b.json", {"v": 1})
    (data / "c.yaml").write_text("v: 1\n")
    templates_data_load({}, job_context(kdb.dsn))
    with kdb.connect() as conn:
        before = written(conn, "autopilot.template_data")
    assert "0 added, 0 changed, 0 removed, 3 unchanged" in templates_data_load({}, job_context(kdb.dsn))
    with kdb.connect() as conn:
        assert written(conn, "autopilot.template_data") == before

    write_json(data / "a.json", {"v": 2})
    (data / "b.json").unlink()
    (data / "c.yaml").rename(data / "c.json")
    (data / "c.json").write_text('{"v": 1}')
    assert "0 added, 2 changed, 1 removed, 0 unchanged" in templates_data_load({}, job_context(kdb.dsn))
    with kdb.connect() as conn:
        rows = conn.execute(
            "SELECT name, file_path, content, status, removed_at IS NOT NULL FROM autopilot.template_data"
            " ORDER BY name"
        ).fetchall()
    assert rows == [
        ("a", "a.json", {"v": 2}, "loaded", False),
        ("b", "b.json", {"v": 1}, "removed", True),  # its last content stays
        ("c", "c.json", {"v": 1}, "loaded", False),
    ]
    write_json(data / "b.json", {"v": 3})  # back again
    assert "1 added, 0 changed, 0 removed, 2 unchanged" in templates_data_load({}, job_context(kdb.dsn))
    with kdb.connect() as conn:
        assert conn.execute(
            "SELECT content, status, removed_at FROM autopilot.template_data WHERE name = 'b'"
        ).fetchone() == ({"v": 3}, "loaded", None)


def test_templates_data_load_keeps_the_row_of_a_file_that_breaks_and_changes_nothing_when_cancelled(
    kdb,
) -> None:
    data = kdb.data
    for name in ("a", "b", "c", "d"):
        write_json(data / f"{name}.json", {"name": name})
    templates_data_load({}, job_context(kdb.dsn))
    (data / "a.json").write_text('{"name": ')
    (data / "b.json").unlink()
    write_json(data / "c.json", {"name": "c2"})
    message = templates_data_load({}, job_context(kdb.dsn))
    assert "0 added, 1 changed, 1 removed, 1 unchanged; 1 not loaded: a.json: malformed JSON" in message
    with kdb.connect() as conn:
        assert one(conn, "SELECT content FROM autopilot.template_data WHERE name = 'a'") == {"name": "a"}
        before = written(conn, "autopilot.template_data")

    # a run stopped half way (after two of its three files) leaves every row as it was: one transaction
    write_json(data / "a.json", {"name": "a3"})
    write_json(data / "e.json", {"name": "e"})
    (data / "d.json").unlink()
    cancelled = threading.Event()

    def progress(final: bool = False, **fields) -> None:
        if fields.get("files") == 2:
            cancelled.set()

    with kdb.connect(autocommit=False) as conn, pytest.raises(Cancelled):
        load(conn, progress=progress, cancelled=cancelled)
    with kdb.connect() as conn:
        assert written(conn, "autopilot.template_data") == before


def test_templates_data_load_with_its_directory_gone_marks_nothing_removed(kdb) -> None:
    write_json(kdb.data / "a.json", {"v": 1})
    templates_data_load({}, job_context(kdb.dsn))
    missing = kdb.data.parent / "unmounted"
    with kdb.connect() as conn:
        conn.execute("SELECT autopilot.set_setting('templates_data.directory', %s)", [str(missing)])
    with pytest.raises(KnowledgeError, match=r"templates_data\.directory is .*, which is not a directory"):
        templates_data_load({}, job_context(kdb.dsn))
    with kdb.connect() as conn:
        assert one(conn, "SELECT status FROM autopilot.template_data WHERE name = 'a'") == "loaded"


# -- template-embed and search -----------------------------------------------------------------------


def test_template_embed_embeds_what_changed_and_search_finds_it(kdb, autopilot) -> None:
    write_json(kdb.templates / "genserver.json", GENSERVER)
    write_json(kdb.templates / "review.json", REVIEW)
    write_json(kdb.templates / "retry.json", RETRY)
    knowledge_migration({}, job_context(kdb.dsn))

    first = template_embed({}, job_context(kdb.dsn))
    assert first == "template-embed (hashing-v1-384, lexical): 3 of 3 artifacts embedded, 0 up to date"
    with kdb.connect() as conn:
        embedded = conn.execute(
            "SELECT name, embedding_model, cardinality(embedding), length(embedding_hash)"
            " FROM autopilot.knowledge_artifacts ORDER BY name"
        ).fetchall()
        assert embedded == [
            ("code-review", "hashing-v1-384", 384, 64),
            ("elixir-genserver", "hashing-v1-384", 384, 64),
            ("python-retry", "hashing-v1-384", 384, 64),
        ]
        before = written(conn, "autopilot.knowledge_artifacts")
    assert template_embed({}, job_context(kdb.dsn)).endswith("0 of 3 artifacts embedded, 3 up to date")
    with kdb.connect() as conn:
        assert written(conn, "autopilot.knowledge_artifacts") == before

    # one template's text changes: that one is embedded again
    write_json(kdb.templates / "retry.json", {**RETRY, "description": "Retry with a circuit breaker"})
    knowledge_migration({}, job_context(kdb.dsn))
    assert template_embed({}, job_context(kdb.dsn)).endswith("1 of 3 artifacts embedded, 2 up to date")

    found = autopilot("search", "--knowledge", "genserver supervisor child spec", "--dsn", kdb.dsn)
    assert found.exit_code == 0, found.output
    text = flat(found.stdout)
    assert "lexical search (hashing-v1-384" in text and "elixir-genserver" in text
    as_json = json.loads(
        autopilot("search", "--knowledge", "circuit breaker", "--json", "--dsn", kdb.dsn).stdout
    )
    assert as_json["mode"] == "lexical" and as_json["not_embedded"] == 0
    assert as_json["results"][0]["name"] == "python-retry"
    assert as_json["results"][0]["vector_rank"] == 1 and as_json["results"][0]["text_rank"] == 1
    both = autopilot("search", "--knowledge", "x", "--codebase", "app", "--dsn", kdb.dsn)
    assert both.exit_code == 2 and "--codebase is for code" in both.output


def test_search_counts_the_artifacts_template_embed_has_not_embedded_yet(kdb, autopilot) -> None:
    write_json(kdb.templates / "genserver.json", GENSERVER)
    knowledge_migration({}, job_context(kdb.dsn))
    found = autopilot("search", "--knowledge", "genserver", "--dsn", kdb.dsn)
    assert found.exit_code == 0, found.output
    assert "1 artifacts have no hashing-v1-384 embedding of their current text yet" in flat(found.stdout)
    assert "elixir-genserver" in found.stdout  # found by its words


# -- autopilot knowledge ------------------------------------------------------------------------------


def test_knowledge_list_and_show(kdb, autopilot) -> None:
    write_json(kdb.templates / "genserver.json", GENSERVER)
    write_json(kdb.templates / "review.json", REVIEW)
    knowledge_migration({}, job_context(kdb.dsn))
    write_json(kdb.templates / "genserver.json", {**GENSERVER, "content": "defmodule V2 do end"})
    knowledge_migration({}, job_context(kdb.dsn))

    listed = autopilot("knowledge", "list", "--dsn", kdb.dsn)
    assert listed.exit_code == 0, listed.output
    assert (
        "elixir-genserver" in listed.stdout
        and "code-review" in listed.stdout
        and "2 artifacts" in listed.stdout
    )
    rows = json.loads(autopilot("knowledge", "list", "--type", "prompt", "--json", "--dsn", kdb.dsn).stdout)
    assert [(r["name"], r["version"], r["source"]) for r in rows] == [
        ("code-review", 1, "knowledge-migration")
    ]

    shown = autopilot("knowledge", "show", "elixir-genserver", "--dsn", kdb.dsn)
    assert shown.exit_code == 0, shown.output
    text = flat(shown.stdout)
    assert "code_template/elixir-genserver version 2" in text and "earlier versions" in text
    assert "defmodule V2 do end" in text and "genserver.json" in text
    old = json.loads(
        autopilot(
            "knowledge",
            "show",
            "code_template/elixir-genserver",
            "--version",
            "1",
            "--json",
            "--dsn",
            kdb.dsn,
        ).stdout
    )
    assert (old["version"], old["current_version"], old["content"]["content"]) == (1, 2, GENSERVER["content"])

    missing = autopilot("knowledge", "show", "nope", "--dsn", kdb.dsn)
    assert missing.exit_code == 1 and "no knowledge artifact named 'nope'" in flat(missing.stderr)
    no_version = autopilot("knowledge", "show", "elixir-genserver", "--version", "9", "--dsn", kdb.dsn)
    assert no_version.exit_code == 1 and "has no version 9" in flat(no_version.stderr)
    with kdb.connect() as conn:
        conn.execute(
            "INSERT INTO autopilot.knowledge_artifacts (artifact_type, name, content)"
            " VALUES ('snippet', 'elixir-genserver', '{\"body\": \"\\u001b]0;pwned\\u0007\"}')"
        )
    ambiguous = autopilot("knowledge", "show", "elixir-genserver", "--dsn", kdb.dsn)
    assert ambiguous.exit_code == 1 and "2 knowledge artifacts are named 'elixir-genserver'" in flat(
        ambiguous.stderr
    )
    snippet = autopilot("knowledge", "show", "elixir-genserver", "--type", "snippet", "--dsn", kdb.dsn)
    assert snippet.exit_code == 0 and "\x1b" not in snippet.stdout and "\x07" not in snippet.stdout
