"""What only SQLite understands, in one place: how the file is opened (WAL, busy timeout,
caches), its version marks (PRAGMAs), the write lock taken up front, and a read that works
while another process holds that lock. postgres.py has the same functions for PostgreSQL.

The store's raw SQL is written with `?` placeholders for both (postgres.py puts them in psycopg's
style); what differs between the two is asked of the store's backend, this module or that one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import peewee as pw

# BEGIN IMMEDIATE: a write transaction takes the write lock at its start (see Store.atomic).
WRITE_LOCK = "IMMEDIATE"
HAS_ROWID = True  # the grids page by rowid, and scan a period's rowid range in file order
NULLS_LIKE_SQLITE = ("", "")  # the ORDER BY suffixes (ascending, descending) that sort NULLs as SQLite does
# An UPDATE of many rows inside a caller's transaction: OR FAIL needs no statement journal to
# undo the statement alone (temp_store=2 kept it in memory: +18 MB for 50,000 lines); a failure
# still rolls the whole transaction back (Store.atomic), so nothing is half-written
UPDATE_MANY = "UPDATE OR FAIL"


def database(path: Path, busy_timeout_ms: int) -> pw.SqliteDatabase:
    return pw.SqliteDatabase(
        str(path),
        timeout=busy_timeout_ms / 1000,
        pragmas={
            "journal_mode": "wal",
            "busy_timeout": busy_timeout_ms,
            "synchronous": "normal",
            "foreign_keys": 1,
            "cache_size": -65536,  # 64 MiB: grids sort and count 100k-line periods
            # No mmap: a page read through it stays mapped in the process (with the kernel's
            # fault-around, about twice the pages SQLite asked for), once per connection, up to
            # the map's size; read into the page cache above, a period's pages are half the
            # memory, bounded, and a scan of them is no slower (grid_bench --months 15: a search
            # of 100k lines 80 -> 55 ms, the Mapping Status fill 250 -> 170 ms)
            "mmap_size": 0,
            "temp_store": 2,  # the grids' sets of matching rows are temp tables: keep them in memory
            "wal_autocheckpoint": 0,  # a commit does not copy the log into the file: checkpoints.py does, after
        },
        check_same_thread=False,
    )


# A read or a load of every line that should not stay in the process: a 4 MiB page cache
# (64 MiB otherwise), and no mmap (should a connection have been given one).
SPARING_PRAGMAS = (("cache_size", -4096), ("mmap_size", 0))


def spare_memory(db: pw.Database, schema: str = "main") -> Callable[[], None]:
    """Sets SPARING_PRAGMAS on `schema`; returns what puts the connection's own values back."""
    before = [(name, db.execute_sql(f"PRAGMA {schema}.{name}").fetchone()[0]) for name, _ in SPARING_PRAGMAS]
    for name, value in SPARING_PRAGMAS:
        db.execute_sql(f"PRAGMA {schema}.{name} = {int(value)}")

    def restore() -> None:
        for name, value in before:
            db.execute_sql(f"PRAGMA {schema}.{name} = {int(value)}")
    return restore


def position(haystack, needle) -> pw.Node:
    """Where `needle` is in `haystack` (1-based, 0 if not): a literal find, no wildcards."""
    return pw.fn.instr(haystack, needle)


def atomic(db: pw.Database, lock_type: str | None):
    return db.atomic(lock_type or WRITE_LOCK)


def month_end_sql(day_sql: str) -> str:
    """SQL for the last day of the month of the ISO date `day_sql`, as ISO text."""
    return f"date({day_sql}, 'start of month', '+1 month', '-1 day')"


def user_version(db: pw.Database) -> int:
    return db.execute_sql("PRAGMA user_version").fetchone()[0]


def application_id(db: pw.Database) -> int:
    return db.execute_sql("PRAGMA application_id").fetchone()[0]


def table_names(db: pw.Database) -> set[str]:
    return {row[0] for row in db.execute_sql("SELECT name FROM sqlite_master WHERE type='table'")}


def mark(db: pw.Database, app_id: int, version: int) -> None:
    """Marks the file as ours, at this schema version (inside the migration's transaction)."""
    db.execute_sql(f"PRAGMA application_id = {int(app_id)}")
    db.execute_sql(f"PRAGMA user_version = {int(version)}")


def lock_migrations(db: pw.Database, app_id: int) -> None:
    """Two processes upgrading at once take turns: the migration's BEGIN IMMEDIATE does it."""


def change_marks(db: pw.Database) -> tuple:
    """What tells a grid's cache that the database changed: a commit by another connection
    (PRAGMA data_version) or by this one (its change count)."""
    connection = db.connection()
    return id(connection), connection.execute("PRAGMA data_version").fetchone()[0], connection.total_changes


class RunLock:
    """Nothing to hold: on SQLite a run's liveness is its process (host|pid, database.owner_alive)."""

    def release(self) -> None:
        pass

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def hold_run(db: pw.Database, run_id: int) -> RunLock:
    return RunLock()


def running_operations(path: Path) -> list[tuple]:
    """The newest running operations, read on a read-only connection of its own: a reader
    sees the committed rows while another process holds the write lock."""
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT kind, period, owner, started_at FROM sync_run WHERE state = 'running' "
                               "ORDER BY id DESC LIMIT 5").fetchall()
        finally:
            con.close()
    except (sqlite3.Error, OSError, ValueError):
        return []
