"""Which files of a codebase to ingest, and reading them without surprises.

Listing: in a git work tree, git itself says which files belong to the project (tracked and
untracked-but-not-ignored), so ``.gitignore`` holds exactly as it does for ``git status`` and
submodules (separate projects) are left out. Elsewhere (and for a root that its enclosing
repository ignores) a walk that never follows a directory
symlink, so a link to ``/`` or a link loop cannot take it out of the root or round in circles;
a file symlink is followed only when its target resolves inside the root. Both listings give
paths relative to the root, with ``/``, filtered by :mod:`.globs`. What a listing leaves out for
a reason the DBA may want to fix (a symlink loop, a broken symlink, a link out of the root, a
FIFO, an entry it cannot stat) is reported as a :class:`Skip`; a directory it cannot read, to
``on_error``.

Reading: a file can be too large, binary, unreadable, or gone by the time it is read (a codebase
is a live tree). Each case is a :class:`Skip` with a reason the run's summary counts and shows,
never an exception that would stop the run.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from .globs import PathMatcher

BINARY_SNIFF_BYTES = 8192
GIT_TIMEOUT_SECONDS = 300

# Skip reasons, as the run's summary shows them.
TOO_LARGE = "too large"
BINARY = "binary"
UNREADABLE = "unreadable"
VANISHED = "vanished"
OUTSIDE_ROOT = "outside the root"
SYMLINK_LOOP = "symlink loop"
BROKEN_SYMLINK = "broken symlink"
NOT_REGULAR = "not a regular file"


class CodebaseError(Exception):
    """The codebase cannot be listed at all (its root is gone, git refuses it): the run must fail
    with this message and change nothing, rather than take every file for deleted."""


@dataclass(frozen=True, slots=True)
class FileContent:
    path: str
    data: bytes
    sha256: str


@dataclass(frozen=True, slots=True)
class Skip:
    path: str
    reason: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


def list_files(
    root: str | os.PathLike[str],
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    on_error: Callable[[str, OSError], None] | None = None,
    on_skip: Callable[[Skip], None] | None = None,
) -> Iterator[str]:
    """Relative paths of the codebase's regular files that the globs select, in a stable order.

    ``on_error`` hears about directories the walk could not read (relative path, error); they are
    skipped. ``on_skip`` hears about the selected entries that are not listed, and why: a symlink
    loop (a link cycle, or a link to a directory that encloses it), a broken symlink, a link out of
    the root, something other than a regular file (a FIFO, a socket, a device), an entry that
    cannot be examined. Directories (a submodule, a link to a directory inside the root, whose
    files are listed on their own paths) and files deleted since git listed them are left out
    silently. Raises :class:`CodebaseError` when the root is not a directory or git fails on it.
    """
    root_path = os.path.realpath(root)
    if not os.path.isdir(root_path):
        raise CodebaseError(f"codebase root {os.fspath(root)!r} is not a directory (moved or deleted?)")
    matcher = PathMatcher.from_globs(include, exclude)
    candidates = _git_files(root_path)
    if candidates is None:
        candidates = _walk_files(root_path, matcher, on_error)
    for relative in candidates:
        if not matcher.selects(relative):
            continue
        verdict = _examine(root_path, relative)
        if verdict is None:
            yield relative
        elif isinstance(verdict, Skip) and on_skip is not None:
            on_skip(verdict)


def is_git_work_tree(root: str | os.PathLike[str]) -> bool:
    """Whether ``root`` lies in a git work tree that git will read (see :func:`list_files`)."""
    return _git_lists(os.path.realpath(root))


def _git(root: str, *arguments: str) -> subprocess.CompletedProcess[bytes]:
    """Run git on the tree with the repository's fsmonitor hook disabled (it is a command the
    repository's config names, and ingest must not run commands from the code it reads), and
    without the caller's ``GIT_*`` variables (``GIT_DIR`` would point git at another repository)."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("GIT_")}
    environment.update(GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    command = ["git", "-c", "core.fsmonitor=false", "-C", root, *arguments]
    try:
        return subprocess.run(
            command, capture_output=True, env=environment, timeout=GIT_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise CodebaseError(f"git {arguments[0]} in {root} took over {GIT_TIMEOUT_SECONDS} s") from error


def _git_lists(root: str) -> bool:
    """Whether git lists this root: True in a work tree; False outside one, without git, or when
    the enclosing repository ignores the root itself (a tree kept inside another project's ignored
    folder, such as an interpreter under ~/.pyenv, would otherwise list as empty). Raises
    :class:`CodebaseError` when git refuses the repository."""
    try:
        probe = _git(root, "rev-parse", "--is-inside-work-tree")
    except FileNotFoundError:
        return False
    if probe.returncode != 0:
        message = probe.stderr.decode("utf-8", "replace").strip()
        if "not a git repository" in message:
            return False
        hint = ""
        if "dubious ownership" in message:
            hint = (
                " (it belongs to another user: run `git config --global --add safe.directory "
                f"{root}` as the user that runs the ingest, if you trust it)"
            )
        raise CodebaseError(f"git cannot read the work tree at {root}: {message}{hint}")
    if probe.stdout.strip() != b"true":
        return False
    return _git(root, "check-ignore", "-q", ".").returncode != 0


def _git_files(root: str) -> list[str] | None:
    """Tracked and untracked-not-ignored files below ``root`` (paths relative to it), or None when
    git does not list it (see :func:`_git_lists`). A submodule appears as its directory and is dropped later,
    with anything else that is not a regular file."""
    if not _git_lists(root):
        return None
    listing = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if listing.returncode != 0:
        message = listing.stderr.decode("utf-8", "replace").strip()
        raise CodebaseError(f"git ls-files failed in {root}: {message}")
    paths = [os.fsdecode(item) for item in listing.stdout.split(b"\0") if item]
    return sorted(set(paths))  # a file both cached and modified can appear twice


def _walk_files(
    root: str, matcher: PathMatcher, on_error: Callable[[str, OSError], None] | None
) -> Iterator[str]:
    """Every entry that is not a directory, and every symlink to a directory (examined, never
    followed), walking without descending into excluded directories or ``.git``."""

    def report(error: OSError) -> None:
        if on_error is not None:
            on_error(os.path.relpath(error.filename or root, root), error)

    for directory, subdirectories, files in os.walk(root, onerror=report, followlinks=False):
        relative_directory = os.path.relpath(directory, root)
        prefix = "" if relative_directory == "." else relative_directory.replace(os.sep, "/") + "/"
        links = [name for name in subdirectories if os.path.islink(os.path.join(directory, name))]
        subdirectories[:] = sorted(
            name
            for name in subdirectories
            if name != ".git" and name not in links and not matcher.excludes(prefix + name)
        )
        for name in sorted([*files, *links]):
            yield prefix + name


_NOT_A_FILE = object()  # left out silently: a directory, or gone since it was listed


def _examine(root: str, relative: str) -> Skip | object | None:
    """None for a regular file whose real path is inside the root (listed); a :class:`Skip` saying
    why another entry is not listed; ``_NOT_A_FILE`` for what is left out without a word."""
    absolute = os.path.join(root, relative)
    try:
        mode = os.lstat(absolute).st_mode
    except FileNotFoundError:
        return _NOT_A_FILE  # deleted since it was listed (git lists what its index holds)
    except OSError as error:
        return Skip(relative, UNREADABLE, error.strerror or str(error))
    if not stat.S_ISLNK(mode):
        if stat.S_ISREG(mode):
            return None
        return _NOT_A_FILE if stat.S_ISDIR(mode) else Skip(relative, NOT_REGULAR, _kind(mode))
    try:
        target = os.stat(absolute).st_mode
    except OSError as error:
        if error.errno == errno.ELOOP:
            return Skip(relative, SYMLINK_LOOP, "a cycle of links")
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            return Skip(
                relative, BROKEN_SYMLINK, f"to {_shown(_link_target(absolute))}, which does not exist"
            )
        return Skip(relative, UNREADABLE, error.strerror or str(error))
    real = os.path.realpath(absolute)
    if not _inside(root, real):
        return Skip(relative, OUTSIDE_ROOT, f"resolves to {_shown(real)}")
    if stat.S_ISDIR(target):
        if _inside(real, os.path.realpath(os.path.dirname(absolute))):
            # a link to the directory that holds it, or to one above: following it would go round
            return Skip(relative, SYMLINK_LOOP, f"to {_shown(real)}, a directory that encloses it")
        return _NOT_A_FILE  # a link to a directory inside the root: its files are listed on their own paths
    return None if stat.S_ISREG(target) else Skip(relative, NOT_REGULAR, _kind(target))


def _kind(mode: int) -> str:
    return f"mode {stat.filemode(mode)}"


def _shown(path: str) -> str:
    """A path for a message (stored as text, which holds UTF-8 only): a name in another encoding
    (decoded with surrogate escapes) shows its bytes as escapes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _link_target(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _inside(root: str, real_path: str) -> bool:
    return real_path == root or real_path.startswith(root.rstrip(os.sep) + os.sep)


def read_file(root: str | os.PathLike[str], relative: str, size_cap: int) -> FileContent | Skip:
    """The file's bytes and their sha256, or why it is skipped: too large (over ``size_cap``
    bytes), binary (a NUL byte in its first 8 KiB, as git decides), unreadable (with the OS's
    message), vanished (deleted since it was listed), or outside the root (a symlink out)."""
    root_path = os.path.realpath(root)
    real = os.path.realpath(os.path.join(root_path, relative))
    if not _inside(root_path, real):
        return Skip(relative, OUTSIDE_ROOT, f"resolves to {_shown(real)}")
    try:
        data = _read_regular(real, size_cap)
    except FileNotFoundError:
        return Skip(relative, VANISHED)
    except _TooLarge as too_large:
        return Skip(relative, TOO_LARGE, f"{too_large.size} bytes, the cap is {size_cap}")
    except OSError as error:
        return Skip(relative, UNREADABLE, error.strerror or str(error))
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        return Skip(relative, BINARY)
    return FileContent(relative, data, hashlib.sha256(data).hexdigest())


class _TooLarge(Exception):
    def __init__(self, size: int):
        super().__init__(size)
        self.size = size


def _read_regular(path: str, size_cap: int) -> bytes:
    """Read a regular file of at most ``size_cap`` bytes. Opened non-blocking (a FIFO planted in
    the tree would otherwise hang the run) and checked with fstat, so what is checked is what is
    read; a file that grew past the cap meanwhile is caught by reading one byte more."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(descriptor, "rb") as handle:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise OSError(f"not a regular file, {_kind(status.st_mode)}")
        if status.st_size > size_cap:
            raise _TooLarge(status.st_size)
        # sized by fstat, not by the cap (a cap-sized buffer per file is allocated and freed for
        # nothing); one byte more tells a file that grew meanwhile, read on up to the cap
        data = handle.read(status.st_size + 1)
        if len(data) > status.st_size:
            data += handle.read(size_cap + 1 - len(data))
    if len(data) > size_cap:
        raise _TooLarge(len(data))
    return data
