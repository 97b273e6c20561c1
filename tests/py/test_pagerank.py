"""pagerank (autopilot.recalculate_all_pagerank) against networkx.pagerank on random graphs, run the way a
DBA runs it (the CLI), in both install modes; and the SQL kernel an install without the compiled one uses."""

from __future__ import annotations

import random

import networkx as nx
import psycopg
import pytest

KERNEL = (
    "autopilot._pagerank_kernel(bigint[], bigint[], bigint[], double precision[], "
    "double precision, double precision, integer)"
)


def random_graph(seed: int) -> tuple[dict[str, list[str]], list[tuple[str, str, float]]]:
    """Three codebases of different sizes: weighted edges, self-loops, dangling and isolated nodes,
    and a few edges between codebases (part of neither graph)."""
    rng = random.Random(seed)
    nodes: dict[str, list[str]] = {}
    edges: dict[tuple[str, str], float] = {}
    for codebase, size in (("api", 60), ("web", 25), ("tiny", 2)):
        keys = [f"{codebase}/m{i}" for i in range(size)]
        nodes[codebase] = keys
        for source in keys[: int(size * 0.8)]:  # the last fifth: dangling or isolated
            for target in rng.sample(keys, k=min(size, rng.randint(1, 6))):
                edges[(source, target)] = round(rng.uniform(0.1, 10), 3)
    for _ in range(5):
        edges[(rng.choice(nodes["web"]), rng.choice(nodes["api"]))] = 1.0
    return nodes, [(s, t, w) for (s, t), w in edges.items()]


def load(conn: psycopg.Connection, nodes, edges) -> None:
    with conn.cursor() as cur:
        for codebase, keys in nodes.items():
            cur.executemany(
                "INSERT INTO autopilot.graph_nodes (codebase, node_key) VALUES (%s, %s)",
                [(codebase, key) for key in keys],
            )
        cur.executemany(
            "INSERT INTO autopilot.graph_edges (source_id, target_id, weight) SELECT s.id, t.id, %s"
            " FROM autopilot.graph_nodes AS s, autopilot.graph_nodes AS t"
            " WHERE s.node_key = %s AND t.node_key = %s",
            [(w, s, t) for s, t, w in edges],
        )


def expected_scores(nodes, edges) -> dict[str, float]:
    """networkx.pagerank per codebase, edges between codebases left out."""
    scores: dict[str, float] = {}
    for keys in nodes.values():
        members = set(keys)
        graph = nx.DiGraph()
        graph.add_nodes_from(keys)
        graph.add_weighted_edges_from((s, t, w) for s, t, w in edges if s in members and t in members)
        scores.update(nx.pagerank(graph, alpha=0.85, tol=1e-15, max_iter=10_000))
    return scores


@pytest.mark.parametrize("seed", [1, 2])
def test_scores_match_networkx(installed_db, autopilot, seed):
    nodes, edges = random_graph(seed)
    with installed_db.connect() as conn:
        load(conn, nodes, edges)

    result = autopilot("run", "pagerank", "--dsn", installed_db.dsn)
    assert result.exit_code == 0, result.output

    expected = expected_scores(nodes, edges)
    with installed_db.connect() as conn:
        ours = dict(conn.execute("SELECT node_key, pagerank FROM autopilot.graph_nodes").fetchall())
        status, summary = conn.execute(
            "SELECT status, details FROM autopilot.job_runs WHERE job_name = 'pagerank'"
        ).fetchone()
    assert set(ours) == set(expected)
    assert max(abs(ours[k] - expected[k]) for k in expected) < 1e-9
    assert status == "succeeded"
    assert summary["kernel"] == ("compiled" if installed_db.mode == "extension" else "sql")
    assert summary["nodes"] == sum(len(keys) for keys in nodes.values())
    cross = sum(1 for s, t, _ in edges if s.split("/")[0] != t.split("/")[0])
    assert summary["cross_codebase_edges"] == cross
    assert summary["edges"] == len(edges) - cross
    for codebase in nodes:
        assert summary["codebases"][codebase]["final_change"] < 1e-10
    assert summary["codebases"]["tiny"]["iterations"] >= 1


def test_install_without_superuser_runs_the_sql_kernel(db, admin_dsn):
    """CREATE EXTENSION by a role that may not create C functions: the SQL kernel, the same scores."""
    role = f"{db.name}_owner"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(f'GRANT CREATE ON DATABASE "{db.name}" TO "{role}"')
    try:
        with psycopg.connect(db.dsn, autocommit=True) as conn:
            conn.execute(f'SET ROLE "{role}"')
            conn.execute("CREATE EXTENSION autopilot")
            assert conn.execute("SELECT to_regprocedure(%s)", [KERNEL]).fetchone()[0] is None
            nodes, edges = random_graph(3)
            load(conn, nodes, edges)
            summary = conn.execute("SELECT autopilot.recalculate_all_pagerank()").fetchone()[0]
            ours = dict(conn.execute("SELECT node_key, pagerank FROM autopilot.graph_nodes").fetchall())
        assert summary["kernel"] == "sql"
        expected = expected_scores(nodes, edges)
        assert max(abs(ours[k] - expected[k]) for k in expected) < 1e-9
    finally:
        with psycopg.connect(db.dsn, autocommit=True) as admin:
            admin.execute(f'DROP OWNED BY "{role}" CASCADE')  # the extension, its schema, the grant
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'DROP ROLE "{role}"')


def test_a_failed_run_keeps_the_previous_scores(installed_db, autopilot):
    """Too few iterations: the run fails with the reason in the ledger and the scores stay as they were."""
    nodes, edges = random_graph(4)
    with installed_db.connect() as conn:
        load(conn, nodes, edges)
    assert autopilot("run", "pagerank", "--dsn", installed_db.dsn).exit_code == 0
    with installed_db.connect() as conn:
        before = conn.execute("SELECT id, pagerank FROM autopilot.graph_nodes ORDER BY id").fetchall()
        conn.execute("SELECT autopilot.set_setting('pagerank.max_iterations', '2')")
        conn.execute("UPDATE autopilot.graph_edges SET weight = weight * 2 WHERE source_id % 2 = 0")

    result = autopilot("run", "pagerank", "--dsn", installed_db.dsn)
    assert result.exit_code != 0
    assert "did not converge in 2 iterations" in result.output
    assert "(pagerank.max_iterations)" in result.output
    with installed_db.connect() as conn:
        after = conn.execute("SELECT id, pagerank FROM autopilot.graph_nodes ORDER BY id").fetchall()
        runs = conn.execute(
            "SELECT status, error_sqlstate, message FROM autopilot.job_runs"
            " WHERE job_name = 'pagerank' ORDER BY id"
        ).fetchall()
    assert after == before
    assert [status for status, _, _ in runs] == ["succeeded", "failed"]
    assert runs[1][1] == "54000"
    assert "did not converge in 2 iterations" in runs[1][2]
