"""template-sync against real git repositories the tests make: a local bare repository, and the same served
over HTTP with basic authentication (git http-backend behind a server on 127.0.0.1).

Each change is committed in a work clone and pushed, as a template author would; the worker is called as
the runner calls it. Failed fetches (a bad URL, a missing branch, refused credentials, a force-pushed
branch) must fail the job with a clear message and leave the database exactly as it was; no password may
reach a command line or a message.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from helpers import flat

from pg_autopilot.knowledge import KnowledgeError
from pg_autopilot.knowledge.git import parse_remote
from pg_autopilot.workers.registry import JobContext
from pg_autopilot.workers.template_sync import template_sync

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Template Author",
    "GIT_AUTHOR_EMAIL": "author@example.org",
    "GIT_COMMITTER_NAME": "Template Author",
    "GIT_COMMITTER_EMAIL": "author@example.org",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
}


def git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **GIT_ENV}, check=False
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def template(name: str, body: str = "body", kind: str = "prompt") -> str:
    return json.dumps({"type": kind, "name": name, "description": f"the {name} template", "content": body})


class Repository:
    """A bare repository (the remote) and a work clone that commits and pushes to it."""

    def __init__(self, root: Path, branch: str = "main"):
        self.bare = root / "templates.git"
        self.work = root / "work"
        self.branch = branch
        git("init", "--quiet", "--bare", f"--initial-branch={branch}", str(self.bare))
        git("init", "--quiet", f"--initial-branch={branch}", str(self.work))
        git("remote", "add", "origin", str(self.bare), cwd=self.work)

    def commit(self, files: dict[str, str | None], message: str = "change", force: bool = False) -> str:
        """Writes (or, for None, deletes) the files, commits and pushes; returns the commit."""
        for path, text in files.items():
            target = self.work / path
            if text is None:
                git("rm", "--quiet", path, cwd=self.work)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            git("add", path, cwd=self.work)
        git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.work)
        git("push", "--quiet", *(["--force"] if force else []), "origin", self.branch, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)


def job_context(dsn: str) -> JobContext:
    return JobContext(
        job_id=0, attempt=1, queue="default", node="test", dsn=dsn, deadline=time.monotonic() + 600
    )


def one(conn: psycopg.Connection, query: str, params: list | None = None):
    return conn.execute(query, params or []).fetchone()[0]


def database_state(database) -> tuple:
    """Everything template-sync writes, down to each row's physical version."""
    with database.connect() as conn:
        return tuple(
            one(
                conn,
                f"SELECT md5(coalesce(string_agg(ctid::text || xmin::text, ',' ORDER BY ctid), '')) FROM {t}",
            )
            for t in (
                "autopilot.knowledge_artifacts",
                "autopilot.knowledge_artifact_versions",
                "autopilot.template_sync_state",
            )
        )


def artifacts(database) -> dict[str, tuple]:
    with database.connect() as conn:
        return {
            name: (version, path, content)
            for name, version, path, content in conn.execute(
                "SELECT name, version, source_path, content ->> 'content' FROM autopilot.knowledge_artifacts"
                " WHERE source = 'template-sync'"
            )
        }


def set_settings(database, **values: str) -> None:
    with database.connect() as conn:
        for name, value in values.items():
            conn.execute("SELECT autopilot.set_setting(%s, %s)", [f"template_sync.{name}", value])


@pytest.fixture
def synced(new_database, tmp_path):
    """An installed database whose template_sync settings point at a fresh bare repository (with the
    Repository as .repo) and a clone directory under tmp_path."""
    database = new_database("tsync")
    database.install("extension")
    database.repo = Repository(tmp_path / "remote")
    database.clone_dir = tmp_path / "state" / "template-sync"
    set_settings(
        database, repository=str(database.repo.bare), branch="main", directory=str(database.clone_dir)
    )
    return database


