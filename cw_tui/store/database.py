"""The local store: one SQLite file (WAL, busy timeout) holding Platform data, the cached
ConnectWise records, the mappings, the configuration, sync runs and the System Logs.

Credentials are *not* here (see services/credentials.py). The schema is versioned with
`PRAGMA user_version`; `open_store` upgrades an older file in place, in one transaction.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import peewee as pw

from cw_tui.store import migrations, sqlite
from cw_tui.store.errors import DATABASE_ERRORS, StoreError
from cw_tui.store.models import MODELS

APP_ID = 0x63777475  # "cwtu": marks the file as ours (PRAGMA application_id)


def _busy_timeout_ms() -> int:
    """How long a write waits for another process's write lock (CW_TUI_LOCK_TIMEOUT seconds)."""
    try:
        return max(0, int(float(os.environ.get("CW_TUI_LOCK_TIMEOUT", "10")) * 1000))
    except ValueError:
        return 10_000


BUSY_TIMEOUT_MS = _busy_timeout_ms()






class Store:
    """An open store. Models are bound to its database while it is open."""

    def __init__(self, path: Path, db: pw.SqliteDatabase):
        self.path = path
        self.db = db
        self._closed = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        key = str(self.path.resolve())
        entry = _OPEN.get(key)
        if entry is not None and entry[0] is self.db:
            if entry[1] > 1:
                _OPEN[key] = (entry[0], entry[1] - 1)
                return
            del _OPEN[key]
        if not self.db.is_closed():
            self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def atomic(self, lock_type: str = sqlite.WRITE_LOCK) -> Iterator[pw._transaction]:
        """A write transaction that takes the write lock at its start. A deferred one that
        reads first and writes later fails at once with "database is locked" (SQLite's
        BUSY_SNAPSHOT in WAL mode) when another process wrote in between; waiting for the
        lock up front lets the busy timeout do its job.

        When SQLite has already rolled back by itself (a full disk, an I/O error), peewee's
        own ROLLBACK fails with "no transaction is active": the first error is the one that
        says what happened, so it is the one raised."""
        transaction = self.db.atomic(lock_type)
        helper = transaction.__enter__()
        try:
            yield helper
        except BaseException as error:
            try:
                transaction.__exit__(type(error), error, error.__traceback__)
            except DATABASE_ERRORS:
                pass
            raise
        try:
            transaction.__exit__(None, None, None)
        except DATABASE_ERRORS as error:
            cause = first_cause(error)  # the failed COMMIT, under the failed ROLLBACK(s)
            if cause is error:
                raise
            raise cause from None

    def describe(self, error: BaseException) -> str:
        """A database error in a finance user's words: the file, the cause, what to do."""
        return describe_error(self.path, error)

    def schema_version(self) -> int:
        return sqlite.user_version(self.db)


def lock_holder(path: Path) -> str:
    """Which cw-tui is working on the database, when it says so: its running operation is a
    committed row, which a reader sees while that process holds the write lock."""
    rows = sqlite.running_operations(path)
    for kind, period, owner, started in rows:
        host, _, rest = (owner or "").partition("|")
        pid = rest.split("|", 1)[0]
        if host == socket.gethostname() and pid.isdigit() and not process_alive(int(pid)):
            continue  # a run left by a process that is gone holds nothing
        what = {"sync": "a sync", "invoices": "a load of invoice lines", "products": "a load of products",
                "organizations": "a sync of organizations"}.get(kind, kind)
        where = f"process {pid}" + (f" on {host}" if host and host != socket.gethostname() else "")
        return f"{what}{' of ' + period if period else ''} ({where}, started {(started or '')[:16].replace('T', ' ')} UTC)"
    return ""


def first_cause(error: BaseException) -> BaseException:
    """A failed ROLLBACK after SQLite rolled back by itself hides the error that says why."""
    while "no transaction is active" in str(error) and isinstance(error.__context__, DATABASE_ERRORS):
        error = error.__context__
    return error


STALE_AFTER = timedelta(hours=6)  # a claim or run this old is abandoned even if its process looks alive


