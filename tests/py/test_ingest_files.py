"""Listing and reading a codebase's files (pg_autopilot.ingest.files and .globs): pure, no database.

Git listings run the real git CLI on temporary repositories; the walk runs on real trees with
symlinks out of the root, symlink loops and broken links.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from pg_autopilot.ingest.files import (
    BINARY,
    BROKEN_SYMLINK,
    NOT_REGULAR,
    OUTSIDE_ROOT,
    SYMLINK_LOOP,
    TOO_LARGE,
    UNREADABLE,
    VANISHED,
    CodebaseError,
    FileContent,
    Skip,
    is_git_work_tree,
    list_files,
    read_file,
)
from pg_autopilot.ingest.globs import PathMatcher, compile_glob


def write(root: Path, relative: str, content: str | bytes = "x = 1\n") -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def git(root: Path, *arguments: str) -> None:
    identity = ["-c", "user.name=Ingest Test", "-c", "user.email=ingest@example.invalid"]
    subprocess.run(["git", *identity, "-C", str(root), *arguments], check=True, capture_output=True)


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A work tree with tracked, untracked, ignored, deleted and submodule content."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    write(root, ".gitignore", "ignored.py\nbuild/\n*.log\n")
    write(root, "src/app.py")
    write(root, "src/util.js")
    write(root, "ignored.py")
    write(root, "build/generated.py")
    write(root, "src/debug.log", "log\n")
    write(root, "removed.py")
    git(root, "add", ".gitignore", "src/app.py", "removed.py")
    (root / "removed.py").unlink()  # in the index, gone from the tree
    write(root, "notes/untracked.md", "# notes\n")  # untracked, not ignored: listed
    inner = root / "vendor" / "lib"
    inner.mkdir(parents=True)
    git(inner, "init", "-q")
    write(inner, "inner.py")
    git(inner, "add", "inner.py")
    git(inner, "commit", "-q", "-m", "inner")
    git(root, "add", "vendor/lib")  # an embedded repository: the index holds a gitlink
    return root


def test_git_listing_respects_gitignore_and_skips_submodules(repository: Path) -> None:
    assert is_git_work_tree(repository)
    listed = list(list_files(repository))
    assert listed == [".gitignore", "notes/untracked.md", "src/app.py", "src/util.js"]


def test_git_listing_of_a_subdirectory_and_globs(repository: Path) -> None:
    assert list(list_files(repository / "src")) == ["app.py", "util.js"]
    assert list(list_files(repository, include=["*.py", "*.js"])) == ["src/app.py", "src/util.js"]
    assert list(list_files(repository, exclude=["src"])) == [".gitignore", "notes/untracked.md"]


def test_git_listing_does_not_follow_a_tracked_symlink_out(repository: Path, tmp_path: Path) -> None:
    secret = write(tmp_path, "outside/secret.py", "TOKEN = 1\n")
    (repository / "src" / "escape.py").symlink_to(secret)
    (repository / "src" / "alias.py").symlink_to(repository / "src" / "app.py")
    git(repository, "add", "src/escape.py", "src/alias.py")
    listed = list(list_files(repository, include=["src/**"]))
    assert listed == ["src/alias.py", "src/app.py", "src/util.js"]
    assert read_file(repository, "src/escape.py", 1000) == Skip(
        "src/escape.py", OUTSIDE_ROOT, f"resolves to {secret}"
    )


def test_a_root_the_enclosing_repository_ignores_is_walked(repository: Path) -> None:
    # build/ is ignored by the repository: a codebase registered there is listed by a walk
    write(repository, "build/more/extra.py")
    assert not is_git_work_tree(repository / "build")
    assert list(list_files(repository / "build")) == ["generated.py", "more/extra.py"]


def test_git_variables_of_the_caller_do_not_redirect_git(
    repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    assert "src/app.py" in list(list_files(repository))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs to chown the repository to another user")
def test_a_repository_git_will_not_read_is_an_error_not_a_walk(
    repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # no safe.directory from the user's git config
    for directory, _, files in os.walk(repository):
        for name in [directory, *(os.path.join(directory, f) for f in files)]:
            os.lchown(name, 65534, 65534)
    with pytest.raises(CodebaseError, match="as the user that runs the ingest"):
        list(list_files(repository))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A plain directory (no git) with links out, a loop, a broken link and a link inside."""
    root = tmp_path / "tree"
    write(root, "a.py")
    write(root, "pkg/b.py")
    write(root, "pkg/deep/c.rs", "fn main() {}\n")
    write(root, "node_modules/dep/index.js")
    write(root, ".git/objects/stray.py")  # a broken repository: git declines it, the walk skips it
    outside = tmp_path / "outside"
    write(outside, "secret.py", "TOKEN = 1\n")
    (root / "pkg" / "loop").symlink_to(root, target_is_directory=True)
    (root / "pkg" / "self").symlink_to(".", target_is_directory=True)
    (root / "escape_dir").symlink_to(outside, target_is_directory=True)
    (root / "escape_file.py").symlink_to(outside / "secret.py")
    (root / "pkg" / "alias.py").symlink_to("../a.py")
    (root / "broken.py").symlink_to(root / "nowhere.py")
    (root / "cycle_a.py").symlink_to(root / "cycle_b.py")
    (root / "cycle_b.py").symlink_to(root / "cycle_a.py")
    return root


