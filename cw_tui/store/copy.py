"""Copy one store's rows into another, empty one (`cw-tui db copy`, issue 17 "Moving in"):
SQLite to PostgreSQL and back, or between two of a kind. Both are open and at the current
schema (open_store migrated them); this moves rows, never the schema.

    copy_rows(source, target, progress) -> list[TableCount]
        Every data table of the source, in batches: nothing holds more than BATCH rows. The
        source is read in one snapshot (a read transaction; REPEATABLE READ on PostgreSQL),
        the target is written in one transaction that also checks it is empty, moves
        PostgreSQL's sequences past the copied ids, and counts every table again: any
        failure rolls it all back, so the target stays empty.
    data_tables(store) -> list[str]; first_filled(store) -> str | None (a table with a row)

Values are copied as stored (money in micro-units, times as UTC text, JSON as text); only
booleans change form (SQLite keeps 0/1, PostgreSQL a boolean).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cw_tui.store.database import Store
from cw_tui.store.errors import StoreError

BATCH = 5_000  # rows in memory at once, per table being copied
_SKIPPED_PREFIXES = ("sqlite_",)  # SQLite's own tables (sqlite_sequence, sqlite_stat1)


class TargetNotEmpty(StoreError):
    """The target already holds rows: nothing is copied over them."""

    def __init__(self, target: str, table: str):
        self.target, self.table = target, table
        super().__init__(f"database {target} is not empty (table {table} has rows): nothing was copied. "
                         "Copy into a new, empty database, or one that only has cw-tui's schema")


@dataclass(frozen=True)
class TableCount:
    table: str
    source: int  # rows in the source's snapshot
    copied: int  # rows read and written
    target: int  # rows the target holds after the copy, counted again


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def data_tables(store: Store) -> list[str]:
    """The store's tables that hold data, the schema's version marks aside, in a stable order."""
    return sorted(t for t in store.backend.table_names(store.db) if not t.startswith(_SKIPPED_PREFIXES))


def first_filled(store: Store) -> str | None:
    """The first data table that holds a row, or None: an empty store."""
    for table in data_tables(store):
        if store.db.execute_sql(f"SELECT 1 FROM {_quote(table)} LIMIT 1").fetchone() is not None:
            return table
    return None


def _columns(store: Store, table: str) -> list[str]:
    cursor = store.db.execute_sql(f"SELECT * FROM {_quote(table)} WHERE 1 = 0")
    names = [d[0] for d in cursor.description]
    cursor.close()
    return names


def _boolean_columns(store: Store, table: str) -> set[str]:
    if not store.is_postgres:
        return set()
    rows = store.db.execute_sql("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                                "AND table_name = ? AND data_type = 'boolean'", (table,))
    return {r[0] for r in rows}


def _order(store: Store, table: str) -> str:
    """The order rows are read in. SQLite: file order (rowid), which the copy keeps. PostgreSQL:
    the primary key, and invoice lines by period first: a SQLite target keeps a period's lines
    together, which its grids' rowid ranges rely on for speed."""
    if not store.is_postgres:
        return " ORDER BY rowid" if _has_rowid(store, table) else ""
    rows = store.db.execute_sql(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = CAST(? AS regclass) AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
        (_quote(table),)).fetchall()
    keys = [r[0] for r in rows]
    if table == "invoice_line" and "period" not in keys:
        keys.insert(0, "period")
    return " ORDER BY " + ", ".join(_quote(k) for k in keys) if keys else ""


def _has_rowid(store: Store, table: str) -> bool:
    row = store.db.execute_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    return not (row and row[0] and "WITHOUT ROWID" in row[0].upper())


@contextmanager
def _snapshot(store: Store) -> Iterator[None]:
    """One consistent view of the source for the whole copy, taking no write lock."""
    with store.db.atomic():  # a deferred BEGIN on SQLite: a WAL read snapshot from the first read
        if store.is_postgres:
            store.db.execute_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def _batches(store: Store, table: str, columns: list[str]) -> Iterator[list[tuple]]:
    """The table's rows, BATCH at a time. PostgreSQL's client cursor would fetch the whole
    result first: a server-side cursor (inside the snapshot's transaction) streams it."""
    sql = f"SELECT {', '.join(_quote(c) for c in columns)} FROM {_quote(table)}{_order(store, table)}"
    if store.is_postgres:
        cursor = store.db.connection().cursor(name=f"cw_tui_copy_{table}")
        cursor.itersize = BATCH
    else:
        cursor = store.db.cursor()
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(BATCH):
            yield rows
    finally:
        cursor.close()


