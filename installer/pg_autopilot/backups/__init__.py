"""pg_dump backups (backup-hourly, backup-daily, `autopilot backups run`) and their restore.

One backup of one database, in order:

1. a ``running`` row in ``autopilot.backup_metadata`` is inserted and, in the same transaction, this session
   takes an advisory lock on it that it holds for as long as the backup runs (a ``running`` row whose lock
   is free was abandoned by a killed runner: the next backup marks it failed and removes its leftovers; a
   row is never visible unlocked, so a concurrent cleanup cannot take a fresh backup for an abandoned one);
2. an intent record ``<name>.intent.json`` (the row's id, database, kind, file) is written beside the archive
   to be, then ``pg_dump`` (custom format, or directory format with ``--jobs``) writes ``<name>.partial`` with
   umask 077, ``--lock-wait-timeout`` and ``--no-password``; no secret of the DSN reaches its command line:
   the password goes through a private passfile (``PGPASSFILE``), ``sslpassword`` through a private service
   file (``PGSERVICEFILE``), ``options`` through ``PGOPTIONS``, both in a run directory of their own in a
   per-user private directory (private_root), which the next run sweeps if this one is killed;
3. the archive is fsynced (every file of a directory archive), renamed to its final name, and the
   directory fsynced: only then is the row ``succeeded``;
4. verification reads the whole archive back: ``pg_restore --file=/dev/null`` decompresses every data
   block (``pg_restore --list`` reads only the table of contents and passes a truncated archive). For
   the custom format the file is tailed into pg_restore *while* pg_dump writes it, on the other core,
   so verifying adds little wall time (see ``_dump``); then the final file's size is compared with what
   was read back, its sha256 taken and its rewritten table of contents listed. A directory archive is
   read back after the dump while its files are hashed;
5. a JSON manifest is written beside the archive (temp file, fsync, rename) and the row becomes
   ``verified``; then older verified backups of the same kind and database beyond
   ``backups.<kind>_keep`` are deleted (files and manifest; their rows become ``pruned`` only once their
   files are gone). A backup that cannot be deleted stays ``verified`` and is reported (the new backup
   still counts as taken); the next backup tries again.

The runner's database role can write backup_metadata, so no row is trusted on its word (check_backup): the
cleanup of an abandoned backup deletes only files in the backup directory named as the runner names that
row's files with its intent record beside them; retention counts and deletes, status shows and
restore picks only verified rows whose times are not in the future and whose archive is there, named so,
with its manifest naming the row's sha256 (restore also recomputes the sha256). The rest is reported.

Every status change is guarded by the status it expects, so a row someone else marked failed is never
turned back into a verified one. Anything failing leaves no final-named file and no manifest, a ``failed``
row with pg_dump's own message, and raises BackupFailed (the runner retries it with backoff; a retry of
the same job backs up only the databases without a verified backup from that job).

pg_dump and pg_restore run in a process group of their own (a terminal's Ctrl-C or a service manager's
stop signal reaches this process, which decides) and are watched while they run: a cancelled job, a job
past its deadline or a lost metadata connection kills them and fails the backup. The metadata connection
has TCP keepalives and is touched every ``TOUCH_INTERVAL`` seconds while pg_dump runs, so a proxy that
drops idle connections cannot silently take the advisory lock away. At interpreter exit, children still
running are killed and private files (passfiles, ``.partial`` archives) removed; and they get a parent-death
signal, so that even a runner killed with SIGKILL leaves no pg_dump running.

A restore restores into a database named ``autopilot_restoring_<oid>_<token>``, renamed only once pg_restore
succeeded; its advisory lock marks it live. Whatever stops the restore, that database is dropped at once or,
when the server cannot be reached then (a restart), by the next restore or backup; `autopilot status` shows it
until then.

The package, from the low level up (each module imports only modules above it in this list):

- ``settings``: the backups.* settings; ``programs``: pg_dump / pg_restore, their version and command line;
  ``archives``: archive names, the intent record and manifest, their sha256, fsync, removal, the backup
  directory;
- ``processes``: children in process groups of their own, parent-death signal, waiting, the watch of
  cancellation, deadline and the metadata connection, cleanup at interpreter exit;
- ``credentials``: passfile and service file in a private run directory; ``verify``: the read-back;
  ``dump``: pg_dump with the custom archive read back while it is written;
- ``rows``: backup_metadata rows, who recorded them, a running backup's advisory lock; ``trust``:
  check_backup and friends; ``restoring``: the databases restores restore into, half-restored ones;
- ``progress``: what a running backup reports (bytes written, rate) and when that is worth a log line;
- ``abandoned``: the cleanup of killed runs; ``retention``: prune; ``restore``; ``backup``: run_backup and
  the backup of one database; ``status``: backup_status; ``inventory``: list_backups and verify_backups
  (each file read again, a missing or changed one marked ``missing`` or ``corrupt``).

Callers use the names re-exported here (``backups.run_backup``, ``backups.restore_backup``, ...). Each is
loaded from its module on first use, so that `autopilot status` (backups.status) loads neither pg_dump's nor
pg_restore's machinery.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for static tools; at run time each name is loaded on first use (__getattr__, _EXPORTS)
    from ..errors import BackupFailed, RestoreFailed
    from .archives import (
        INTENT_SUFFIX,
        MANIFEST_SUFFIX,
        PARTIAL_SUFFIX,
        archive_name,
        directory_digest,
        hash_archive,
        intent_path,
        manifest_path,
    )
    from .backup import BackupResult, DatabaseBackup, run_backup
    from .credentials import libpq_target, private_root, sweep_private
    from .dump import child_setup
    from .inventory import CHECKED_STATUSES, Checked, ListedBackup, Verified, list_backups, verify_backups
    from .processes import TOUCH_INTERVAL, BackupCancelled, Interrupted
    from .programs import check_pg_dump_version, pg_bindir, pg_dump_argv, program_version
    from .progress import BackupProgress, LogCadence, ProgressSink, describe, size_text
    from .restore import RESTORE_DROP_WAIT, RestoreResult, restore_backup, restore_list
    from .restoring import RESTORE_LOCK_CLASS, RESTORING_PREFIX, drop_half_restored, half_restored
    from .retention import Pruned, prune
    from .rows import KEEPALIVES, LOCK_CLASS, BackupRow
    from .settings import FORMATS, KINDS, Settings, read_settings
    from .status import backup_status
    from .trust import CLOCK_SKEW, check_backup, own_archive
    from .verify import Verification, verify_archive

# the names above (and a few private ones the tests use), by the module each is loaded from
_EXPORTS = {
    name: module
    for module, names in {
        "..errors": ("BackupFailed", "RestoreFailed"),
        ".archives": (
            "INTENT_SUFFIX",
            "MANIFEST_SUFFIX",
            "PARTIAL_SUFFIX",
            "_write_manifest",
            "archive_name",
            "directory_digest",
            "hash_archive",
            "intent_path",
            "manifest_path",
        ),
        ".backup": ("BackupResult", "DatabaseBackup", "run_backup"),
        ".credentials": ("libpq_target", "private_root", "sweep_private"),
        ".dump": ("child_setup",),
        ".inventory": (
            "CHECKED_STATUSES",
            "Checked",
            "ListedBackup",
            "Verified",
            "list_backups",
            "verify_backups",
        ),
        ".processes": ("_POLL_SECONDS", "TOUCH_INTERVAL", "BackupCancelled", "Interrupted"),
        ".programs": ("check_pg_dump_version", "pg_bindir", "pg_dump_argv", "program_version"),
        ".progress": ("BackupProgress", "LogCadence", "ProgressSink", "describe", "size_text"),
        ".restore": ("RESTORE_DROP_WAIT", "RestoreResult", "restore_backup", "restore_list"),
        ".restoring": ("RESTORE_LOCK_CLASS", "RESTORING_PREFIX", "drop_half_restored", "half_restored"),
        ".retention": ("Pruned", "prune"),
        ".rows": ("KEEPALIVES", "LOCK_CLASS", "BackupRow", "_identity", "_lock_key", "_metadata_connection"),
        ".settings": ("FORMATS", "KINDS", "Settings", "read_settings"),
        ".status": ("backup_status",),
        ".trust": ("CLOCK_SKEW", "check_backup", "own_archive"),
        ".verify": ("Verification", "verify_archive"),
    }.items()
    for name in names
}
# the modules of the package, reachable as its attributes too (tests set their tunables there)
_SUBMODULES = frozenset(
    {
        "abandoned",
        "archives",
        "backup",
        "credentials",
        "dump",
        "inventory",
        "processes",
        "programs",
        "progress",
        "restore",
        "restoring",
        "retention",
        "rows",
        "settings",
        "status",
        "trust",
        "verify",
    }
)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMODULES, *_EXPORTS})


__all__ = [
    "CHECKED_STATUSES",
    "CLOCK_SKEW",
    "FORMATS",
    "INTENT_SUFFIX",
    "KEEPALIVES",
    "KINDS",
    "LOCK_CLASS",
    "MANIFEST_SUFFIX",
    "PARTIAL_SUFFIX",
    "RESTORE_DROP_WAIT",
    "RESTORE_LOCK_CLASS",
    "RESTORING_PREFIX",
    "TOUCH_INTERVAL",
    "BackupCancelled",
    "BackupFailed",
    "BackupProgress",
    "BackupResult",
    "BackupRow",
    "Checked",
    "DatabaseBackup",
    "Interrupted",
    "ListedBackup",
    "LogCadence",
    "ProgressSink",
    "Pruned",
    "RestoreFailed",
    "RestoreResult",
    "Settings",
    "Verification",
    "Verified",
    "archive_name",
    "backup_status",
    "check_backup",
    "check_pg_dump_version",
    "child_setup",
    "describe",
    "directory_digest",
    "drop_half_restored",
    "half_restored",
    "hash_archive",
    "intent_path",
    "libpq_target",
    "list_backups",
    "manifest_path",
    "own_archive",
    "pg_bindir",
    "pg_dump_argv",
    "private_root",
    "program_version",
    "prune",
    "read_settings",
    "restore_backup",
    "restore_list",
    "run_backup",
    "size_text",
    "sweep_private",
    "verify_archive",
    "verify_backups",
]
