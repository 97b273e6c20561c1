"""code-ingest end to end on a real server: files, chunks, symbols, embeddings, the graph, search.

The embedder here is the hashing one (deterministic, instant); the real MiniLM model runs in
test_code_search_minilm.py on a small corpus.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from helpers import autopilot_argv, wait_for
from psycopg.conninfo import make_conninfo

from pg_autopilot import codebases
from pg_autopilot.embeddings import HashingEmbedder
from pg_autopilot.ingest.files import CodebaseError
from pg_autopilot.ingest.pipeline import IngestCancelled
from pg_autopilot.workers.code_ingest import code_ingest
from pg_autopilot.workers.graph_populate import graph_populate
from pg_autopilot.workers.registry import JobContext

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
            # the nodes are ranked before the runner records the graph-populate run that ranked them
            wait_for(
                lambda: one(
                    conn,
                    "SELECT count(*) FROM autopilot.job_runs"
                    " WHERE job_name = 'graph-populate' AND status = 'succeeded'"
                    " AND strpos(message, 'pagerank: succeeded') > 0",
                ),
                "graph-populate's run recorded",
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


# -- a real kill: SIGKILL in the middle of a transaction of whole files -------------------------------

GENERATED_FILES = 300


def generated_module(index: int, version: int) -> str:
    """A module of three definitions (each a chunk of its own), whose bodies change with ``version``."""
    return f'''"""Generated module {index}, version {version}."""

import math

from .helpers import scale


def area_{index}(radius):
    """The area of circle {index}.

{PAD}
    """
    return math.pi * radius ** 2 * {version}


class Shape{index}:
    """Shape {index}.

{PAD}
    """

    def perimeter(self, side):
        return scale(side * {index + version})


def volume_{index}(side):
    """The volume of cube {index}.

