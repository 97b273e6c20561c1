"""The git CLI for template-sync: a runner-owned bare clone, fetched without a credential on any command
line or in any message.

The repository setting may be a URL with a user name and password in it (``https://user:token@host/x``),
though the runner's environment is the place for them (``AUTOPILOT_TEMPLATE_SYNC_USERNAME``,
``AUTOPILOT_TEMPLATE_SYNC_PASSWORD`` or ``AUTOPILOT_TEMPLATE_SYNC_PASSWORD_FILE``). Either way git is
given the URL without them, and asks for them through ``GIT_ASKPASS``: a script in a private directory
(0700, removed afterwards) that prints a 0600 file of that directory. Every message shows the URL
with ``***`` for its user name and password, and any secret that git echoes is replaced by ``***``.

git runs without a terminal prompt (``GIT_TERMINAL_PROMPT=0``), ssh in batch mode unless the DBA set
``GIT_SSH_COMMAND``, and without the caller's other ``GIT_*`` variables (``GIT_DIR`` would point it at
another repository); a cancelled job or one past its deadline kills it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from . import Cancelled, KnowledgeError

ENV_USERNAME = "AUTOPILOT_TEMPLATE_SYNC_USERNAME"
ENV_PASSWORD = "AUTOPILOT_TEMPLATE_SYNC_PASSWORD"
ENV_PASSWORD_FILE = "AUTOPILOT_TEMPLATE_SYNC_PASSWORD_FILE"
OWNER = "template-sync"  # the clone's config autopilot.owner: the runner touches no other repository
# the caller's GIT_* variables git may keep: how to reach a server, never which repository to use
_KEPT_GIT_VARIABLES = {
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_SSH_VARIANT",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
    "GIT_PROXY_COMMAND",
    "GIT_PROXY_SSL_CAINFO",
    "GIT_HTTP_PROXY_AUTHMETHOD",
}
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SCP_LIKE = re.compile(r"^[^/:]+:")  # host:path or user@host:path, as git reads it
_OUTPUT_LINES = 6  # lines of git's stderr in a message


@dataclass(frozen=True)
class Remote:
    """The repository setting, split: ``url`` is what git gets (no password, and over http no user
    either), ``display`` what messages show; the credentials it held go to GIT_ASKPASS only."""

    url: str
    display: str
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


def parse_remote(value: str) -> Remote:
    """Splits the template_sync.repository setting; refuses what git could take for an option or
    what is neither a URL nor an absolute path."""
    value = value.strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise KnowledgeError("template_sync.repository has a control character")
    if value.startswith("-"):
        raise KnowledgeError(f"template_sync.repository {value!r} starts with '-': git would read an option")
    if value.startswith("/"):
        return Remote(value, value)
    if _SCHEME.match(value):
        parts = urlsplit(value)
        userinfo, at, host = parts.netloc.rpartition("@")
        if not at:
            return Remote(value, value)
        user, colon, password = userinfo.partition(":")
        username = unquote(user) or None
        secret = unquote(password) if colon else None
        display = parts._replace(netloc=f"***@{host}").geturl()
        if parts.scheme.lower() in ("http", "https", "ftp", "ftps"):
            # the user name too reaches git through GIT_ASKPASS: the URL git gets carries no userinfo
            return Remote(parts._replace(netloc=host).geturl(), display, username, secret)
        # ssh and the like: the user is the login, part of the address (its password is never used)
        netloc = f"{user}@{host}" if user else host
        return Remote(parts._replace(netloc=netloc).geturl(), display, None, secret)
    if _SCP_LIKE.match(value):
        return Remote(value, value)  # user@host:path (ssh): no password can be written there
    raise KnowledgeError(
        f"template_sync.repository {value!r} is neither a URL nor an absolute path",
        hint="Give a URL (https://host/templates.git, ssh://git@host/templates.git, git@host:templates.git) "
        "or the absolute path of a repository on the runner's host.",
    )


def credentials(remote: Remote) -> tuple[str | None, str | None]:
    """(user name, password): the URL's, else the runner's environment's."""
    username = remote.username or os.environ.get(ENV_USERNAME) or None
    password = remote.password
    if password is None:
        password = os.environ.get(ENV_PASSWORD) or None
    if password is None and (path := os.environ.get(ENV_PASSWORD_FILE)):
        try:
            password = Path(path).read_text("utf-8").rstrip("\r\n") or None
        except OSError as error:
            raise KnowledgeError(
                f"{ENV_PASSWORD_FILE} names {path}, which cannot be read: {error.strerror or error}"
            ) from error
    return username, password