def _writer(store: Store, table: str, columns: list[str]) -> Callable[[list[tuple]], None]:
    names = ", ".join(_quote(c) for c in columns)
    if store.is_postgres:
        flags = [c in _boolean_columns(store, table) for c in columns]

        def copy_in(rows: list[tuple]) -> None:
            with store.db.cursor().copy(f"COPY {_quote(table)} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([bool(v) if flag and v is not None else v for v, flag in zip(row, flags, strict=True)]
                                   if any(flags) else row)
        return copy_in
    sql = f"INSERT INTO {_quote(table)} ({names}) VALUES ({', '.join('?' for _ in columns)})"

    def insert(rows: list[tuple]) -> None:
        store.db.cursor().executemany(sql, rows)
    return insert


def _count(store: Store, table: str) -> int:
    return store.db.execute_sql(f"SELECT COUNT(*) FROM {_quote(table)}").fetchone()[0]


def _lock_tables(store: Store, tables: list[str]) -> None:
    """Nobody else writes the target while it is filled (PostgreSQL; SQLite's IMMEDIATE
    transaction already holds the file's write lock). Readers are not blocked."""
    if store.is_postgres and tables:
        store.db.execute_sql(f"LOCK TABLE {', '.join(_quote(t) for t in tables)} IN EXCLUSIVE MODE")


def move_sequences(store: Store) -> list[tuple[str, str, int]]:
    """PostgreSQL: every serial column's sequence past the largest id now in its table, so the
    next sync run, journal entry or log entry gets a new id. (SQLite takes max(rowid) + 1.)"""
    if not store.is_postgres:
        return []
    moved = []
    columns = store.db.execute_sql(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND (column_default LIKE 'nextval(%' OR is_identity = 'YES') ORDER BY table_name, column_name").fetchall()
    for table, column in columns:
        (sequence,) = store.db.execute_sql("SELECT pg_get_serial_sequence(?, ?)", (_quote(table), column)).fetchone()
        if sequence is None:
            continue
        (top,) = store.db.execute_sql(f"SELECT COALESCE(MAX({_quote(column)}), 0) FROM {_quote(table)}").fetchone()
        # is_called=false: the next value is exactly top + 1 (and 1 for an empty table)
        store.db.execute_sql("SELECT setval(?, ?, false)", (sequence, int(top) + 1))
        moved.append((table, column, int(top) + 1))
    return moved


def copy_rows(source: Store, target: Store, progress: Callable[[str, int, int], None] | None = None) -> list[TableCount]:
    """Copy every row of `source` into the empty `target` (see the module's doc). `progress`
    is told (table, rows done in all, rows in all) after each batch."""
    progress = progress or (lambda table, done, total: None)
    tables = data_tables(source)
    target_tables = set(data_tables(target))
    missing = [t for t in tables if t not in target_tables]
    if missing:
        raise StoreError(f"database {target.path} has no table {', '.join(missing)} of the source {source.path}: "
                         "both must be at the same cw-tui schema; nothing was copied")
    with _snapshot(source):
        plan = []
        for table in tables:
            columns = _columns(source, table)
            lost = sorted(set(columns) - set(_columns(target, table)))
            if lost:
                raise StoreError(f"database {target.path} has no column {', '.join(lost)} in table {table}: both must "
                                 "be at the same cw-tui schema; nothing was copied")
            plan.append((table, columns, _count(source, table)))
        total = sum(n for _, _, n in plan)
        done = 0
        counts = []
        with target.atomic("IMMEDIATE"):
            _lock_tables(target, sorted(target_tables))
            filled = first_filled(target)  # again, under the lock: another copy may have filled it meanwhile
            if filled is not None:
                raise TargetNotEmpty(str(target.path), filled)
            for table, columns, expected in plan:
                write = _writer(target, table, columns)
                copied = 0
                for rows in _batches(source, table, columns):
                    write(rows)
                    copied += len(rows)
                    done += len(rows)
                    progress(table, done, total)
                counts.append(TableCount(table, expected, copied, _count(target, table)))
            move_sequences(target)
            wrong = [c for c in counts if not c.source == c.copied == c.target]
            if wrong:  # raised inside the transaction: the target is rolled back to empty
                raise StoreError(f"the copy into {target.path} was rolled back, its row counts did not match: " + "; ".join(
                    f"{c.table} source {c.source}, copied {c.copied}, target {c.target}" for c in wrong))
    return counts
