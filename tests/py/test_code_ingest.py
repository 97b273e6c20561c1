"""code-ingest end to end on a real server: files, chunks, symbols, embeddings, the graph, search.

The embedder here is the hashing one (deterministic, instant); the real MiniLM model runs in
test_code_search_minilm.py on a small corpus.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from helpers import wait_for

from pg_autopilot import codebases
from pg_autopilot.embeddings import HashingEmbedder
from pg_autopilot.ingest.files import CodebaseError
from pg_autopilot.ingest.pipeline import IngestCancelled

# Each definition is over a quarter of the chunk cap (375 bytes), so each is a chunk of its own.
PAD = "\n".join(
    f"    {'Padding text that makes the definition long enough to stand alone.'}" for _ in range(6)
)

GEOMETRY = f'''"""Shapes and their areas."""

import math

from .units import to_metres


class Circle:
    """A circle of a given radius."""

    def __init__(self, radius):
        self.radius = radius

    def area(self):
        """The area of the circle.

{PAD}
        """
        return math.pi * self.radius ** 2


def total_area(shapes):
    """The sum of the areas of all shapes.

{PAD}
    """
    return sum(shape.area() for shape in shapes)
'''

UNITS = f'''def to_metres(value, unit):
    """Convert a length in the given unit to metres.

{PAD}
    """
    factors = {{"mm": 0.001, "cm": 0.01, "m": 1.0, "km": 1000.0}}
    return value * factors[unit]
'''

CLIENT_JS = """import { fetchJson } from './http';

