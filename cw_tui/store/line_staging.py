"""The staging table of a Platform load (platform/importer.py decides; this module holds the
SQL). The export's lines are streamed into it, and what the load finds (lines loaded for
another period, lines it would remove, what a re-load changed) and what it writes are SQL
over it and invoice_line: nothing of the file is held in Python, whatever its size.

On SQLite the table lives in a private on-disk database attached for the load (temp tables
are kept in memory here, temp_store=2, and a million lines would not fit the memory target);
on PostgreSQL it is a temporary table of the session.

    kind: OTHER a line of another period (read only to find line IDs given twice),
          NEW a line of a New invoice (skipped), LOAD a line of this load
    seq: the line's place in the export, so reports name lines in file order
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from cw_tui.store.database import Store

OTHER, NEW, LOAD = 0, 1, 2
UNTOUCHABLE = "('synced', 'claimed')"  # a line a load leaves be: ConnectWise's, or a running sync's

# (column, type): what a load computes of a line, in invoice_line's own column names and types
STAGED = (
    ("line_id", "TEXT"), ("period", "TEXT"), ("invoice_number", "TEXT"), ("invoice_date", "TEXT"),
    ("invoice_status", "TEXT"), ("organization_id", "TEXT"), ("contract_id", "TEXT"), ("subscription_id", "TEXT"),
    ("subscription_name", "TEXT"), ("offer_id", "TEXT"), ("charge_type", "TEXT"), ("billing_cycle", "TEXT"),
    ("quantity", "BIGINT"), ("unit_price", "BIGINT"), ("unit_cost", "BIGINT"), ("total", "BIGINT"),
    ("currency", "TEXT"), ("platform_charge_start", "TEXT"), ("platform_charge_end", "TEXT"),
    ("charge_start", "TEXT"), ("charge_start_badge", "TEXT"), ("charge_end", "TEXT"), ("charge_end_badge", "TEXT"),
)
STAGED_COLUMNS = tuple(c for c, _ in STAGED)
_DATES = ("charge_start", "charge_start_badge", "charge_end", "charge_end_badge")
# every staged column but the key: a refreshed line whose values all match is only re-stamped
_REFRESHED = [c for c in STAGED_COLUMNS if c != "line_id"]
CHUNK = 5_000  # lines fetched at a time where Python must look at them
UPDATE_SLICE = 20_000  # lines refreshed by one UPDATE


def _marks(count: int) -> str:
    return ",".join("?" * count)


class Staging:
    """One load's staging table on the store's connection. Use it outside a transaction
    (SQLite attaches its database then), and `close()` it at the end."""

    # While a load runs, SQLite reads through a small page cache and no memory map: a load
    # walks each page once or twice, and a 64 MiB cache and a mapped file would only add
    # their size to the process's memory (the grids' settings come back at close()).
    def __init__(self, store: Store) -> None:
        self.store = store
        self.sqlite = not store.is_postgres
        self.table = "load_stage.load_line" if self.sqlite else "load_line"
        self.matched = "load_stage.load_match" if self.sqlite else "load_match"
        # SQLite's IS NOT is PostgreSQL's IS DISTINCT FROM: NULL-safe "differs"
        self.differs = "IS NOT" if self.sqlite else "IS DISTINCT FROM"
        self.folder: str | None = None
        self.restore_memory = store.backend.spare_memory(store.db)  # the store's own connection, for the load
        if self.sqlite:
            db = store.db
            # A file of its own, not a temp database: with temp_store=2 (the grids') that would
            # be held in memory, a million lines of it.
            self.folder = tempfile.mkdtemp(prefix="cw-tui-load-")
            db.execute_sql("ATTACH DATABASE ? AS load_stage", [os.path.join(self.folder, "stage.sqlite3")])
            # the scratch file spares memory too (it inherits the store's 256 MiB map); it is
            # detached at close(), so there is nothing to put back
            store.backend.spare_memory(db, "load_stage")
            db.execute_sql("PRAGMA load_stage.journal_mode = off")  # scratch: a failed load drops it
            db.execute_sql("PRAGMA load_stage.synchronous = off")

    def close(self) -> None:
        db = self.store.db
        try:
            for table in (self.table, self.matched):
                db.execute_sql(f"DROP TABLE IF EXISTS {table}")
            if self.sqlite:
                db.execute_sql("DETACH DATABASE load_stage")
            self.restore_memory()
        finally:
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)

    def _execute(self, sql: str, params: Iterable[Any] = ()) -> Any:
        return self.store.db.execute_sql(sql, list(params))

    # ------------------------------------------------------------ filling it

    def reset(self) -> None:
        """Empty tables (inside the caller's transaction)."""
        columns = ", ".join(f"{c} {t}" for c, t in STAGED)
        key = "INTEGER PRIMARY KEY" if self.sqlite else "BIGINT NOT NULL"  # SQLite: the rowid, appended in order
        temp = "" if self.sqlite else "TEMP "
        for table in (self.table, self.matched):
            self._execute(f"DROP TABLE IF EXISTS {table}")
        self._execute(f"CREATE {temp}TABLE {self.table} ({columns}, seq {key}, kind INTEGER NOT NULL)")
        if self.sqlite:
            # Indexed as the lines come: CREATE INDEX afterwards sorts them all, and SQLite's
            # sort spills to temp files, which temp_store=2 holds in memory (300 MB at 1M lines).
            self._execute("CREATE INDEX load_stage.load_line_id ON load_line (line_id)")
        # the staged lines the store holds already: what they are there, found in one pass
        self._execute(f"CREATE {temp}TABLE {self.matched} (seq {key}, line_id TEXT, period TEXT, stored_period TEXT, "
                      "status TEXT, mask BIGINT, differs INTEGER, typed INTEGER, claimed INTEGER, at BIGINT)")

    def add(self, rows: Iterable[tuple]) -> None:
        """Stream rows (STAGED_COLUMNS, then seq and kind) in: one executemany (COPY on PostgreSQL)."""
        names = [*STAGED_COLUMNS, "seq", "kind"]
        cursor = self.store.db.cursor()
        if self.sqlite:
            cursor.executemany(f"INSERT INTO {self.table} ({', '.join(names)}) VALUES ({_marks(len(names))})", rows)
            return
        with cursor.copy(f"COPY {self.table} ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def index(self) -> bool:
        """Index the lines by ID; False when a line ID was given twice (the export is then
        read again in full, which says where)."""
        if not self.sqlite:  # COPY into a bare table, then index: the sort is the server's
            self._execute("CREATE INDEX load_line_id ON load_line (line_id)")
            self._execute("CREATE UNIQUE INDEX load_line_seq ON load_line (seq)")
        twice = self._execute(f"SELECT line_id FROM {self.table} GROUP BY line_id HAVING COUNT(*) > 1 LIMIT 1").fetchone()
        if not self.sqlite:
            self._execute(f"ANALYZE {self.table}")  # autovacuum never analyses a temporary table
        return twice is None

    # ------------------------------------------------------------ what the load finds

    def match(self, compared: list[str]) -> None:
        """One pass over the staged lines the store holds: each one's stored period and status,
        which compared columns changed (a bit each, in `compared` order), whether another stored
        value changed, whether a person typed one of its dates, whether a sync's claim is left
        on it, and (SQLite) its rowid. Inside the write transaction."""
        mask = " + ".join(f"CASE WHEN s.{c} {self.differs} l.{c} THEN {1 << i} ELSE 0 END" for i, c in enumerate(compared))
        # the stored values a re-load refreshes beyond the compared ones (charge dates follow the rules)
        differs = " OR ".join(f"s.{c} {self.differs} l.{c}" for c in _REFRESHED if c not in compared)
        at = "l.rowid" if self.sqlite else "NULL"
        self._execute(
            f"INSERT INTO {self.matched} (seq, line_id, period, stored_period, status, mask, differs, typed, claimed, at) "
            f"SELECT s.seq, s.line_id, s.period, l.period, l.sync_status, {mask}, CASE WHEN {differs} THEN 1 ELSE 0 END, "
            "CASE WHEN l.charge_start_badge = 'user' OR l.charge_end_badge = 'user' THEN 1 ELSE 0 END, "
            "CASE WHEN l.claimed_by IS NOT NULL OR l.claimed_at IS NOT NULL THEN 1 ELSE 0 END, "
            f"{at} FROM {self.table} s JOIN invoice_line l ON l.line_id = s.line_id WHERE s.kind = {LOAD} ORDER BY s.seq")
        if not self.sqlite:
            self._execute(f"ANALYZE {self.matched}")  # the counts and writes below plan by its size

    def loaded_elsewhere(self) -> list[tuple[str, str, str, str]]:
        """(line ID, its period in the export, its period in the store, its sync status) of the
        lines of this load already stored for another period."""
        return [tuple(r) for r in self._execute(
            f"SELECT line_id, period, stored_period, status FROM {self.matched} WHERE stored_period <> period")]

    def any_gone(self, periods: list[str]) -> bool:
        """Whether the store holds lines of these periods that are not in this load."""
        marks = _marks(len(periods))
        stored = self._execute(f"SELECT COUNT(*) FROM invoice_line WHERE period IN ({marks})", periods).fetchone()[0]
        matched = self._execute(f"SELECT COUNT(*) FROM {self.matched} WHERE stored_period IN ({marks})", periods).fetchone()[0]
        return stored > matched

    def gone(self, periods: list[str]) -> Iterator[tuple[str, str, str]]:
        """(period, line ID, sync status) of the stored lines of these periods not in this load."""
        yield from self._execute(
            f"SELECT period, line_id, sync_status FROM invoice_line WHERE period IN ({_marks(len(periods))}) "
            f"AND NOT EXISTS ({self._incoming()})", periods)

    def _incoming(self) -> str:
        return f"SELECT 1 FROM {self.table} s WHERE s.line_id = invoice_line.line_id AND s.kind = {LOAD}"

    def period_counts(self, staged: dict[str, int], compared: list[str]) -> dict[str, tuple]:
        """Per period of this load (`staged`: its lines): (lines, kept synced, synced and
        changed, refreshed, refreshed and changed, then per compared column the refreshed lines
        it changed on). One scan a period, no sort: the memory of a count stays flat."""
        kept, refreshed = f"status IN {UNTOUCHABLE}", f"status NOT IN {UNTOUCHABLE}"
        sums = ", ".join(f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)" for condition in (
            kept, f"{kept} AND mask <> 0", refreshed, f"{refreshed} AND mask <> 0"))
        bits = ", ".join(f"SUM(CASE WHEN (mask & {1 << i}) <> 0 THEN 1 ELSE 0 END)" for i in range(len(compared)))
        counts = {}
        for period, lines in staged.items():
            totals = self._execute(f"SELECT {sums} FROM {self.matched} WHERE period = ?", [period]).fetchone()
            fields = self._execute(f"SELECT {bits} FROM {self.matched} WHERE period = ? AND mask <> 0 AND {refreshed}",
                                   [period]).fetchone()  # over the changed lines only: few, mostly
            counts[period] = (lines, *(v or 0 for v in totals), *(v or 0 for v in fields))
        return counts

    def changed_lines(self, period: str, limit: int) -> list[tuple[str, int]]:
        """The first `limit` refreshed lines of the period (in file order) whose compared
        columns changed: (line ID, the bits of the columns, as in match)."""
        return [tuple(r) for r in self._execute(
            f"SELECT line_id, mask FROM {self.matched} WHERE period = ? AND status NOT IN {UNTOUCHABLE} AND mask <> 0 "
            "ORDER BY seq LIMIT ?", [period, limit])]

    def typed_dates(self) -> Iterator[list[tuple]]:
        """In chunks: the refreshed lines with a date a person typed: (seq, invoice date, charge
        type, billing cycle, Platform start, Platform end, stored start, its badge, stored
        end, its badge)."""
        after = -1
        while True:
            chunk = [tuple(r) for r in self._execute(
                f"SELECT s.seq, s.invoice_date, s.charge_type, s.billing_cycle, s.platform_charge_start, "
                f"s.platform_charge_end, l.charge_start, l.charge_start_badge, l.charge_end, l.charge_end_badge "
                f"FROM {self.matched} m JOIN {self.table} s ON s.seq = m.seq JOIN invoice_line l ON l.line_id = m.line_id "
                f"WHERE m.typed = 1 AND m.status NOT IN {UNTOUCHABLE} AND m.seq > ? ORDER BY m.seq LIMIT ?",
                [after, CHUNK])]
            if not chunk:
                return
            yield chunk
            after = chunk[-1][0]

    def set_dates(self, rows: list[tuple]) -> None:
        """(charge start, its badge, charge end, its badge, seq) of staged lines."""
        self.store.db.cursor().executemany(
            f"UPDATE {self.table} SET {', '.join(f'{c} = ?' for c in _DATES)} WHERE seq = ?", rows)

    # ------------------------------------------------------------ writing

    def apply(self, periods: list[str], loaded_at: str, *, removals: bool, new_lines: bool) -> None:
        """Write the load (inside the caller's write transaction, after match): remove the
        unsynced lines of `periods` not in it (`removals`: there are some), refresh the
        unsynced lines it has (what a person set is kept: overrides, typed dates, posting
        state), add the new ones (`new_lines`: there are some); synced and claimed lines are
        left as they are."""
        t, m = self.table, self.matched
        if removals:
            self._execute(f"DELETE FROM invoice_line WHERE period IN ({_marks(len(periods))}) "
                          f"AND sync_status NOT IN {UNTOUCHABLE} AND NOT EXISTS ({self._incoming()})", periods)
        row = "invoice_line.rowid = m.at" if self.sqlite else "invoice_line.line_id = m.line_id"
        refreshed = f"m.status NOT IN {UNTOUCHABLE}"
        changed = "(m.mask <> 0 OR m.differs = 1 OR m.typed = 1)"
        # a line the Platform changed (or with a typed date) gets every value; the others (most,
        # at a re-load) only the new load time, which leaves the table's indexes as they are
        sets = ", ".join(f"{c} = s.{c}" for c in _REFRESHED)
        last = self._execute(f"SELECT MAX(seq) FROM {m}").fetchone()[0]
        # SQLite: in slices of the file, as it gathers an UPDATE ... FROM's rows in memory before
        # it writes them. PostgreSQL: whole, as each slice would scan both tables again.
        width = UPDATE_SLICE if self.sqlite else (last or 0) + 1
        for low in range(0, (last or -1) + 1, width):
            in_slice = f"m.seq >= {low} AND m.seq < {low + width}"
            self._execute(f"UPDATE invoice_line SET {sets}, claimed_by = NULL, claimed_at = NULL, loaded_at = ? "
                          f"FROM {m} m JOIN {t} s ON s.seq = m.seq WHERE {row} AND {in_slice} AND {refreshed} "
                          f"AND {changed}", [loaded_at])
            self._execute(f"UPDATE invoice_line SET loaded_at = ?, claimed_by = NULL, claimed_at = NULL FROM {m} m "
                          f"WHERE {row} AND {in_slice} AND {refreshed} AND NOT {changed} AND m.claimed = 1", [loaded_at])
            self._execute(f"UPDATE invoice_line SET loaded_at = ? FROM {m} m "
                          f"WHERE {row} AND {in_slice} AND {refreshed} AND NOT {changed} AND m.claimed = 0", [loaded_at])
        if new_lines:
            columns = ", ".join(STAGED_COLUMNS)
            self._execute(
                f"INSERT INTO invoice_line ({columns}, sync_status, loaded_at) "
                f"SELECT {', '.join(f's.{c}' for c in STAGED_COLUMNS)}, 'not_synced', ? FROM {t} s "
                f"WHERE s.kind = {LOAD} AND NOT EXISTS (SELECT 1 FROM {m} m WHERE m.seq = s.seq) ORDER BY s.seq",
                [loaded_at])