def test_template_sync_applies_the_whole_tree_then_only_what_each_commit_changed(synced) -> None:
    repo = synced.repo
    first = repo.commit(
        {
            "prompts/review.json": template("review"),
            "prompts/summary.json": template("summary"),
            "code/retry.json": template("retry", kind="code_template"),
            "code/old.json": template("old"),
            "README.md": "# templates\n",
        }
    )
    message = template_sync({}, job_context(synced.dsn))
    assert message == (
        f"template-sync {repo.bare} main {first[:12]} (whole tree): 4 template files; 4 added, 0 changed, "
        "0 unchanged"
    )
    with synced.connect() as conn:
        assert conn.execute(
            "SELECT repository, branch, commit_sha, summary FROM autopilot.template_sync_state"
        ).fetchone() == (
            str(repo.bare),
            "main",
            first,
            {"added": 4, "changed": 0, "unchanged": 0, "deleted": 0, "invalid": 0},
        )
        retry_id = one(conn, "SELECT id FROM autopilot.knowledge_artifacts WHERE name = 'retry'")
    assert (synced.clone_dir / "repository.git").is_dir()
    assert oct((synced.clone_dir).stat().st_mode & 0o777) == "0o700"

    # one commit: a change, an addition, a deletion and a rename (a deletion plus an addition for git)
    second = repo.commit(
        {
            "prompts/review.json": template("review", body="review v2"),
            "prompts/plan.json": template("plan"),
            "code/old.json": None,
            "code/retry.json": None,
            "code/retry-with-backoff.json": template("retry", kind="code_template"),
        }
    )
    message = template_sync({}, job_context(synced.dsn))
    assert message == (
        f"template-sync {repo.bare} main {first[:12]}..{second[:12]}: 4 template files; 1 added, 1 changed, "
        "1 deleted, 2 unchanged"
    )
    assert artifacts(synced) == {
        "review": (2, "prompts/review.json", "review v2"),
        "summary": (1, "prompts/summary.json", "body"),
        "plan": (1, "prompts/plan.json", "body"),
        "retry": (1, "code/retry-with-backoff.json", "body"),  # moved: the same artifact, its version kept
    }
    with synced.connect() as conn:
        assert one(conn, "SELECT id FROM autopilot.knowledge_artifacts WHERE name = 'retry'") == retry_id
        assert conn.execute(
            "SELECT v.version, v.content ->> 'content' FROM autopilot.knowledge_artifact_versions AS v"
            " JOIN autopilot.knowledge_artifacts AS a ON a.id = v.artifact_id WHERE a.name = 'review'"
        ).fetchall() == [(1, "body")]
        assert one(conn, "SELECT commit_sha FROM autopilot.template_sync_state") == second

    # nothing new: nothing written
    before = database_state(synced)
    assert (
        template_sync({}, job_context(synced.dsn))
        == f"template-sync {repo.bare} main: up to date at {second[:12]}"
    )
    assert database_state(synced) == before


def test_a_bad_template_in_a_commit_is_named_and_the_rest_applied(synced) -> None:
    repo = synced.repo
    repo.commit({"a.json": template("a"), "b.json": template("b")})
    template_sync({}, job_context(synced.dsn))
    tip = repo.commit(
        {
            "a.json": '{"type": "prompt", "name": "a", "content": ',  # broken: the artifact stays as it was
            "b.json": template("b", body="b v2"),
            "c.json": json.dumps({"type": "prompt", "name": "c"}),  # no content
            "d.json": template("d"),
            "e.json": template("d"),  # d twice: neither
        }
    )
    message = template_sync({}, job_context(synced.dsn))
    assert "5 template files; 0 added, 1 changed, 0 unchanged; 4 not loaded:" in message
    assert "a.json: malformed JSON: line 1, column 44: Expecting value" in message
    assert "c.json: does not match the template schema: 'content' is a required property" in message
    assert "d.json: declares prompt 'd', as e.json does too: neither is loaded" in message
    assert artifacts(synced) == {"a": (1, "a.json", "body"), "b": (2, "b.json", "b v2")}
    with synced.connect() as conn:
        assert one(conn, "SELECT commit_sha FROM autopilot.template_sync_state") == tip
    # fixed in the next commit, they load
    repo.commit({"a.json": template("a", body="a v2"), "c.json": template("c"), "e.json": None})
    assert "2 added, 1 changed, 1 unchanged" in template_sync({}, job_context(synced.dsn))
    assert set(artifacts(synced)) == {"a", "b", "c", "d"}