{PAD}
    """
    return side ** 3 + {version}
'''


def write_generated_tree(root: Path, version: int) -> list[str]:
    """GENERATED_FILES modules in ten packages; their paths, in the order the ingest takes them."""
    paths = []
    for index in range(GENERATED_FILES):
        path = f"pkg{index % 10}/module_{index:03d}.py"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(generated_module(index, version))
        paths.append(path)
    return sorted(paths)


def file_states(conn: psycopg.Connection, codebase: str) -> dict[str, tuple]:
    """Per file: its row, its current chunks in order and its symbols (nothing that names the codebase
    or the time), so that two codebases ingested from the same tree compare equal."""
    rows = conn.execute(
        "SELECT f.file_path, f.status, f.content_hash, f.chunker_version, f.language, f.module_name,"
        " f.syntax_errors, f.size_bytes, f.skip_reason FROM autopilot.code_files AS f WHERE f.codebase = %s",
        [codebase],
    ).fetchall()
    chunks: dict[str, list] = {}
    for path, *chunk in conn.execute(
        "SELECT c.file_path, c.chunk_index, c.content, c.content_hash, c.start_line, c.end_line, c.symbol,"
        " c.kind, c.language FROM autopilot.code_chunks AS c"
        " WHERE c.codebase = %s AND c.superseded_at IS NULL ORDER BY c.file_path, c.chunk_index",
        [codebase],
    ):
        chunks.setdefault(path, []).append(tuple(chunk))
    symbols: dict[str, list] = {}
    for path, *symbol in conn.execute(
        "SELECT s.file_path, s.role, s.name, s.kind, s.line FROM autopilot.code_symbols AS s"
        " WHERE s.codebase = %s ORDER BY 1, 2, 3, 4, 5",
        [codebase],
    ):
        symbols.setdefault(path, []).append(tuple(symbol))
    return {
        path: (tuple(row), tuple(chunks.get(path, ())), tuple(symbols.get(path, ()))) for path, *row in rows
    }


def superseded_counts(conn: psycopg.Connection, codebase: str) -> dict[str, int]:
    return dict(
        conn.execute(
            "SELECT c.file_path, count(*) FILTER (WHERE c.superseded_at IS NOT NULL)"
            " FROM autopilot.code_chunks AS c WHERE c.codebase = %s GROUP BY c.file_path",
            [codebase],
        ).fetchall()
    )


def live_processes_in_group(group: int) -> list[int]:
    """The processes of a process group that are not zombies (Linux /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
            if fields[0] != "Z" and int(fields[2]) == group:
                pids.append(int(entry))
    return pids


def advisory_locks_held(conn: psycopg.Connection, key: int) -> int:
    # a bigint advisory key shows in pg_locks as its high half (classid) and low half (objid)
    return one(
        conn,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1"
        " AND ((classid::bigint << 32) | objid::bigint) = %s",
        [key],
    )


@pytest.fixture
def extension_db(new_database):
    """A database with autopilot installed as an extension (where the install mode does not matter)."""
    database = new_database("ext")
    database.install("extension")
    return database


@pytest.fixture
def big_db(extension_db, tmp_path):
    """The codebase ``big``: GENERATED_FILES modules, the hashing embedder."""
    database = extension_db
    database.root = tmp_path / "big"
    database.paths = write_generated_tree(database.root, version=1)
    with database.connect() as conn:
        codebases.add(conn, "big", str(database.root), (), ())
        conn.execute("SELECT autopilot.set_setting('embeddings.model', 'hashing')")
    return database


def cli_ingest(database, name: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [*autopilot_argv(), "codebase", "ingest", name, "--dsn", database.dsn],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def test_an_ingest_killed_mid_transaction_leaves_whole_files_and_the_next_run_resumes(big_db) -> None:
    """`autopilot codebase ingest` killed with SIGKILL while a transaction holds some files written
    whole and one half-written (its old chunks superseded, its new ones copied, its row not yet
    updated): every file is then either as the previous run left it or as a clean ingest of the new
    tree makes it, the advisory lock is gone, and the next run parses only the files the killed run
    had not committed, ending equal to a clean ingest."""
    first = cli_ingest(big_db, "big")
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err
    with big_db.connect() as conn:
        old = file_states(conn, "big")
        old_summary = conn.execute(
            "SELECT last_ingested_at, last_summary FROM autopilot.codebases WHERE name = 'big'"
        ).fetchone()
    assert len(old) == GENERATED_FILES and all(len(chunks) >= 3 for _, chunks, _ in old.values())

    write_generated_tree(big_db.root, version=2)  # every file changes
    with big_db.connect() as conn:
        codebases.add(conn, "reference", str(big_db.root), (), ())
    codebases.ingest(lambda: psycopg.connect(big_db.dsn), "reference", embedder=HashingEmbedder())
    with big_db.connect() as conn:
        new = file_states(conn, "reference")  # what a clean ingest of the new tree gives
        new_hashes = {path: state[0][1] for path, state in new.items()}
        key = one(conn, "SELECT autopilot._job_lock_key('code-ingest:big')")
    assert all(new[path] != old[path] for path in big_db.paths)

    # Hold the row of a file near the end: the ingest blocks on it, in the middle of writing it, after
    # committing the first COMMIT_EVERY_FILES (200) files, with the files since then uncommitted.
    blocked_path = big_db.paths[260]
    holder = big_db.connect(autocommit=False)
    holder.execute(
        "SELECT 1 FROM autopilot.code_files WHERE codebase = 'big' AND file_path = %s FOR UPDATE",
        [blocked_path],
    )
    holder_pid = one(holder, "SELECT pg_backend_pid()")
    process = cli_ingest(big_db, "big", start_new_session=True)
    try:
        with big_db.connect() as conn:
            ingest_pid = wait_for(
                lambda: one(
                    conn,
                    "SELECT min(pid) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                    [holder_pid],
                ),
                "the ingest to block on the held row",
                timeout=120,
            )
            committed = [
                path for path, state in file_states(conn, "big").items() if state[0][1] == new_hashes[path]
            ]
            assert 0 < len(committed) < 260 and blocked_path not in committed
            # the blocked file is half-written in the ingest's transaction: its old chunks superseded
            # and its new ones copied (invisible here), its row being upserted
            blocked_on = one(conn, "SELECT query FROM pg_stat_activity WHERE pid = %s", [ingest_pid])
            assert blocked_on.startswith("INSERT INTO autopilot.code_files"), blocked_on
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            # its parsing processes (and the fork server) notice and exit: nothing is left waiting
            wait_for(
                lambda: not live_processes_in_group(process.pid), "the pool processes to exit", timeout=30
            )
            holder.rollback()  # the server finds the client gone and rolls its transaction back
            wait_for(
                lambda: not one(conn, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [ingest_pid]),
                "the killed ingest's session to end",
            )

            after = file_states(conn, "big")
            assert after.keys() == old.keys()
            for path, state in after.items():
                assert state in (old[path], new[path]), f"{path} is neither the old nor the new version"
            assert sorted(path for path in after if after[path] == new[path]) == sorted(committed)
            superseded = superseded_counts(conn, "big")
            for path in after:  # nothing superseded but the old chunks of the files written whole
                assert superseded.get(path, 0) == (len(old[path][1]) if path in committed else 0), path
            assert advisory_locks_held(conn, key) == 0
            # nothing claims the killed run finished (and nothing says one is running)
            assert (
                conn.execute(
                    "SELECT last_ingested_at, last_summary FROM autopilot.codebases WHERE name = 'big'"
                ).fetchone()
                == old_summary
            )
    finally:
        holder.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # what is left of it, had the test failed early

    events: list[dict] = []
    summary = codebases.ingest(
        lambda: psycopg.connect(big_db.dsn),
        "big",
        embedder=HashingEmbedder(),
        progress=lambda final=False, **fields: events.append(fields),
    )
    assert not [event for event in events if "waiting" in event]  # no lock left to wait for
    assert (summary.unchanged, summary.parsed, summary.removed) == (
        len(committed),
        GENERATED_FILES - len(committed),
        0,
    )
    with big_db.connect() as conn:
        assert file_states(conn, "big") == new
        assert superseded_counts(conn, "big") == {path: len(old[path][1]) for path in old}
        assert not one(
            conn,
            "SELECT count(*) FROM autopilot.code_chunks WHERE codebase = 'big' AND superseded_at IS NULL"
            " AND (embedding IS NULL OR embedding_key IS NULL)",
        )


# -- the README's runner role is enough for code-ingest and graph-populate -----------------------

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_grants() -> str:
    """The README's sql block of grants (the one test_privileges.py runs too), as it stands."""
    blocks = re.findall(r"```sql\n(.*?)```", README.read_text(), re.S)
    grants = [b for b in blocks if "GRANT" in b and "autopilot_runner" in b]
    assert len(grants) == 1, "README.md has one sql block with the grants for autopilot_runner"
    return grants[0]


def job_context(dsn: str, **fields) -> JobContext:
    return JobContext(
        job_id=0, attempt=1, queue="default", node="test", dsn=dsn, deadline=time.monotonic() + 600, **fields
    )


@pytest.fixture
def readme_runner(code_db, admin_dsn):
    """A login role (not a superuser) granted exactly what the README's block grants autopilot_runner
    (the block is run whole, each of its roles renamed); its DSN."""
    suffix = uuid.uuid4().hex[:8]
    roles = {role: f"{role}_{suffix}" for role in ("autopilot_runner", "autopilot_readonly", "autopilot_app",
                                                    "autopilot_instance")}  # fmt: skip
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for name in roles.values():
            conn.execute(f"CREATE ROLE {name} LOGIN NOSUPERUSER")
    grants = readme_grants()
    for role, name in roles.items():
        grants = grants.replace(role, name)
    with code_db.connect() as conn:
        conn.execute(grants)
        conn.execute("SELECT autopilot.set_setting('embeddings.model', 'hashing')")
    yield make_conninfo(code_db.dsn, user=roles["autopilot_runner"])
    for dsn in (code_db.dsn, admin_dsn):
        with psycopg.connect(dsn, autocommit=True) as conn:
            for name in roles.values():
                conn.execute(f"DROP OWNED BY {name}")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for name in roles.values():
            conn.execute(f"DROP ROLE {name}")


def test_the_readme_runner_role_runs_code_ingest_and_graph_populate(code_db, readme_runner) -> None:
    """The workers of code-ingest and graph-populate, connected as the README's runner role: the files
    ingested and embedded, graph-populate queued, the graph built and ranked by the pagerank job."""
    with psycopg.connect(readme_runner) as conn:
        assert not one(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    ingested = code_ingest({}, job_context(readme_runner))
    assert ingested.startswith("demo: 10 files; 7 parsed"), ingested
    populated = graph_populate({}, job_context(readme_runner))
    assert populated.startswith("demo: 10 files changed") and "pagerank: succeeded" in populated, populated
    with code_db.connect() as conn:
        assert one(
            conn,
            "SELECT count(*) FROM autopilot.jobs"
            " WHERE worker = 'graph_populate' AND meta ->> 'catalog' = 'graph-populate'",
        )
        assert not one(conn, "SELECT count(*) FROM autopilot.code_chunks WHERE embedding IS NULL")
        assert not one(conn, "SELECT count(*) FROM autopilot.graph_nodes WHERE pagerank IS NULL")
        pagerank = conn.execute(
            "SELECT status, details ->> 'kernel' FROM autopilot.job_runs WHERE job_name = 'pagerank'"
            " ORDER BY id DESC LIMIT 1"
        ).fetchone()
        # the compiled kernel where the install has it (the README's DO block grants it), else SQL
        assert pagerank == ("succeeded", "compiled" if code_db.mode == "extension" else "sql")
    # again, nothing changed: nothing parsed, the graph up to date, PageRank not run again
    assert "0 parsed; 7 unchanged" in code_ingest({}, job_context(readme_runner))
    assert graph_populate({}, job_context(readme_runner)) == "demo: graph up to date"


# -- the embedding model is loaded only when a chunk needs a vector -----------------------------------

RUN_WORKER = """
import json, sys, time
from pg_autopilot.workers.code_ingest import code_ingest
from pg_autopilot.workers.registry import JobContext

if __name__ == "__main__":
    context = JobContext(job_id=0, attempt=1, queue="default", node="test", dsn=sys.argv[1],
                         deadline=time.monotonic() + 600)
    message = code_ingest({}, context)
    loaded = sorted(m for m in ("torch", "sentence_transformers") if m in sys.modules)
    print(json.dumps({"message": message, "loaded": loaded}))
"""


def test_code_ingest_loads_the_model_only_when_a_chunk_needs_a_vector(extension_db, tmp_path) -> None:
    """embeddings.model = auto with the extra installed is MiniLM. A code-ingest run in a process of its
    own: with no codebase it imports no model library; a codebase's first ingest loads MiniLM to embed
    its chunks; an ingest of the unchanged tree loads nothing again."""
    installed_db = extension_db
    pytest.importorskip("sentence_transformers", reason="needs the embeddings extra")
    script = tmp_path / "run_worker.py"
    script.write_text(RUN_WORKER)

    def run() -> dict:
        done = subprocess.run(
            [sys.executable, str(script), installed_db.dsn], capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout.splitlines()[-1])

    with installed_db.connect() as conn:
        assert one(conn, "SELECT autopilot.get_setting('embeddings.model')") == "auto"
    nothing = run()
    assert nothing == {"message": "no enabled codebase (autopilot codebase add NAME PATH)", "loaded": []}

    root = make_tree(tmp_path / "tree")
    with installed_db.connect() as conn:
        codebases.add(conn, "demo", str(root), (), ())
        conn.execute("SELECT autopilot.set_setting('code_ingest.max_file_bytes', '1048576')")
    first = run()
    assert first["loaded"] == ["sentence_transformers", "torch"]
    assert "all-MiniLM-L6-v2" in first["message"] and "; 0 embedded" not in first["message"]
    with installed_db.connect() as conn:
        assert one(
            conn,
            "SELECT count(*) FROM autopilot.code_chunks"
            " WHERE starts_with(embedding_model, 'all-MiniLM-L6-v2:')",
        )
    again = run()
    assert again["loaded"] == [], again["message"]
    assert "0 parsed; 7 unchanged" in again["message"] and "0 embedded, 0 reused" in again["message"]


# -- bad input: each a clear line in the run's summary, the rest goes on ------------------------------


def add_bad_links(root: Path, outside: Path) -> None:
    """Symlink loops (a cycle of file links, a link to an enclosing directory), a broken link, a link out
    of the root and a FIFO."""
    (root / "cycle_a.py").symlink_to(root / "cycle_b.py")
    (root / "cycle_b.py").symlink_to(root / "cycle_a.py")
    (root / "shapes" / "loop").symlink_to(root, target_is_directory=True)
    (root / "dangling.py").symlink_to(root / "nowhere.py")
    outside.mkdir()
    (outside / "secret.py").write_text("TOKEN = 1\n")
    (root / "escape.py").symlink_to(outside / "secret.py")
    os.mkfifo(root / "pipe.py")
    (root / "pipe.py").chmod(0o644)  # whatever the umask


def test_the_runner_records_every_kind_of_bad_input_in_the_run_message(code_db, tmp_path) -> None:
    """A real runner's code-ingest over a tree holding every kind of bad input, and a second codebase
    whose root vanished: the run fails (the vanished root), its job_runs.message names it and gives
    the other codebase's line, which counts each kind; that codebase is ingested all the same."""
    add_bad_links(code_db.root, tmp_path / "outside")
    gone = tmp_path / "gone"
    gone.mkdir()
    with code_db.connect() as conn:
        codebases.add(conn, "gone", str(gone), (), ())
        conn.execute("SELECT autopilot.set_setting('embeddings.model', 'hashing')")
    gone.rmdir()
    process = subprocess.Popen(
        [*autopilot_argv(), "runner", "start", "--dsn", code_db.dsn, "--poll-interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        with code_db.connect() as conn:
            status, message = wait_for(
                lambda: conn.execute(
                    "SELECT status, message FROM autopilot.job_runs"
                    " WHERE job_name = 'code-ingest' AND status <> 'running' ORDER BY id LIMIT 1"
                ).fetchone(),
                "the code-ingest run",
                timeout=120,
            )
            ingested = one(conn, "SELECT count(*) FROM autopilot.code_files WHERE codebase = 'demo'")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert status == "failed"
    vanished = f"RuntimeError: gone: codebase root '{gone}' is not a directory (moved or deleted?); "
    assert vanished in message, message
    demo = message.split(vanished, 1)[1]
    assert demo.startswith(
        "demo: 16 files; 7 parsed; 0 unchanged; 0 removed; 9 skipped (1 binary, 1 broken symlink,"
        " 1 not a regular file, 1 outside the root, 3 symlink loop, 1 too large, 1 unknown language)"
    ), demo
    assert "; 1 with syntax errors; 1 not UTF-8 in " in demo
    assert (
        f" s; to check: dangling.py: broken symlink (to {code_db.root}/nowhere.py, which does not exist),"
        " pipe.py: not a regular file (mode prw-r--r--),"
        f" escape.py: outside the root (resolves to {tmp_path}/outside/secret.py),"
        " cycle_a.py: symlink loop (a cycle of links)"
    ) in demo
    assert ingested == 16  # every file of demo has its row: ingested, or skipped with the reason


def test_a_file_that_cannot_be_read_is_skipped_with_the_reason_and_the_rest_goes_on(code_db) -> None:
    """Through the worker: a file that turns into something unreadable between the listing and its
    reading (a live tree), and, where permissions hold (not root), a file nobody may read."""
    root = code_db.root
    expected = 1
    if os.geteuid() != 0:
        (root / "shapes" / "units.py").chmod(0)
        expected = 2

    def live_tree(fields: dict) -> None:
        if fields.get("files") == 1:  # web/http.js is read last: it becomes a FIFO meanwhile
            (root / "web" / "http.js").unlink()
            os.mkfifo(root / "web" / "http.js")

    with code_db.connect() as conn:
        conn.execute("SELECT autopilot.set_setting('embeddings.model', 'hashing')")
    message = code_ingest({}, job_context(code_db.dsn, progress_sink=live_tree, progress_interval=0))
    assert message.startswith(f"demo: 10 files; {7 - expected} parsed;"), message
    assert (
        f"{expected} unreadable)" in message
        and "to check: web/http.js: unreadable (not a regular file" in message
    )
    with code_db.connect() as conn:
        reasons = dict(
            conn.execute("SELECT file_path, skip_reason FROM autopilot.code_files WHERE status = 'skipped'")
        )
        chunks = one(conn, "SELECT count(*) FROM autopilot.code_chunks WHERE file_path = 'web/client.js'")
    assert reasons["web/http.js"].startswith("unreadable (not a regular file, mode p")
    if expected == 2:
        assert reasons["shapes/units.py"] == "unreadable (Permission denied)"
    assert chunks > 0  # the files around it are ingested


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any directory")
def test_files_below_an_unreadable_directory_are_kept_not_removed(code_db) -> None:
    """A directory the walk cannot read hides its files: they are kept as they were (not marked removed,
    their chunks current), and the summary says so. A root that cannot be read fails the run."""
    ingest(code_db)
    web = code_db.root / "web"
    web.chmod(0)
    try:
        summary = ingest(code_db)
        with code_db.connect() as conn:
            statuses = dict(conn.execute("SELECT file_path, status FROM autopilot.code_files"))
            current = one(
                conn,
                "SELECT count(*) FROM autopilot.code_chunks"
                " WHERE starts_with(file_path, 'web/') AND superseded_at IS NULL",
            )
    finally:
        web.chmod(0o755)
    assert summary.removed == 0 and summary.files == 8
    assert "1 unreadable directory, whose files are kept as they were (first: web: Permission denied)" in (
        summary.line()
    )
    assert statuses["web/client.js"] == statuses["web/http.js"] == "ingested" and current == 2
    code_db.root.chmod(0o311)  # searchable, not listable
    try:
        with pytest.raises(CodebaseError, match=r"cannot read the codebase root .*: Permission denied"):
            ingest(code_db)
    finally:
        code_db.root.chmod(0o755)


def test_names_that_are_not_utf8_are_counted_and_shown_escaped(code_db) -> None:
    """A file name that is not UTF-8 cannot be stored (counted, not recorded); a link to such a name
    is recorded with the bytes of the name shown as escapes."""
    root = os.fsencode(code_db.root)
    with open(os.path.join(root, b"caf\xe9.py"), "w") as handle:
        handle.write("x = 1\n")
    os.symlink(os.path.join(root, b"gone-\xe9.py"), os.path.join(root, b"dangling.py"))
    with code_db.connect() as conn:
        conn.execute("SELECT autopilot.set_setting('embeddings.model', 'hashing')")
    message = code_ingest({}, job_context(code_db.dsn))
    assert message.startswith("demo: 12 files; 7 parsed;"), message
    assert "1 file name not UTF-8" in message and "1 broken symlink" in message
    assert (
        "to check: dangling.py: broken symlink (to " in message
        and "/gone-\\xe9.py, which does not" in message
    )
    with code_db.connect() as conn:
        reason = one(conn, "SELECT skip_reason FROM autopilot.code_files WHERE file_path = 'dangling.py'")
        recorded = one(conn, "SELECT count(*) FROM autopilot.code_files")
        last = one(
            conn, "SELECT last_summary -> 'first_skipped' ->> 'broken symlink' FROM autopilot.codebases"
        )
    assert reason.startswith("broken symlink (to ") and reason.endswith(
        "/gone-\\xe9.py, which does not exist)"
    )
    assert recorded == 11 and last.startswith("dangling.py: broken symlink")


def test_graph_populate_fails_with_pagerank_and_its_retry_ranks_the_graph(code_db) -> None:
    """A PageRank run that fails (here: it may not iterate enough to converge) fails graph-populate with
    its message; the next graph-populate finds the graph up to date but its nodes unranked, and runs
    PageRank again."""
    ingest(code_db)
    with code_db.connect() as conn:
        conn.execute("SELECT autopilot.set_setting('pagerank.max_iterations', '1')")
    with pytest.raises(RuntimeError, match=r"demo: 10 files changed.* \| pagerank: failed \(") as failure:
        graph_populate({}, job_context(code_db.dsn))
    assert "iterations" in str(failure.value)
    with code_db.connect() as conn:
        assert not one(conn, "SELECT count(*) FROM autopilot.graph_nodes WHERE pagerank IS NOT NULL")
        conn.execute("SELECT autopilot.reset_setting('pagerank.max_iterations')")
    again = graph_populate({}, job_context(code_db.dsn))
    assert again.startswith("demo: graph up to date | pagerank: succeeded"), again
    with code_db.connect() as conn:
        assert not one(conn, "SELECT count(*) FROM autopilot.graph_nodes WHERE pagerank IS NULL")
    assert graph_populate({}, job_context(code_db.dsn)) == "demo: graph up to date"  # ranked: not again
