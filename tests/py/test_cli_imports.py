"""The `autopilot` command imports a command's modules when that command runs: starting the CLI, and
`autopilot check` (started by a monitoring system every few minutes), load neither rich nor jinja2, nor the
backup, runner, code or knowledge packages. Checked in a fresh interpreter, on what it imported (not on
how long it took: bench/health.py times `autopilot check`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import pg_autopilot
from pg_autopilot.cli import cli

# what no command but its own may import
HEAVY = (
    "rich",
    "jinja2",
    "prometheus_client",
    "psycopg_pool",
    "croniter",
    "yaml",
    "torch",
    "sentence_transformers",
    "tree_sitter",
    "pg_autopilot.web",
    "pg_autopilot.backups",
    "pg_autopilot.backups_cli",
    "pg_autopilot.runner",
    "pg_autopilot.runner_cli",
    "pg_autopilot.workers",
    "pg_autopilot.code_cli",
    "pg_autopilot.codebases",
    "pg_autopilot.ingest",
    "pg_autopilot.embeddings",
    "pg_autopilot.knowledge",
    "pg_autopilot.knowledge_cli",
    "pg_autopilot.analysis",
    "pg_autopilot.planning",
    "pg_autopilot.status",
    "pg_autopilot.render",
    "pg_autopilot.testing",
)

COMMANDS = {
    "backups", "check", "code", "codebase", "install", "knowledge", "run", "runner", "schedule", "search",
    "serve", "settings", "status", "sync", "uninstall", "upgrade",
}  # fmt: skip

# Runs `autopilot ARGS...` (none: only imports the CLI) in this interpreter, then writes the exit status
# and the names of the imported modules, as JSON, to the file named first.
PROBE = """
import json, sys
out, args = sys.argv[1], sys.argv[2:]
from pg_autopilot.cli import cli
code = None
if args:
    try:
        cli.main(args, prog_name="autopilot")
    except SystemExit as exc:
        code = exc.code
with open(out, "w") as f:
    json.dump({"exit": code, "modules": sorted(sys.modules)}, f)
"""


def probe(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, int | None, set[str]]:
    out = tmp_path / "probe.json"
    package_root = str(Path(pg_autopilot.__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if k != "AUTOPILOT_DSN" and not k.startswith("PG")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert "Traceback" not in done.stderr, done.stderr
    found = json.loads(out.read_text())
    return done, found["exit"], set(found["modules"])


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_importing_the_cli_imports_no_command_module(tmp_path):
    _, _, modules = probe(tmp_path)
    assert "pg_autopilot.cli" in modules
    assert heavy(modules) == []


def test_the_probe_sees_what_a_command_imports(tmp_path):
    """The same probe, on commands that do import them: the absence above is not the probe's blindness."""
    done, code, modules = probe(tmp_path, "backups", "--help")
    assert code == 0, done.stdout + done.stderr
    assert "verify" in done.stdout
    assert {"pg_autopilot.backups_cli", "pg_autopilot.backups", "rich"} <= modules
    done, code, modules = probe(tmp_path, "--help")
    assert code == 0
    # --help lists every command, and so loads the command groups of their own modules
    assert {"pg_autopilot.runner_cli", "pg_autopilot.code_cli", "pg_autopilot.knowledge_cli"} <= modules


@pytest.mark.pg_cron
@pytest.mark.parametrize("output", ["lines", "json"])
def test_check_imports_only_what_it_needs(synced_db, tmp_path, output):
    args = ["check", "--dsn", synced_db.dsn] + (["--json"] if output == "json" else [])
    done, code, modules = probe(tmp_path, *args)
    # a real check: the view was read (pg_cron lives in another database: its side was read there too)
    assert code in (0, 1, 2), done.stdout + done.stderr
    if output == "json":
        assert json.loads(done.stdout)["exit_code"] == code
    else:
        assert done.stdout.startswith("AUTOPILOT "), done.stdout
    assert {"pg_autopilot.health", "pg_autopilot.installer", "psycopg", "click"} <= modules
    assert heavy(modules) == []


def test_check_unknown_imports_only_what_it_needs(tmp_path):
    done, code, modules = probe(tmp_path, "check", "--dsn", "host=127.0.0.1 port=1 connect_timeout=2")
    assert code == 3, done.stdout + done.stderr
    assert done.stdout.startswith("AUTOPILOT UNKNOWN - cannot connect"), done.stdout
    assert heavy(modules) == []


def test_help_lists_every_command_with_its_summary():
    result = CliRunner().invoke(cli, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:\n", 1)[1].splitlines()
    names = [line.split()[0] for line in listed if line.strip()]
    assert names == sorted(COMMANDS)
    summaries = dict(line.split(None, 1) for line in listed if line.strip())
    assert summaries["knowledge"].startswith("Knowledge artifacts")
    assert summaries["runner"].startswith("The runner")
    assert summaries["check"].startswith("Health check for Nagios")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_loads_under_its_own_name(name):
    result = CliRunner().invoke(cli, [name, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: cli {name} "), result.output  # CliRunner's program name


def test_unknown_command_and_version():
    runner = CliRunner()
    unknown = runner.invoke(cli, ["nosuch"])
    assert unknown.exit_code == 2
    assert "No such command 'nosuch'" in unknown.output
    version = runner.invoke(cli, ["--version"])
    assert version.exit_code == 0
    assert version.output == f"autopilot, version {pg_autopilot.__version__}\n"
