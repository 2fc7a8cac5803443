"""The store: one SQLite file (WAL, busy timeout) or one PostgreSQL database (a
`postgresql://` URL), holding Platform data, the cached ConnectWise records, the mappings, the
configuration, sync runs and the System Logs.

Credentials are *not* here (see services/credentials.py). The schema is versioned (SQLite:
`PRAGMA user_version`; PostgreSQL: a small table, postgres.py); `open_store` upgrades an older
database in place, in one transaction. What differs between the two is the store's `backend`:
the module sqlite.py or postgres.py.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import peewee as pw

from cw_tui.store import migrations, postgres, sqlite
from cw_tui.store.checkpoints import Checkpoints
from cw_tui.store.errors import DATABASE_ERRORS, StoreError
from cw_tui.store.models import MODELS, SyncRun

APP_ID = 0x63777475  # "cwtu": marks the file as ours (PRAGMA application_id)


def _busy_timeout_ms() -> int:
    """How long a write waits for another process's write lock (CW_TUI_LOCK_TIMEOUT seconds)."""
    try:
        return max(0, int(float(os.environ.get("CW_TUI_LOCK_TIMEOUT", "10")) * 1000))
    except ValueError:
        return 10_000


BUSY_TIMEOUT_MS = _busy_timeout_ms()


class Store:
    """An open store. Models are bound to its database while it is open. `path` is the SQLite
    file, or for PostgreSQL the URL without a password (what messages name)."""

    def __init__(self, path: Path | str, db: pw.Database, backend=sqlite, key: str | None = None):
        self.path = path
        self.db = db
        self.backend = backend
        self._key = key if key is not None else str(Path(path).resolve())
        self._closed = False

    @property
    def is_postgres(self) -> bool:
        return self.backend is postgres

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        key = self._key
        entry = _OPEN.get(key)
        if entry is not None and entry[0] is self.db:
            if entry[1] > 1:
                _OPEN[key] = (entry[0], entry[1] - 1)
                return
            del _OPEN[key]
            checkpoints = _CHECKPOINTS.pop(key, None)
            if checkpoints is not None:
                checkpoints.stop()
        if not self.db.is_closed():
            self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def atomic(self, lock_type: str | None = None) -> Iterator[pw._transaction]:
        """A write transaction that takes the write lock at its start. A deferred one that
        reads first and writes later fails at once with "database is locked" (SQLite's
        BUSY_SNAPSHOT in WAL mode) when another process wrote in between; waiting for the
        lock up front lets the busy timeout do its job.

        When SQLite has already rolled back by itself (a full disk, an I/O error), peewee's
        own ROLLBACK fails with "no transaction is active": the first error is the one that
        says what happened, so it is the one raised.

        On PostgreSQL a plain transaction (rows are locked, not the database); `lock_type`
        (SQLite's IMMEDIATE) means nothing there."""
        transaction = self.backend.atomic(self.db, lock_type)
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

    @contextmanager
    def sparing_memory(self) -> Iterator[None]:
        """Around work that reads or rewrites many lines once (the Dashboard's full reads, a bulk
        change): through the backend's small page cache (SQLite: 4 MiB, no mmap) rather than the
        64 MiB a grid's reads keep warm; this connection's own values are put back after."""
        restore = self.backend.spare_memory(self.db)
        try:
            yield
        finally:
            restore()

    def describe(self, error: BaseException) -> str:
        """A database error in a finance user's words: the file, the cause, what to do."""
        return describe_error(self.path, error)

    def schema_version(self) -> int:
        return self.backend.user_version(self.db)

    def hold_run(self, run_id: int):
        """What keeps run `run_id` alive in others' eyes while this process works on it, to be
        released when the run ends (a context manager too). PostgreSQL: the run's advisory
        lock on a connection of its own (postgres.RunLock); take it inside the transaction that
        creates the run's row. SQLite: nothing (the process's PID says it)."""
        return self.backend.hold_run(self.db, run_id)


def lock_holder(path: Path | str) -> str:
    """Which cw-tui is working on the database, when it says so: its running operation is a
    committed row, which a reader sees while that process holds the write lock."""
    rows = (postgres if postgres.is_url(path) else sqlite).running_operations(path)
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
    """Whether the process that owns a claim or a run ("host|pid|run") still works on it, in
    the store the models are bound to. The sync core asks through sync/claims.py.

    PostgreSQL: the run's advisory lock is held (postgres.RunLock), on whichever machine;
    nothing else counts, age included (the server frees the lock when the process dies, and a
    run alive after six hours must not be posted over). SQLite: a process of this machine
    that still runs, or another machine's (trusted until stale)."""
    from cw_tui.store.fields import now_utc

    db = SyncRun._meta.database
    if isinstance(db, postgres.Database):
        try:
            run_id = int((owner or "").rsplit("|", 1)[1])
        except (IndexError, ValueError):
            return False
        return run_id in postgres.held_runs(db)
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