def test_failed_fetches_change_nothing_and_say_why(synced, tmp_path) -> None:
    repo = synced.repo
    repo.commit({"a.json": template("a")})
    template_sync({}, job_context(synced.dsn))
    before = database_state(synced)

    set_settings(synced, repository=str(tmp_path / "no-such-repository.git"))
    with pytest.raises(KnowledgeError) as bad_url:
        template_sync({}, job_context(synced.dsn))
    assert (
        f"template-sync: fetching {tmp_path}/no-such-repository.git (branch main) failed; nothing was changed"
        in str(bad_url.value)
    )
    assert "does not appear to be a git repository" in str(bad_url.value)
    assert database_state(synced) == before

    set_settings(synced, repository=str(repo.bare), branch="release")
    with pytest.raises(KnowledgeError, match="the branch release does not exist in"):
        template_sync({}, job_context(synced.dsn))
    set_settings(synced, branch="-upload-pack=touch")
    with pytest.raises(KnowledgeError, match="is not a valid branch name"):
        template_sync({}, job_context(synced.dsn))
    set_settings(synced, branch="main", repository="--upload-pack=touch /tmp/pwned")
    with pytest.raises(KnowledgeError, match="starts with '-': git would read an option"):
        template_sync({}, job_context(synced.dsn))
    assert database_state(synced) == before


def test_a_force_pushed_branch_fails_until_a_full_sync_accepts_it(synced, autopilot) -> None:
    repo = synced.repo
    repo.commit({"a.json": template("a"), "b.json": template("b")})
    synced_commit = repo.commit({"b.json": template("b", body="b v2")})
    template_sync({}, job_context(synced.dsn))
    before = database_state(synced)

    # history rewritten: the last commit replaced by another, pushed with --force
    git("reset", "--quiet", "--hard", "HEAD~1", cwd=repo.work)
    rewritten = repo.commit({"c.json": template("c"), "a.json": None}, message="rewrite", force=True)
    with pytest.raises(KnowledgeError) as error:
        template_sync({}, job_context(synced.dsn))
    message = str(error.value)
    assert (
        f"the branch main of {repo.bare} was rewritten (force-pushed?): its tip {rewritten[:12]} does not "
        f"descend from {synced_commit[:12]}, the commit last synced; nothing was changed"
    ) in message
    assert "autopilot knowledge sync --full" in error.value.hint
    assert database_state(synced) == before

    full = autopilot("knowledge", "sync", "--full", "--dsn", synced.dsn)
    assert full.exit_code == 0, full.output
    assert "(whole tree): 2 template files; 1 added, 1 changed, 1 deleted, 0 unchanged" in flat(full.stdout)
    # b follows the branch back to its first content, as a new version; a, gone from it, is deleted
    assert artifacts(synced) == {"b": (2, "b.json", "body"), "c": (1, "c.json", "body")}
    with synced.connect() as conn:
        assert one(conn, "SELECT commit_sha FROM autopilot.template_sync_state") == rewritten


def test_another_repository_is_synced_whole_and_what_the_old_one_held_goes(synced, tmp_path) -> None:
    synced.repo.commit({"a.json": template("a"), "b.json": template("b")})
    template_sync({}, job_context(synced.dsn))
    other = Repository(tmp_path / "other", branch="trunk")
    other.commit({"b.json": template("b"), "z.json": template("z")})
    set_settings(synced, repository=str(other.bare), branch="trunk")
    message = template_sync({}, job_context(synced.dsn))
    assert "(whole tree): 2 template files; 1 added, 0 changed, 1 deleted, 1 unchanged" in message
    assert set(artifacts(synced)) == {"b", "z"}