def test_walk_never_leaves_the_root_and_survives_loops(tree: Path) -> None:
    assert not is_git_work_tree(tree)
    listed = list(list_files(tree))
    assert listed == ["a.py", "node_modules/dep/index.js", "pkg/alias.py", "pkg/b.py", "pkg/deep/c.rs"]
    assert list(list_files(tree, exclude=["node_modules", "**/deep/**"])) == [
        "a.py",
        "pkg/alias.py",
        "pkg/b.py",
    ]
    assert list(list_files(tree, include=["pkg/*.py"])) == ["pkg/alias.py", "pkg/b.py"]


def test_walk_reports_what_it_leaves_out_and_why(tree: Path, tmp_path: Path) -> None:
    os.mkfifo(tree / "pkg" / "pipe.py")
    (tree / "pkg" / "pipe.py").chmod(0o644)  # whatever the umask
    skipped: list[Skip] = []
    listed = list(list_files(tree, on_skip=skipped.append))
    assert listed == ["a.py", "node_modules/dep/index.js", "pkg/alias.py", "pkg/b.py", "pkg/deep/c.rs"]
    assert skipped == [
        Skip("broken.py", BROKEN_SYMLINK, f"to {tree / 'nowhere.py'}, which does not exist"),
        Skip("cycle_a.py", SYMLINK_LOOP, "a cycle of links"),
        Skip("cycle_b.py", SYMLINK_LOOP, "a cycle of links"),
        Skip("escape_dir", OUTSIDE_ROOT, f"resolves to {tmp_path / 'outside'}"),
        Skip("escape_file.py", OUTSIDE_ROOT, f"resolves to {tmp_path / 'outside' / 'secret.py'}"),
        Skip("pkg/loop", SYMLINK_LOOP, f"to {tree}, a directory that encloses it"),
        Skip("pkg/pipe.py", NOT_REGULAR, "mode prw-r--r--"),
        Skip("pkg/self", SYMLINK_LOOP, f"to {tree / 'pkg'}, a directory that encloses it"),
    ]
    # a link to a directory inside the root is not followed, and not reported: its files are listed
    (tree / "pkg" / "deep_alias").symlink_to("deep", target_is_directory=True)
    again: list[Skip] = []
    assert list(list_files(tree, exclude=["escape*", "*.py"], on_skip=again.append)) == [
        "node_modules/dep/index.js",
        "pkg/deep/c.rs",
    ]
    assert [skip.path for skip in again] == ["pkg/loop", "pkg/self"]  # the globs select what is reported


def test_git_listing_reports_tracked_links_it_leaves_out(repository: Path, tmp_path: Path) -> None:
    (repository / "src" / "dangling.py").symlink_to("gone.py")
    (repository / "src" / "loop_a.py").symlink_to("loop_b.py")
    (repository / "src" / "loop_b.py").symlink_to("loop_a.py")
    (repository / "src" / "up").symlink_to("..", target_is_directory=True)
    git(repository, "add", "src")
    skipped: list[Skip] = []
    assert list(list_files(repository, include=["src/**"], on_skip=skipped.append)) == [
        "src/app.py",
        "src/util.js",
    ]
    assert [(skip.path, skip.reason) for skip in skipped] == [
        ("src/dangling.py", BROKEN_SYMLINK),
        ("src/loop_a.py", SYMLINK_LOOP),
        ("src/loop_b.py", SYMLINK_LOOP),
        ("src/up", SYMLINK_LOOP),
    ]


def test_walk_reports_unreadable_directories(tree: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any directory")
    (tree / "pkg" / "deep").chmod(0)
    errors: list[tuple[str, OSError]] = []
    try:
        listed = list(list_files(tree, on_error=lambda path, error: errors.append((path, error))))
    finally:
        (tree / "pkg" / "deep").chmod(0o755)
    assert "pkg/deep/c.rs" not in listed
    assert [path for path, _ in errors] == ["pkg/deep"]


def test_a_vanished_root_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CodebaseError, match="is not a directory"):
        list(list_files(tmp_path / "gone"))
    write(tmp_path, "file.py")
    with pytest.raises(CodebaseError, match="is not a directory"):
        list(list_files(tmp_path / "file.py"))