def describe_error(path: Path | str, error: BaseException) -> str:
    error = first_cause(error)
    if postgres.is_url(str(path)):
        return postgres.describe_error(str(path), error, lock_holder(str(path)) if postgres.is_busy(error) else "")
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
_OPEN: dict[str, tuple[pw.Database, int]] = {}
_CHECKPOINTS: dict[str, Checkpoints] = {}  # an open SQLite file's checkpoint thread, by _OPEN's key


def open_store(path: Path | str, *, migrate: bool = True, create_folder: bool = True) -> Store:
    """Open (creating if needed) and upgrade the store at `path`, a file or a `postgresql://`
    URL; binds the models to it. `create_folder` is for the default location only: a
    mistyped --db must not quietly become a new, empty database somewhere."""
    if postgres.is_url(str(path)):
        return _open_postgres(str(path), migrate=migrate)
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
    _CHECKPOINTS[key] = Checkpoints(path).start()
    return Store(path, db)


def _migrate(db: pw.SqliteDatabase, version: int) -> None:
    # BEGIN IMMEDIATE: two processes upgrading at once serialise instead of racing.
    with db.atomic(sqlite.WRITE_LOCK):
        current = sqlite.user_version(db)
        for step in range(current, migrations.SCHEMA_VERSION):
            migrations.MIGRATIONS[step](db)
        sqlite.mark(db, APP_ID, migrations.SCHEMA_VERSION)


def _open_postgres(url: str, *, migrate: bool) -> Store:
    """A PostgreSQL database: reached as libpq reaches it (~/.pgpass, PGPASSFILE, service
    files, sslmode), never with a password in the URL. A new, empty database gets the schema
    from the models; the SQLite migrations are SQLite's history."""
    label = postgres.redact(url)
    if postgres.has_password(url):
        raise StoreError(f"database {label}: a password does not go in the URL (it would show on command lines and "
                         "in logs); put it in ~/.pgpass (or the file PGPASSFILE names) or a service file")
    shared = _OPEN.get(url)
    if shared is not None:
        db, count = shared
        _OPEN[url] = (db, count + 1)
        db.bind(MODELS, bind_refs=False, bind_backrefs=False)
        return Store(label, db, postgres, key=url)
    db = postgres.database(url, BUSY_TIMEOUT_MS)
    try:
        db.connect()
        version, app_id, tables = postgres.user_version(db), postgres.application_id(db), postgres.table_names(db)
        if version == 0 and tables:
            raise StoreError(f"database {label} holds tables of another program, not a cw-tui database: "
                             "give cw-tui a database of its own")
        if version and app_id != APP_ID:
            raise StoreError(f"database {label} is marked by another program, not cw-tui")
        if version > migrations.SCHEMA_VERSION:
            raise StoreError(f"database {label} was written by a newer cw-tui (schema {version}, this one "
                             f"knows {migrations.SCHEMA_VERSION}); upgrade cw-tui")
        db.bind(MODELS, bind_refs=False, bind_backrefs=False)
        if migrate and version < migrations.SCHEMA_VERSION:
            with postgres.owner_migrates(db, label, version, migrations.SCHEMA_VERSION), db.atomic():
                postgres.lock_migrations(db, APP_ID)
                current = postgres.user_version(db)  # another process may have done it meanwhile
                if current == 0:
                    postgres.create_schema(db, MODELS)
                else:
                    for step in range(current, migrations.SCHEMA_VERSION):
                        upgrade = postgres.UPGRADES.get(step) or (
                            migrations.MIGRATIONS[step] if migrations.MIGRATIONS[step] in migrations.PORTABLE else None)
                        if upgrade is None:
                            raise StoreError(f"database {label} is at schema {current}: this cw-tui has no "
                                             f"PostgreSQL step from version {step}")
                        upgrade(db)
                postgres.mark(db, APP_ID, migrations.SCHEMA_VERSION)
    except StoreError:
        db.close()
        raise
    except (*DATABASE_ERRORS, pw.ImproperlyConfigured) as error:
        db.close()
        raise StoreError(postgres.describe_error(url, error)) from None
    _OPEN[url] = (db, 1)
    return Store(label, db, postgres, key=url)
