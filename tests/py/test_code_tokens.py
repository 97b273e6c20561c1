"""autopilot._code_tokens over real code: the standard library of the interpreter running the tests.

In an extension install it is compiled (src/code_tokens.c); code_chunks.search_vector is generated from
it, so it must give the SQL definition's result byte for byte (tests/sql/_code_tokens.sql checks
tricky strings; this, a corpus nobody here wrote, its non-ASCII files included)."""

from __future__ import annotations

import pathlib
import sysconfig

REFERENCE = """
    regexp_replace(
        regexp_replace(
            regexp_replace(t, '([[:lower:][:digit:]])([[:upper:]])', '\\1 \\2', 'g'),
            '([[:upper:]]+)([[:upper:]][[:lower:]])', '\\1 \\2', 'g'
        ),
        '[^[:alnum:]]+', ' ', 'g'
    )"""


def _corpus(limit: int = 3_000_000) -> list[str]:
    """Standard-library sources, about ``limit`` characters: files with text outside ASCII for half of
    it, ASCII ones for the rest, each in path order."""
    texts = []
    for path in sorted(pathlib.Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if "site-packages" in path.parts or "dist-packages" in path.parts:
            continue
        try:
            texts.append(path.read_text("utf-8").replace("\0", ""))
        except (OSError, UnicodeDecodeError):
            continue
    kept = []
    for ascii_only in (False, True):
        total = 0
        for text in (t for t in texts if t.isascii() == ascii_only):
            if total + len(text) > limit // 2:
                continue
            kept.append(text)
            total += len(text)
    return kept


def test_the_compiled_tokenizer_gives_the_sql_result_on_the_standard_library(installed_db):
    corpus = _corpus()
    assert len(corpus) > 100 and any(not text.isascii() for text in corpus)
    with installed_db.connect() as conn:
        language = conn.execute(
            "SELECT l.lanname FROM pg_proc AS p JOIN pg_language AS l ON l.oid = p.prolang"
            " WHERE p.oid = 'autopilot._code_tokens(text)'::regprocedure"
        ).fetchone()[0]
        assert language == ("c" if installed_db.mode == "extension" else "sql")
        differing = conn.execute(
            "SELECT count(*) FROM unnest(%s::text[]) AS u (t)"
            f" WHERE autopilot._code_tokens(t) <> {REFERENCE}",
            [corpus],
        ).fetchone()[0]
    assert differing == 0
