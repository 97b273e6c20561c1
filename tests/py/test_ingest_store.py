"""ingest.store's statements on a real server: the plans the per-file writes get.

A first ingest writes into an empty code_chunks, and psycopg prepares a statement after a few
executions: the generic plan the server caches then is made on a table with no rows, and stays while
the table grows. The write of one file must stay an index lookup of that file under such a plan.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import psycopg
from psycopg import sql

from pg_autopilot import codebases
from pg_autopilot.ingest.chunker import chunk_source
from pg_autopilot.ingest.languages import PYTHON
from pg_autopilot.ingest.store import DELETE_FILE_SYMBOLS, write_parsed


def index_conditions(plan: dict) -> list[str]:
    found = [plan["Index Cond"]] if "Index Cond" in plan else []
    for child in plan.get("Plans", []):
        found += index_conditions(child)
    return found


def test_superseding_a_file_looks_up_its_chunks_by_path_under_a_generic_plan(
    installed_db, tmp_path: Path
) -> None:
    with installed_db.connect() as conn:
        codebases.add(conn, "a", str(tmp_path), ["*.py"], [])
    parsed = chunk_source("pkg/x.py", b"def f():\n    return 1\n", PYTHON)
    with psycopg.connect(installed_db.dsn, prepare_threshold=0) as conn:  # every statement prepared
        conn.execute("SET plan_cache_mode = force_generic_plan")
        write_parsed(conn, "a", parsed, "hash-1", 22)
        write_parsed(conn, "a", parsed, "hash-2", 22)  # supersedes the first version's chunk
        conn.commit()
        assert conn.execute(
            "SELECT count(*) FILTER (WHERE c.superseded_at IS NULL), count(*) FROM autopilot.code_chunks AS c"
        ).fetchone() == (1, 2)
        name, types = conn.execute(
            "SELECT p.name, p.parameter_types::text[] FROM pg_catalog.pg_prepared_statements AS p"
            " WHERE p.statement ~ '^UPDATE autopilot.code_chunks AS c SET superseded_at'"
        ).fetchone()
        path = ["pkg/x.py"] if types[1] == "text[]" else "pkg/x.py"
        plan = conn.execute(
            sql.SQL("EXPLAIN (FORMAT JSON) EXECUTE {}({}, {})").format(
                sql.Identifier(name), sql.Literal("a"), sql.Literal(path)
            ),
            prepare=False,
        ).fetchone()[0]
    conditions = index_conditions(plan[0]["Plan"])
    assert any("file_path" in condition for condition in conditions), conditions


def scans(plan: dict) -> list[dict]:
    found = [plan] if "Scan" in plan["Node Type"] else []
    for child in plan.get("Plans", []):
        found += scans(child)
    return found


def test_a_new_files_symbols_are_not_looked_for(installed_db, tmp_path: Path) -> None:
    """The first ingest of a codebase into a table whose statistics know only another one: writing a new
    file does not scan for symbols it cannot have (none without its code_files row), and writing a file
    again replaces its symbols."""
    with installed_db.connect() as conn:
        codebases.add(conn, "a", str(tmp_path), ["*.py"], [])
        codebases.add(conn, "b", str(tmp_path), ["*.py"], [])
    source = "\n".join(f"def f{i}(x):\n    return g{i}(x) + h(x)\n" for i in range(40)).encode()
    parsed = chunk_source("x.py", source, PYTHON)
    # a reference row per name and kind, counted (h is called 40 times: one row)
    symbols = (
        len(parsed.definitions) + len({(r.name, r.kind) for r in parsed.references}) + len(parsed.imports)
    )
    with psycopg.connect(installed_db.dsn) as conn:
        for i in range(20):
            write_parsed(conn, "a", replace(parsed, path=f"a{i}.py"), f"hash-{i}", len(source))
        conn.commit()
        conn.execute("ANALYZE autopilot.code_symbols")
        write_parsed(conn, "b", replace(parsed, path="b0.py"), "hash-b0", len(source))
        conn.commit()
        plan = conn.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + DELETE_FILE_SYMBOLS, {"codebase": "b", "path": "b1.py"}
        ).fetchone()[0]
        conn.rollback()
        symbol_scans = [s for s in scans(plan[0]["Plan"]) if s.get("Relation Name") == "code_symbols"]
        assert symbol_scans and all(s["Actual Loops"] == 0 for s in symbol_scans), plan
        write_parsed(conn, "b", replace(parsed, path="b0.py"), "hash-b0-2", len(source))
        conn.commit()
        (count,) = conn.execute(
            "SELECT count(*) FROM autopilot.code_symbols AS s"
            " WHERE s.codebase = 'b' AND s.file_path = 'b0.py'"
        ).fetchone()
        assert count == symbols


def test_references_are_counted_per_name_and_kind(installed_db, tmp_path: Path) -> None:
    """One reference row per file, name and kind: its first line, and how many times the file uses it
    (graph-populate weights calls by it)."""
    with installed_db.connect() as conn:
        codebases.add(conn, "a", str(tmp_path), ["*.py"], [])
    source = b"class B(A):\n    pass\n\ndef f(x):\n    g(x)\n    g(x)\n    return A(g(h(x)))\n"
    parsed = chunk_source("x.py", source, PYTHON)
    with psycopg.connect(installed_db.dsn) as conn:
        write_parsed(conn, "a", parsed, "hash", len(source))
        conn.commit()
        rows = conn.execute(
            "SELECT s.name, s.kind, s.line, s.occurrences FROM autopilot.code_symbols AS s"
            " WHERE s.role = 'reference' ORDER BY 1, 2"
        ).fetchall()
        definitions = conn.execute(
            "SELECT s.name, s.occurrences FROM autopilot.code_symbols AS s"
            " WHERE s.role = 'definition' ORDER BY 1"
        ).fetchall()
    assert rows == [("A", "call", 7, 1), ("A", "class", 1, 1), ("g", "call", 5, 3), ("h", "call", 7, 1)]
    assert definitions == [("B", 1), ("f", 1)]


def test_text_with_copy_special_characters_is_stored_as_it_is(installed_db, tmp_path: Path) -> None:
    """The rows go to the server as COPY text: tabs, backslashes (\\N too), carriage returns and
    newlines in a chunk come back unchanged, a NUL as U+FFFD."""
    with installed_db.connect() as conn:
        codebases.add(conn, "a", str(tmp_path), ["*.py"], [])
    source = (
        b"def f():\r\n\treturn '\\N\\t\\\\ \t tab'  # \\\r\n\ndef g():\n    return '\x00' + \"\xc3\xa9\\n\"\n"
    )
    parsed = chunk_source("dir with\ttab\\x.py", source, PYTHON)
    assert parsed.chunks
    with psycopg.connect(installed_db.dsn) as conn:
        write_parsed(conn, "a", parsed, "hash", len(source))
        conn.commit()
        stored = conn.execute(
            "SELECT c.file_path, c.content FROM autopilot.code_chunks AS c ORDER BY c.chunk_index"
        ).fetchall()
    assert stored == [(parsed.path, chunk.text.replace("\0", "\ufffd")) for chunk in parsed.chunks]
    assert any("\t" in text and "\\N" in text and "\r" in text for _, text in stored)
    assert any("\ufffd" in text and "é" in text for _, text in stored)