class Git:
    """git on the runner-owned bare clone ``<directory>/repository.git``, with the environment and the
    credentials of :func:`credentials`. Use as a context manager: the private askpass directory goes
    when it ends."""

    def __init__(
        self,
        directory: str,
        remote: Remote,
        *,
        cancelled: threading.Event | None = None,
        deadline: float | None = None,
    ):
        self.directory = Path(directory)
        self.clone = self.directory / "repository.git"
        self.remote = remote
        self.cancelled = cancelled
        self.deadline = deadline  # time.monotonic() after which git is killed
        username, password = credentials(remote)
        self._secrets = tuple(s for s in (password, username if remote.username else None) if s)
        self._credentials = (username, password)
        self._private: Path | None = None
        self._env: dict[str, str] = {}

    # -- setup ---------------------------------------------------------------------------------------

    def __enter__(self) -> Git:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise KnowledgeError(
                f"template-sync cannot create its directory {self.directory}: {error.strerror or error}",
                hint="Set template_sync.directory to a directory the runner's user may create or write.",
            ) from error
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k in _KEPT_GIT_VARIABLES}
        env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C", GIT_OPTIONAL_LOCKS="0")
        env.pop("SSH_ASKPASS", None)
        if "GIT_SSH_COMMAND" not in env and "GIT_SSH" not in env:
            env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"  # never a prompt for a host key or a password
        username, password = self._credentials
        if username or password:
            self._private = Path(tempfile.mkdtemp(prefix="askpass-", dir=self.directory))
            for name, value in (("username", username), ("password", password)):
                if value is not None:
                    _write_private(self._private / name, value)
            script = self._private / "askpass"
            quoted = shlex.quote(str(self._private))
            _write_private(
                script,
                "#!/bin/sh\n"
                'case "$1" in\n'
                "[Uu]sername*) f=username ;;\n"
                "*) f=password ;;\n"
                "esac\n"
                f'exec cat -- {quoted}/"$f"\n',
                mode=0o700,
            )
            env["GIT_ASKPASS"] = str(script)
        else:
            env.pop("GIT_ASKPASS", None)
        self._env = env
        return self

    def __exit__(self, *_: object) -> None:
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Holds ``<directory>/lock`` (flock): two syncs never fetch into the clone at once."""
        import fcntl

        descriptor = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    self._check_time("waiting for another template-sync")
                    time.sleep(0.2)
            yield
        finally:
            os.close(descriptor)

    def prepare(self) -> None:
        """Creates the bare clone, or checks that the one there is template-sync's own."""
        if not self.clone.exists():
            self.run("init", "--quiet", "--bare", str(self.clone), git_dir=False)
            self.run("config", "autopilot.owner", OWNER)
            return
        owner = self.run("config", "--get", "autopilot.owner", check=False)
        if owner.returncode != 0 or owner.stdout.strip() != OWNER.encode():
            raise KnowledgeError(
                f"{self.clone} exists and is not template-sync's clone: it is left alone",
                hint="Move it away, or set template_sync.directory to a directory of template-sync's own.",
            )

    # -- commands ------------------------------------------------------------------------------------

    def fetch(self, branch: str, ref: str) -> str:
        """Fetches ``branch`` of the remote into ``ref`` of the clone (whatever it was before: the caller
        judges a rewritten history); returns the commit."""
        result = self.run(
            "fetch",
            "--quiet",
            "--no-tags",
            "--end-of-options",
            self.remote.url,
            f"+refs/heads/{branch}:{ref}",
            check=False,
        )
        if result.returncode != 0:
            raise KnowledgeError(self._fetch_failure(branch, result), hint=self._fetch_hint(result))
        return self.rev_parse(ref)

    def rev_parse(self, ref: str) -> str:
        return (
            self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").stdout.decode("ascii").strip()
        )

    def has_commit(self, commit: str) -> bool:
        return self.run("cat-file", "-e", f"{commit}^{{commit}}", check=False).returncode == 0

    def is_ancestor(self, older: str, newer: str) -> bool:
        result = self.run("merge-base", "--is-ancestor", older, newer, check=False)
        if result.returncode not in (0, 1):
            raise KnowledgeError(f"git merge-base failed: {self._stderr(result)}")
        return result.returncode == 0

    def tree(self, commit: str) -> list[tuple[str, str, str]]:
        """(mode, blob, path) of every file of the commit's tree."""
        out = self.run("ls-tree", "-r", "-z", "--full-tree", commit).stdout
        entries = []
        for item in out.split(b"\0"):
            if not item:
                continue
            meta, _, path = item.partition(b"\t")
            mode, kind, blob = meta.decode("ascii").split(" ")
            if kind == "blob":
                entries.append((mode, blob, os.fsdecode(path)))
        return entries

    def diff(self, older: str, newer: str) -> list[tuple[str, str, str, str]]:
        """(status, new mode, new blob, path) of every file that differs between two commits; renames
        are a deletion and an addition."""
        out = self.run("diff-tree", "-r", "-z", "--no-renames", "--no-abbrev", older, newer).stdout
        fields = out.split(b"\0")
        changes = []
        for i in range(0, len(fields) - 1, 2):
            meta = fields[i].decode("ascii")
            if not meta:
                continue
            _, new_mode, _, new_blob, status = meta.lstrip(":").split(" ")
            changes.append((status[0], new_mode, new_blob, os.fsdecode(fields[i + 1])))
        return changes

    def blob_sizes(self, blobs: list[str]) -> dict[str, int]:
        out = self.run("cat-file", "--batch-check", input="".join(f"{b}\n" for b in blobs).encode()).stdout
        sizes = {}
        for line in out.decode("ascii").splitlines():
            blob, kind, size = line.split(" ")
            if kind == "blob":
                sizes[blob] = int(size)
        return sizes

    def blobs(self, blobs: list[str]) -> dict[str, bytes]:
        """The contents of these blobs, read in one git process."""
        if not blobs:
            return {}
        out = self.run("cat-file", "--batch", input="".join(f"{b}\n" for b in blobs).encode()).stdout
        contents, position = {}, 0
        for blob in blobs:
            end = out.index(b"\n", position)
            header = out[position:end].decode("ascii").split(" ")
            if len(header) != 3 or header[0] != blob:
                raise KnowledgeError(f"git cat-file answered {' '.join(header)!r} for the blob {blob}")
            start = end + 1
            size = int(header[2])
            contents[blob] = out[start : start + size]
            position = start + size + 1
        return contents

    def run(
        self, *arguments: str, check: bool = True, input: bytes | None = None, git_dir: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        command = ["git", "-c", "core.fsmonitor=false"]
        if git_dir:
            command.append(f"--git-dir={self.clone}")
        command.extend(arguments)
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._env,
                start_new_session=True,  # its helpers (git-remote-https, ssh) are killed with it
            )
        except FileNotFoundError as error:
            raise KnowledgeError(
                "template-sync needs git, which is not installed on the runner's host"
            ) from error
        while True:
            try:
                stdout, stderr = process.communicate(input, timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                try:
                    self._check_time(f"git {arguments[0]}")
                except Cancelled:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.communicate()
                    raise
        result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
        if check and result.returncode != 0:
            raise KnowledgeError(f"git {arguments[0]} failed: {self._stderr(result)}")
        return result

    # -- messages ------------------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _stderr(self, result: subprocess.CompletedProcess[bytes]) -> str:
        lines = [
            line.strip() for line in result.stderr.decode("utf-8", "replace").splitlines() if line.strip()
        ]
        text = " | ".join(lines[:_OUTPUT_LINES]) or f"exit status {result.returncode}"
        return self.redact(text.replace(self.remote.url, self.remote.display))

    def _fetch_failure(self, branch: str, result: subprocess.CompletedProcess[bytes]) -> str:
        stderr = result.stderr.decode("utf-8", "replace")
        where = f"{self.remote.display} (branch {branch})"
        if "couldn't find remote ref" in stderr:
            return (
                f"template-sync: the branch {branch} does not exist in {self.remote.display}; "
                "nothing was changed"
            )
        if _auth_failed(stderr):
            return (
                f"template-sync: authentication to {where} failed; nothing was changed: "
                f"{self._stderr(result)}"
            )
        return f"template-sync: fetching {where} failed; nothing was changed: {self._stderr(result)}"

    def _fetch_hint(self, result: subprocess.CompletedProcess[bytes]) -> str | None:
        if _auth_failed(result.stderr.decode("utf-8", "replace")):
            return (
                f"Give the runner the credentials in its environment: {ENV_USERNAME} and {ENV_PASSWORD} "
                f"(or {ENV_PASSWORD_FILE}); for ssh, a key the runner's user can use."
            )
        return (
            "Check template_sync.repository and template_sync.branch, and that the runner's host reaches it."
        )

    def _check_time(self, what: str) -> None:
        if self.cancelled is not None and self.cancelled.is_set():
            raise Cancelled(f"template-sync stopped while {what}: the job was cancelled; nothing was changed")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise Cancelled(
                f"template-sync stopped while {what}: past the job's deadline; nothing was changed"
            )


def _auth_failed(stderr: str) -> bool:
    lowered = stderr.lower()
    return any(
        marker in lowered
        for marker in (
            "authentication failed",
            "could not read username",
            "could not read password",
            "terminal prompts disabled",
            "permission denied (publickey",
            "http basic: access denied",
            "returned error: 401",
            "returned error: 403",
        )
    )


def _write_private(path: Path, text: str, mode: int = 0o600) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    if stat.S_IMODE(os.stat(path).st_mode) != mode:
        os.chmod(path, mode)