def test_template_sync_leaves_alone_a_directory_that_is_not_its_clone(synced) -> None:
    synced.repo.commit({"a.json": template("a")})
    clone = synced.clone_dir / "repository.git"
    clone.mkdir(parents=True)
    (clone / "precious.txt").write_text("keep me")
    with pytest.raises(KnowledgeError, match="exists and is not template-sync's clone: it is left alone"):
        template_sync({}, job_context(synced.dsn))
    assert (clone / "precious.txt").read_text() == "keep me"


def test_an_unset_repository_syncs_nothing(synced) -> None:
    set_settings(synced, repository="")
    assert (
        template_sync({}, job_context(synced.dsn)) == "template_sync.repository is not set: nothing to sync"
    )


# -- over HTTP, with credentials -----------------------------------------------------------------------


class _GitHttp(BaseHTTPRequestHandler):
    """git's smart HTTP protocol (git http-backend as CGI), behind basic authentication."""

    root: str
    credentials: str  # user:password

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, *args: object) -> None:
        pass

    def _serve(self) -> None:
        expected = "Basic " + base64.b64encode(self.credentials.encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="templates"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": self.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": self.credentials.partition(":")[0],
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
        }
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(": ")
            if name.lower() == "status":
                status = int(value.split(" ")[0])
            elif name:
                headers.append((name, value))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@contextlib.contextmanager
def git_http_server(root: Path, credentials: str) -> Iterator[str]:
    handler = type("Handler", (_GitHttp,), {"root": str(root), "credentials": credentials})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def git_argv_log(tmp_path, monkeypatch) -> Path:
    """Every git command line the sync runs, recorded by a `git` first on PATH that then runs the real one."""
    real = shutil.which("git")
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    log = tmp_path / "git-argv.log"
    shim = shim_dir / "git"
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\nexec {real} "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim_dir}:{os.environ['PATH']}")
    return log


SECRET = "s3cr3t-T0ken"


def test_template_sync_over_http_keeps_the_password_off_command_lines_and_messages(
    synced, git_argv_log, monkeypatch, caplog
) -> None:
    synced.repo.commit({"a.json": template("a"), "b.json": template("b")})
    with git_http_server(synced.repo.bare.parent, f"deploy:{SECRET}") as base:
        url = f"{base}/templates.git"

        # no credentials at all: authentication fails, with a hint where they go
        set_settings(synced, repository=url)
        before = database_state(synced)
        with pytest.raises(KnowledgeError) as refused:
            template_sync({}, job_context(synced.dsn))
        assert f"template-sync: authentication to {url} (branch main) failed; nothing was changed" in str(
            refused.value
        )
        assert "AUTOPILOT_TEMPLATE_SYNC_PASSWORD" in refused.value.hint

        # a wrong password in the URL: refused, and the URL shown without it
        set_settings(synced, repository=url.replace("http://", "http://deploy:wrong-password@"))
        with pytest.raises(KnowledgeError) as wrong:
            template_sync({}, job_context(synced.dsn))
        assert "authentication to http://***@127.0.0.1:" in str(wrong.value)
        assert "wrong-password" not in str(wrong.value)
        assert database_state(synced) == before

        # the right one in the URL: synced
        set_settings(synced, repository=url.replace("http://", f"http://deploy:{SECRET}@"))
        message = template_sync({}, job_context(synced.dsn))
        assert message.startswith("template-sync http://***@127.0.0.1:") and "2 added" in message
        with synced.connect() as conn:
            assert one(conn, "SELECT repository FROM autopilot.template_sync_state") == url  # no userinfo

        # and from the runner's environment, with a URL that holds none
        synced.repo.commit({"c.json": template("c")})
        set_settings(synced, repository=url)
        monkeypatch.setenv("AUTOPILOT_TEMPLATE_SYNC_USERNAME", "deploy")
        monkeypatch.setenv("AUTOPILOT_TEMPLATE_SYNC_PASSWORD", SECRET)
        assert "1 added" in template_sync({}, job_context(synced.dsn))

    argv = git_argv_log.read_text()
    assert "fetch --quiet --no-tags --end-of-options http://127.0.0.1:" in argv
    assert SECRET not in argv and "wrong-password" not in argv and "deploy" not in argv
    assert SECRET not in caplog.text
    # the private askpass directories are gone
    assert [p.name for p in synced.clone_dir.iterdir() if p.name.startswith("askpass")] == []