def test_read_file_gives_bytes_and_sha256(tmp_path: Path) -> None:
    data = "# caf\u00e9\nprint('hi')\n".encode()
    write(tmp_path, "ok.py", data)
    assert read_file(tmp_path, "ok.py", 1000) == FileContent("ok.py", data, hashlib.sha256(data).hexdigest())
    write(tmp_path, "latin.py", b"# caf\xe9\n")  # not UTF-8, still text: the parser copes
    assert isinstance(read_file(tmp_path, "latin.py", 1000), FileContent)
    write(tmp_path, "exact.py", b"x" * 100)
    assert isinstance(read_file(tmp_path, "exact.py", 100), FileContent)


def test_read_file_skip_reasons(tree: Path) -> None:
    write(tree, "big.py", b"x" * 101)
    assert read_file(tree, "big.py", 100) == Skip("big.py", TOO_LARGE, "101 bytes, the cap is 100")
    write(tree, "image.py", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert read_file(tree, "image.py", 1000) == Skip("image.py", BINARY)
    write(tree, "late_nul.py", b"x" * 9000 + b"\x00")  # a NUL past the first 8 KiB is not sniffed
    assert isinstance(read_file(tree, "late_nul.py", 10000), FileContent)
    assert read_file(tree, "gone.py", 1000) == Skip("gone.py", VANISHED)
    assert read_file(tree, "broken.py", 1000) == Skip("broken.py", VANISHED)
    skip = read_file(tree, "a.py/inside.py", 1000)  # a path through a file
    assert isinstance(skip, Skip) and (skip.reason, skip.detail) == (UNREADABLE, "Not a directory")
    skip = read_file(tree, "cycle_a.py", 1000)
    assert isinstance(skip, Skip) and skip.reason == UNREADABLE
    os.mkfifo(tree / "pipe.py")  # opening a FIFO must not hang the run
    (tree / "pipe.py").chmod(0o644)
    skip = read_file(tree, "pipe.py", 1000)
    assert skip == Skip("pipe.py", UNREADABLE, "not a regular file, mode prw-r--r--")
    assert read_file(tree, "escape_file.py", 1000).reason == OUTSIDE_ROOT
    assert read_file(tree, "escape_dir/secret.py", 1000).reason == OUTSIDE_ROOT
    assert read_file(tree, "../outside/secret.py", 1000).reason == OUTSIDE_ROOT
    assert isinstance(read_file(tree, "pkg/alias.py", 1000), FileContent)


def test_read_file_unreadable_permissions(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    write(tmp_path, "locked.py").chmod(0)
    skip = read_file(tmp_path, "locked.py", 1000)
    assert isinstance(skip, Skip) and (skip.reason, skip.detail) == (UNREADABLE, "Permission denied")


@pytest.mark.parametrize(
    ("glob", "matching", "not_matching"),
    [
        ("*.py", ["a.py", "x/y/z.py", ".hidden.py"], ["a.pyc", "a.py.txt", "py"]),
        ("src/*.py", ["src/a.py"], ["src/x/a.py", "a.py", "lib/src/a.py"]),
        ("src/**/*.py", ["src/a.py", "src/x/y/a.py"], ["a.py", "lib/src/a.py", "src/a.pyx"]),
        ("**/test_*.py", ["test_a.py", "x/test_a.py", "x/y/test_b.py"], ["x/a_test.py", "test_a.pyc"]),
        ("vendor/**", ["vendor/a.js", "vendor/x/y/z.go"], ["vendors/a.js", "src/vendor.js"]),
        ("node_modules", ["node_modules/a.js", "web/node_modules/x/y.js"], ["node_modules_extra/a.js"]),
        ("build/out", ["build/out/a.o", "build/out"], ["x/build/out/a.o", "build/output/a"]),
        ("/docs/*.md", ["docs/a.md"], ["x/docs/a.md"]),
        ("./docs", ["docs/a.md"], ["x/docs/a.md"]),
        ("file?.ts", ["file1.ts", "a/fileX.ts"], ["file10.ts", "file/.ts"]),
        ("[!_]*.py", ["a.py", "pkg/b.py"], ["_private.py", "pkg/_x.py"]),
        ("[ab]*.go", ["a.go", "b_test.go"], ["c.go"]),
        ("weird[.py", ["weird[.py"], ["weirdx.py"]),
        ("a**b", ["ab", "axxb"], ["a/b"]),
    ],
)
def test_glob_semantics(glob: str, matching: list[str], not_matching: list[str]) -> None:
    pattern = compile_glob(glob)
    for path in matching:
        assert pattern.match(path), f"{glob!r} should match {path!r}"
    for path in not_matching:
        assert not pattern.match(path), f"{glob!r} should not match {path!r}"


def test_include_and_exclude_together() -> None:
    matcher = PathMatcher.from_globs(include=["src/**"], exclude=["**/*_test.go", "src/gen"])
    assert matcher.selects("src/a.go")
    assert not matcher.selects("src/a_test.go")
    assert not matcher.selects("src/gen/x.go")
    assert not matcher.selects("lib/a.go")
    assert PathMatcher.from_globs().selects("anything/at/all.txt")
    with pytest.raises(ValueError, match="empty glob"):
        compile_glob("  ")
