"""Packaging: the sdist builds the extension without a git checkout, and META.json is valid PGXN
metadata (PGXN Meta Spec 1.0.0) for the current version."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION = re.search(
    r"^default_version\s*=\s*'(.+)'", (ROOT / "control" / "autopilot.control").read_text(), re.M
)[1]
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
# a Term of the spec: two characters or more, no slash, backslash, white space or control character
TERM = re.compile(r"^[^/\\\s\x00-\x1f\x7f]{2,}$")


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> Path:
    """The sdist, built from this tree with the project's build backend (offline: no isolation)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    (archive,) = out.glob("*.tar.gz")
    return archive


def test_sdist_holds_what_make_needs_and_nothing_built(sdist: Path):
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
        modes = {m.name.split("/", 1)[1]: m.mode for m in tar.getmembers() if "/" in m.name}
    needed = {
        "Makefile",
        "LICENSE",
        "META.json",
        "CHANGELOG.md",
        "README.md",
        "pyproject.toml",
        "control/autopilot.control",
        "sql/manifest.txt",
        "src/pagerank.c",
        "src/vector.c",
        "src/code_tokens.c",
        "tools/build_extension.sh",
        "tools/check_manifest.sh",
        "tools/check_versions.sh",
        f"extension/autopilot--{VERSION}.sql",
        "installer/pg_autopilot/cli.py",
    }
    assert needed <= names, sorted(needed - names)
    manifest = (ROOT / "sql" / "manifest.txt").read_text().split("\n")
    listed = {line.strip() for line in manifest if line.strip() and not line.lstrip().startswith("#")}
    assert listed <= names, sorted(listed - names)
    # every released version's script and every upgrade script: `make install` installs them all
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "extension").glob("autopilot--*.sql")}
    assert shipped <= names, sorted(shipped - names)
    # make runs the build scripts directly
    assert all(modes[f"tools/{s}"] & 0o111 for s in ("build_extension.sh", "check_manifest.sh"))
    built = [n for n in names if n.endswith((".o", ".so", ".bc", ".pyc")) or "/__pycache__/" in n]
    assert built == []
    assert not any(n.startswith((".venv", ".git/", "tests/", "bench/")) for n in names)


def test_extension_builds_from_the_sdist(sdist: Path, tmp_path: Path):
    """Unpacked anywhere, `make build` writes the same extension script and upgrade scripts as this
    tree has, and `make` compiles the library: no git checkout is needed."""
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path, filter="data")
    (tree,) = tmp_path.iterdir()
    assert not (tree / ".git").exists()
    # the build's products: the current version's script and the copies of sql/updates/
    products = [f"autopilot--{VERSION}.sql"] + [p.name for p in (tree / "sql" / "updates").glob("*.sql")]
    for name in products:
        (tree / "extension" / name).unlink()

    build = subprocess.run(["make", "build"], cwd=tree, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    for name in products:
        assert (tree / "extension" / name).read_bytes() == (ROOT / "extension" / name).read_bytes(), name

    if shutil.which("pg_config") is None:
        pytest.skip("no pg_config: the library cannot be compiled here")
    compiled = subprocess.run(["make"], cwd=tree, capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr
    assert (tree / "autopilot.so").is_file()
    # what `make install` would copy: the control file, every version's scripts, the library
    plan = subprocess.run(["make", "-n", "install"], cwd=tree, capture_output=True, text=True)
    assert plan.returncode == 0, plan.stderr
    for needed in ("control/autopilot.control", f"extension/autopilot--{VERSION}.sql", "autopilot.so"):
        assert needed in plan.stdout, needed


def test_the_wheel_ships_the_dashboard_templates_and_the_sql(tmp_path: Path):
    """`autopilot serve` loads its templates as package data, `autopilot install` the extension's scripts."""
    import zipfile

    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {p.name for p in (ROOT / "installer" / "pg_autopilot" / "web" / "templates").glob("*.html")}
    assert {"base.html", "overview.html", "runs.html", "queue.html", "job.html"} <= templates
    assert {f"pg_autopilot/web/templates/{t}" for t in templates} <= names
    assert f"pg_autopilot/sql/extension/autopilot--{VERSION}.sql" in names


def test_meta_json_is_pgxn_metadata_for_this_version():
    """The rules of PGXN Meta Spec 1.0.0 (https://pgxn.org/meta/spec.txt) that apply to this file."""
    meta = json.loads((ROOT / "META.json").read_text())
    required = {"name", "version", "abstract", "maintainer", "license", "provides", "meta-spec"}
    optional = {"description", "generated_by", "tags", "no_index", "prereqs", "release_status", "resources"}
    assert required <= set(meta), sorted(required - set(meta))
    assert {k for k in meta if not k.lower().startswith("x_")} <= required | optional

    assert meta["meta-spec"]["version"] == "1.0.0"
    assert meta["meta-spec"]["url"] == "https://pgxn.org/meta/spec.txt"
    assert TERM.match(meta["name"])
    assert SEMVER.match(meta["version"]) and meta["version"] == VERSION
    assert meta["abstract"] and meta["maintainer"] == "The pg_autopilot authors"
    assert meta["license"] == "postgresql"
    assert meta["release_status"] in {"stable", "testing", "unstable"}

    assert set(meta["provides"]) == {"autopilot"}  # the extension's name, as in CREATE EXTENSION
    extension = meta["provides"]["autopilot"]
    assert set(extension) <= {"file", "version", "abstract", "docfile"}
    assert extension["version"] == VERSION
    assert extension["file"] == f"extension/autopilot--{VERSION}.sql"
    for path in (extension["file"], extension["docfile"]):
        assert (ROOT / path).is_file(), path

    phases = meta["prereqs"]
    assert set(phases) <= {"configure", "build", "test", "runtime", "develop"}
    for relationships in phases.values():
        assert relationships and set(relationships) <= {"requires", "recommends", "suggests", "conflicts"}
        for prereqs in relationships.values():
            for name, version in prereqs.items():
                assert TERM.match(name) and (version == 0 or SEMVER.match(version)), (name, version)
    assert phases["runtime"]["requires"] == {"PostgreSQL": "15.0.0"}
    assert phases["runtime"]["recommends"] == {"pg_cron": "1.4.0"}

    assert all(2 <= len(tag) < 256 and "/" not in tag and "\\" not in tag for tag in meta["tags"])
    assert len(set(meta["tags"])) == len(meta["tags"])
    assert all((ROOT / d).is_dir() for d in meta["no_index"]["directory"])


def test_license_is_the_postgresql_license():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("PostgreSQL License\n\nCopyright (c) 2026, The pg_autopilot authors\n")
    assert "Permission to use, copy, modify, and distribute this software" in text
    assert 'license = { text = "PostgreSQL" }' in (ROOT / "pyproject.toml").read_text()