def test_parse_remote_keeps_credentials_out_of_the_url_git_gets() -> None:
    remote = parse_remote("https://bot:p%40ss@git.example.org/team/templates.git")
    assert (remote.url, remote.display) == (
        "https://git.example.org/team/templates.git",
        "https://***@git.example.org/team/templates.git",
    )
    assert (remote.username, remote.password) == ("bot", "p@ss")
    ssh = parse_remote("ssh://git@git.example.org/team/templates.git")
    assert (ssh.url, ssh.password) == ("ssh://git@git.example.org/team/templates.git", None)
    assert (
        parse_remote("git@git.example.org:team/templates.git").url == "git@git.example.org:team/templates.git"
    )
    with pytest.raises(KnowledgeError, match="neither a URL nor an absolute path"):
        parse_remote("templates.git")


# -- the runner role of the README, and nothing more --------------------------------------------------

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def readme_runner(synced, admin_dsn):
    """A login role (not a superuser) granted exactly what the README's block grants autopilot_runner
    (the block run whole, each of its roles renamed); its DSN."""
    import re
    import uuid

    from psycopg.conninfo import make_conninfo

    blocks = re.findall(r"```sql\n(.*?)```", README.read_text(), re.S)
    (grants,) = [b for b in blocks if "GRANT" in b and "autopilot_runner" in b]
    suffix = uuid.uuid4().hex[:8]
    roles = {
        r: f"{r}_{suffix}"
        for r in ("autopilot_runner", "autopilot_readonly", "autopilot_app", "autopilot_instance")
    }
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for name in roles.values():
            conn.execute(f"CREATE ROLE {name} LOGIN NOSUPERUSER")
    for role, name in roles.items():
        grants = grants.replace(role, name)
    with synced.connect() as conn:
        conn.execute(grants)
    yield make_conninfo(synced.dsn, user=roles["autopilot_runner"])
    for dsn in (synced.dsn, admin_dsn):
        with psycopg.connect(dsn, autocommit=True) as conn:
            for name in roles.values():
                conn.execute(f"DROP OWNED BY {name}")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for name in roles.values():
            conn.execute(f"DROP ROLE {name}")


def test_the_readme_runner_role_runs_the_four_knowledge_workers(synced, readme_runner, tmp_path) -> None:
    from pg_autopilot.workers.knowledge_migration import knowledge_migration
    from pg_autopilot.workers.template_embed import template_embed
    from pg_autopilot.workers.templates_data_load import templates_data_load

    templates, data = tmp_path / "templates", tmp_path / "templates_data"
    templates.mkdir()
    data.mkdir()
    (templates / "t.json").write_text(template("from-directory"))
    (data / "d.yaml").write_text("a: 1\n")
    with synced.connect() as conn:
        conn.execute("SELECT autopilot.set_setting('knowledge.templates_directory', %s)", [str(templates)])
        conn.execute("SELECT autopilot.set_setting('templates_data.directory', %s)", [str(data)])
        conn.execute("SELECT autopilot.set_setting('embeddings.model', 'hashing')")
    synced.repo.commit({"a.json": template("a"), "b.json": template("b")})
    with psycopg.connect(readme_runner) as conn:
        assert not one(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")

    assert "1 added" in knowledge_migration({}, job_context(readme_runner))
    assert "1 added" in templates_data_load({}, job_context(readme_runner))
    assert "2 added" in template_sync({}, job_context(readme_runner))
    synced.repo.commit({"a.json": template("a", body="v2"), "b.json": None})
    assert "1 changed, 1 deleted" in template_sync({}, job_context(readme_runner))
    assert "2 of 2 artifacts embedded" in template_embed({}, job_context(readme_runner))
    (data / "d.yaml").unlink()
    assert "1 removed" in templates_data_load({}, job_context(readme_runner))