export class WeatherClient {
  constructor(baseUrl) { this.baseUrl = baseUrl; }
  async forecast(city) {
    return fetchJson(`${this.baseUrl}/forecast?city=${city}`);
  }
}
"""

HTTP_JS = """export async function fetchJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}
"""


def make_tree(root: Path) -> Path:
    (root / "shapes").mkdir(parents=True)
    (root / "shapes" / "__init__.py").write_text("")
    (root / "shapes" / "geometry.py").write_text(GEOMETRY)
    (root / "shapes" / "units.py").write_text(UNITS)
    (root / "web").mkdir()
    (root / "web" / "client.js").write_text(CLIENT_JS)
    (root / "web" / "http.js").write_text(HTTP_JS)
    (root / "broken.py").write_text("def broken(:\n    return 1\n\ndef fine():\n    return 2\n")
    (root / "latin1.py").write_bytes("# caf\xe9\ndef greet():\n    return 'h\xe9'\n".encode("latin-1"))
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0binary")
    (root / "notes.txt").write_text("plain notes\n")
    (root / "huge.py").write_text("x = 1\n" * 400_000)  # 2.4 MB, over the cap set below
    return root


@pytest.fixture
def code_db(installed_db, tmp_path):
    """An installed database with one registered codebase (a small mixed tree) and a 1 MB cap."""
    root = make_tree(tmp_path / "tree")
    with installed_db.connect(autocommit=False) as conn:
        codebases.add(conn, "demo", str(root), (), ())
        conn.execute("SELECT autopilot.set_setting('code_ingest.max_file_bytes', '1048576')")
        conn.commit()
    installed_db.root = root
    return installed_db


def ingest(database, **kwargs):
    return codebases.ingest(
        lambda: psycopg.connect(database.dsn),
        "demo",
        embedder=kwargs.pop("embedder", HashingEmbedder()),
        **kwargs,
    )


def one(conn: psycopg.Connection, query: str, params: list | None = None):
    return conn.execute(query, params or []).fetchone()[0]


def test_first_ingest_records_every_file_and_counts_bad_input(code_db) -> None:
    summary = ingest(code_db)
    assert summary.files == 10
    assert summary.parsed == 7  # six .py and two .js, less the oversized one
    assert dict(summary.skipped) == {"binary": 1, "too large": 1, "unknown language": 1}
    assert summary.syntax_errors == 1 and summary.not_utf8 == 1
    assert summary.embedded == summary.chunks > 0 and summary.reused_embeddings == 0
    line = summary.line()
    assert "1 with syntax errors" in line and "1 not UTF-8" in line and "1 too large" in line
    with code_db.connect() as conn:
        statuses = dict(
            conn.execute(
                "SELECT file_path, coalesce(skip_reason, status) FROM autopilot.code_files"
            ).fetchall()
        )
        assert statuses["logo.png"] == "binary" and statuses["notes.txt"] == "unknown language"
        assert statuses["huge.py"].startswith("too large (2400000 bytes")
        total = conn.execute(
            "SELECT start_line, end_line, kind, language, content FROM autopilot.code_chunks"
            " WHERE symbol = 'total_area' AND superseded_at IS NULL"
        ).fetchone()
        assert total[:4] == (27, 37, "function", "python")
        assert total[4].startswith("# shapes/geometry.py\ndef total_area(shapes):")  # the header: its path
        imports = {
            r[0] for r in conn.execute("SELECT name FROM autopilot.code_symbols WHERE role = 'import'")
        }
        assert {"math", "shapes.units", "shapes.units.to_metres", "web/http"} <= imports
        assert (
            conn.execute(
                "SELECT count(*) FROM autopilot.code_chunks WHERE superseded_at IS NULL AND embedding IS NULL"
            ).fetchone()[0]
            == 0
        )
        last = conn.execute("SELECT last_summary ->> 'parsed' FROM autopilot.codebases").fetchone()[0]
        assert last == "7"


def test_unchanged_tree_parses_and_embeds_nothing_and_one_change_reembeds_only_it(code_db) -> None:
    first = ingest(code_db)
    again = ingest(code_db)
    assert (again.parsed, again.embedded, again.unchanged) == (0, 0, first.parsed)
    geometry = code_db.root / "shapes" / "geometry.py"
    geometry.write_text(GEOMETRY.replace("math.pi * self.radius ** 2", "math.pi * self.radius * self.radius"))
    changed = ingest(code_db)
    assert changed.parsed == 1
    assert changed.embedded == 1  # the method that changed; the file's other chunks reuse their vectors
    assert changed.reused_embeddings >= 1
    with code_db.connect() as conn:
        superseded = conn.execute(
            "SELECT count(*) FROM autopilot.code_chunks WHERE file_path = 'shapes/geometry.py'"
            " AND superseded_at IS NOT NULL"
        ).fetchone()[0]
        assert superseded >= 1


def test_removed_file_is_marked_and_its_chunks_superseded(code_db) -> None:
    ingest(code_db)
    (code_db.root / "web" / "http.js").unlink()
    summary = ingest(code_db)
    assert summary.removed == 1
    with code_db.connect() as conn:
        assert (
            conn.execute(
                "SELECT status FROM autopilot.code_files WHERE file_path = 'web/http.js'"
            ).fetchone()[0]
            == "removed"
        )
        assert (
            conn.execute(
                "SELECT count(*) FROM autopilot.code_chunks"
                " WHERE file_path = 'web/http.js' AND superseded_at IS NULL"
            ).fetchone()[0]
            == 0
        )
        assert (
            conn.execute(
                "SELECT count(*) FROM autopilot.code_symbols WHERE file_path = 'web/http.js'"
            ).fetchone()[0]
            == 0
        )


def test_vanished_root_fails_and_changes_nothing(code_db) -> None:
    ingest(code_db)
    with code_db.connect() as conn:
        before = conn.execute("SELECT count(*), max(ingested_at) FROM autopilot.code_files").fetchone()
    os.rename(code_db.root, str(code_db.root) + ".moved")
    with pytest.raises(CodebaseError, match="is not a directory"):
        ingest(code_db)
    with code_db.connect() as conn:
        assert (
            conn.execute("SELECT count(*), max(ingested_at) FROM autopilot.code_files").fetchone() == before
        )
        assert (
            conn.execute("SELECT count(*) FROM autopilot.code_files WHERE status = 'removed'").fetchone()[0]
            == 0
        )


def test_a_stopped_ingest_keeps_whole_files_and_the_next_run_resumes(code_db) -> None:
    cancelled = threading.Event()

    def progress(final=False, **fields):
        if fields.get("files", 0) >= 4:
            cancelled.set()

    with pytest.raises(IngestCancelled):
        ingest(code_db, progress=progress, cancelled=cancelled)
    with code_db.connect() as conn:
        # every file recorded has all its chunks: none is half-written
        rows = conn.execute(
            "SELECT f.file_path, count(c.id) FROM autopilot.code_files AS f"
            " LEFT JOIN autopilot.code_chunks AS c ON c.codebase = f.codebase AND c.file_path = f.file_path"
            "  AND c.superseded_at IS NULL WHERE f.status = 'ingested' GROUP BY f.file_path"
        ).fetchall()
        done_before = len(rows)
        assert all(count > 0 for path, count in rows if path != "shapes/__init__.py")
    summary = ingest(code_db)
    assert summary.unchanged == done_before and summary.parsed == 7 - done_before


def test_two_ingests_of_one_codebase_never_interleave(code_db) -> None:
    events: list[str] = []
    with code_db.connect() as holder:
        key = holder.execute("SELECT autopilot._job_lock_key('code-ingest:demo')").fetchone()[0]
        holder.execute("SELECT pg_advisory_lock(%s)", [key])  # an ingest running elsewhere

        def note(final=False, **fields):
            events.append("waiting" if "waiting" in fields else "working")

        worker = threading.Thread(target=lambda: events.append(ingest(code_db, progress=note).line()))
        worker.start()
        time.sleep(1.0)
        assert events == ["waiting"]  # it waits, writing nothing
        with code_db.connect() as conn:
            assert conn.execute("SELECT count(*) FROM autopilot.code_files").fetchone()[0] == 0
        holder.execute("SELECT pg_advisory_unlock(%s)", [key])
    worker.join(timeout=60)
    assert events[-1].startswith("demo: 10 files")


def test_git_work_tree_respects_gitignore_and_records_the_commit(code_db) -> None:
    root = code_db.root
    (root / ".gitignore").write_text("huge.py\nlogo.png\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}  # fmt: skip
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "tree"]):
        subprocess.run(["git", "-C", str(root), *command], check=True, env=env)
    head = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout
    summary = ingest(code_db)
    assert summary.files == 9  # .gitignore itself is listed; huge.py and logo.png are not
    assert "binary" not in summary.skipped and "too large" not in summary.skipped
    assert summary.commit == head.strip()


def test_graph_populate_links_imports_and_calls_incrementally(code_db) -> None:
    ingest(code_db)
    with code_db.connect() as conn:
        first = conn.execute("SELECT autopilot.populate_code_graph('demo')").fetchone()[0]
        assert first["changed_files"] == 10 and first["edges"] > 0
        edges = {
            (src, dst, kind)
            for src, dst, kind in conn.execute(
                "SELECT s.node_key, t.node_key, e.kind FROM autopilot.graph_edges AS e"
                " JOIN autopilot.graph_nodes AS s ON s.id = e.source_id"
                " JOIN autopilot.graph_nodes AS t ON t.id = e.target_id"
            )
        }
        assert ("shapes/geometry.py", "shapes/units.py", "imports") in edges
        assert ("web/client.js", "web/http.js", "imports") in edges
        assert ("web/client.js", "web/http.js#fetchJson", "calls") in edges
        assert ("shapes/geometry.py#Circle.area", "shapes/geometry.py", "defined_in") in edges
        again = conn.execute("SELECT autopilot.populate_code_graph('demo')").fetchone()[0]
        assert again == {"codebase": "demo", "changed_files": 0}
        ids = dict(conn.execute("SELECT node_key, id FROM autopilot.graph_nodes"))
    (code_db.root / "web" / "http.js").write_text(HTTP_JS.replace("fetchJson", "getJson"))
    ingest(code_db)
    with code_db.connect() as conn:
        third = conn.execute("SELECT autopilot.populate_code_graph('demo')").fetchone()[0]
        assert third["changed_files"] == 1 and third["relinked_files"] == 2  # http.js and its caller
        after = dict(conn.execute("SELECT node_key, id FROM autopilot.graph_nodes"))
        assert "web/http.js#fetchJson" not in after and "web/http.js#getJson" in after
        assert after["shapes/geometry.py"] == ids["shapes/geometry.py"]  # untouched nodes keep their ids
        edges = {
            (src, dst, kind)
            for src, dst, kind in conn.execute(
                "SELECT s.node_key, t.node_key, e.kind FROM autopilot.graph_edges AS e"
                " JOIN autopilot.graph_nodes AS s ON s.id = e.source_id"
                " JOIN autopilot.graph_nodes AS t ON t.id = e.target_id"
            )
        }
        assert ("web/http.js#getJson", "web/http.js", "defined_in") in edges
        # client.js still calls fetchJson, which no file defines any more
        assert not {edge for edge in edges if edge[0] == "web/client.js" and edge[2] == "calls"}
        assert ("web/client.js", "web/http.js", "imports") in edges


def test_search_code_is_hybrid_and_refuses_mixed_models(code_db) -> None:
    ingest(code_db)
    embedder = HashingEmbedder()
    with code_db.connect() as conn:
        rows = codebases.search(conn, embedder, "sum of the areas of shapes", "demo", 5)
        assert rows[0]["symbol"] == "total_area"
        assert rows[0]["vector_rank"] is not None and rows[0]["text_rank"] is not None
        by_text = conn.execute(
            "SELECT symbol, vector_rank FROM autopilot.search_code(NULL, 'fetchJson', 'demo', 3)"
        ).fetchall()
        # text only: the definition and its caller, identifiers matched as words, no vector rank
        assert {symbol for symbol, _ in by_text} == {"fetchJson", "WeatherClient"}
        assert {rank for _, rank in by_text} == {None}
        conn.execute("UPDATE autopilot.code_chunks SET embedding_model = 'other' WHERE id IN"
                     " (SELECT min(id) FROM autopilot.code_chunks)")  # fmt: skip
        with pytest.raises(psycopg.errors.AmbiguousParameter, match="2 models"):
            conn.execute("SELECT * FROM autopilot.search_code(%s::real[], 'x')", [embedder.embed_query("x")])
        with pytest.raises(psycopg.errors.DataException, match="3 dimensions"):
            conn.execute(
                "SELECT * FROM autopilot.search_code('{1,0,0}'::real[], NULL, NULL, 10, %s)",
                [embedder.model_id],
            )


def test_the_runner_ingests_and_builds_the_graph_by_itself(code_db) -> None:
    """The loop from code to ranked symbols with nobody typing anything: a runner started on a database
    with a registered codebase runs code-ingest and graph-populate at startup (graph-populate again
    after the ingest), and PageRank ranks the symbols. The real CLI entry point, so the parsing pool
    runs under the runner as in production."""
    with code_db.connect() as conn:
        conn.execute("SELECT autopilot.set_setting('embeddings.model', 'hashing')")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pg_autopilot.cli",
            "runner",
            "start",
            "--dsn",
            code_db.dsn,
            "--poll-interval",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        with code_db.connect() as conn:
            wait_for(
                lambda: one(conn, "SELECT count(*) FROM autopilot.graph_nodes WHERE pagerank IS NOT NULL"),
                "ranked symbols",
                timeout=120,
            )
            runs = conn.execute(
                "SELECT job_name, status, message FROM autopilot.job_runs"
                " WHERE job_name IN ('code-ingest', 'graph-populate') ORDER BY id"
            ).fetchall()
            top = conn.execute(
                "SELECT node_key FROM autopilot.graph_nodes WHERE kind <> 'file'"
                " ORDER BY pagerank DESC LIMIT 1"
            ).fetchone()[0]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    ingest_runs = [
        message for name, status, message in runs if name == "code-ingest" and status == "succeeded"
    ]
    assert ingest_runs and ingest_runs[0].startswith("demo: 10 files; 7 parsed")
    graph_runs = [
        message for name, status, message in runs if name == "graph-populate" and status == "succeeded"
    ]
    assert any(
        message.startswith("demo: 10 files changed") and "pagerank: succeeded" in message
        for message in graph_runs
    )
    assert top in {"web/http.js#fetchJson", "shapes/geometry.py#Circle.area"}  # what others call