def owner_alive(owner: str | None, since: datetime | None = None, now: datetime | None = None) -> bool:
    """Whether the process that owns a claim or a run ("host|pid|run") still works on it: a
    process of this machine that still runs, or another machine's (trusted until stale). The
    sync core asks through sync/claims.py; a PostgreSQL store answers in its own way."""
    from cw_tui.store.fields import now_utc

    now = now or now_utc()
    if since is not None and now - since > STALE_AFTER:
        return False
    try:
        host, pid_text, _ = (owner or "").split("|", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True  # another machine's run: trust it until it is stale
    return pid == os.getpid() or process_alive(pid)


def process_alive(pid: int) -> bool:
    """Whether a process of this machine still runs (a claim's or a run's owner)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe_error(path: Path, error: BaseException) -> str:
    error = first_cause(error)
    text = str(error).lower()
    if "locked" in text or "busy" in text:
        holder = lock_holder(path)
        who = f"another cw-tui holds its write lock ({holder})" if holder else \
            "another program (perhaps another cw-tui) holds its write lock"
        return f"database {path} is busy: {who}; nothing was changed. Try again when it has finished"
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return (
            f"database {path} is damaged or is not a cw-tui database ({error}); "
            "restore it from a backup or choose another file with --db"
        )
    if ("disk" in text and ("full" in text or "i/o" in text)) or "too big" in text or "file too large" in text:
        return f"cannot write database {path}: the disk is full or failing ({error}); nothing was changed. Free some space and try again"
    if "readonly" in text or "read-only" in text or "permission" in text:
        return f"cannot write database {path}: it is read-only for this user ({error}); nothing was changed"
    if "unable to open" in text:
        return f"cannot open database {path}: check that the file and its folder exist and can be written"
    return f"database {path} cannot be used: {error}"


# One database object per file in a process: the models are bound to one database at a
# time, and two objects on one file would give one thread two connections, each waiting for
# the other's write lock.
_OPEN: dict[str, tuple[pw.SqliteDatabase, int]] = {}


def open_store(path: Path | str, *, migrate: bool = True, create_folder: bool = True) -> Store:
    """Open (creating if needed) and upgrade the store at `path`; binds the models to it.
    `create_folder` is for the default location only: a mistyped --db must not quietly
    become a new, empty database somewhere."""
    path = Path(path).expanduser()
    key = str(path.resolve())
    shared = _OPEN.get(key)
    if shared is not None:
        db, count = shared
        _OPEN[key] = (db, count + 1)
        db.bind(MODELS, bind_refs=False, bind_backrefs=False)
        return Store(path, db)
    if path.is_dir():
        raise StoreError(f"{path} is a folder, not a database file: give a file name, e.g. {path / 'cw-tui.sqlite3'}")
    if not path.parent.is_dir():
        if not create_folder:
            raise StoreError(f"the folder {path.parent} does not exist, so database {path} cannot be created there; "
                             "check the path (--db or CW_TUI_DB), or create the folder first")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"cannot create the folder for database {path}: {error.strerror}") from None
    db = sqlite.database(path, BUSY_TIMEOUT_MS)
    try:
        db.connect()
        version, app_id, tables = sqlite.user_version(db), sqlite.application_id(db), sqlite.table_names(db)
        if version == 0 and tables:
            raise StoreError(f"{path} is an SQLite file of another program, not a cw-tui database")
        if version and app_id != APP_ID:
            raise StoreError(f"{path} is an SQLite file of another program, not a cw-tui database")
        if version > migrations.SCHEMA_VERSION:
            raise StoreError(
                f"database {path} was written by a newer cw-tui (schema {version}, this one "
                f"knows {migrations.SCHEMA_VERSION}); upgrade cw-tui"
            )
        db.bind(MODELS, bind_refs=False, bind_backrefs=False)
        if migrate and version < migrations.SCHEMA_VERSION:
            _migrate(db, version)
    except StoreError:
        db.close()
        raise
    except DATABASE_ERRORS as error:
        db.close()
        raise StoreError(describe_error(path, error)) from None
    _OPEN[key] = (db, 1)
    return Store(path, db)


def _migrate(db: pw.SqliteDatabase, version: int) -> None:
    # BEGIN IMMEDIATE: two processes upgrading at once serialise instead of racing.
    with db.atomic(sqlite.WRITE_LOCK):
        current = sqlite.user_version(db)
        for step in range(current, migrations.SCHEMA_VERSION):
            migrations.MIGRATIONS[step](db)
        sqlite.mark(db, APP_ID, migrations.SCHEMA_VERSION)
