"""The writes behind a person's changes to invoice lines (services/mapping.py decides what may
change and says why not; this module holds the SQL). A bulk change stages the chosen lines'
keys once in a temporary table, so the grid's predicate (joins, LIKEs) is evaluated once and
each field is one UPDATE: 50,000 lines take milliseconds."""

from __future__ import annotations

from datetime import date
from typing import Any

from cw_tui.rules.vocabulary import RECURRING_CHARGE_TYPES
from cw_tui.store.database import Store
from cw_tui.store.fields import utc_to_text
from cw_tui.store.grid import Selection

EDITABLE = "sync_status IN ('not_synced', 'error')"  # synced and in-flight lines are read-only
_RECURRING = ", ".join(f"'{t.value}'" for t in RECURRING_CHARGE_TYPES)
CHUNK = 5000  # line IDs per IN list (within SQLite's 32,766 parameters)
_CURRENT_COMPANY = "COALESCE(l.override_company_id, o.company_id)"
UNCHANGED = ...  # a company not being changed: the line keeps the one it has


def _company_sql(new_company: Any) -> str:
    """A line's company after a change: unchanged, back to its organization's (None), or `new_company`."""
    if new_company is UNCHANGED:
        return _CURRENT_COMPANY
    return "o.company_id" if new_company is None else str(int(new_company))


def _other_company(store: Store, lines_sql: str, params: list[Any], company_sql: str,
                   company_id: int) -> tuple[str, int | None, int] | None:
    """The first of the lines (by line ID) whose company is not `company_id`: (line ID, its
    company, how many such lines); None when all are of that company."""
    other = (f"FROM invoice_line l JOIN organization o ON o.platform_id = l.organization_id "
             f"WHERE l.line_id IN ({lines_sql}) AND ({company_sql} IS NULL OR {company_sql} != ?)")
    first = store.db.execute_sql(f"SELECT l.line_id, {company_sql} {other} ORDER BY l.line_id LIMIT 1",
                                 [*params, company_id]).fetchone()
    if first is None:
        return None
    count = store.db.execute_sql(f"SELECT COUNT(*) {other}", [*params, company_id]).fetchone()[0]
    return first[0], first[1], count


def contract_lines_of_other_company(store: Store, contract_id: str, company_id: int) -> tuple[str, int | None, int] | None:
    """An editable line of the contract that belongs to another company than `company_id`."""
    return _other_company(store, f"SELECT line_id FROM invoice_line WHERE contract_id = ? AND {EDITABLE}",
                          [contract_id], _CURRENT_COMPANY, company_id)


def clear_contract_line_agreements(store: Store, contract_id: str) -> int:
    """The contract's editable lines forget their own agreements (they follow the contract)."""
    return store.db.execute_sql(
        f"UPDATE invoice_line SET override_agreement_id = NULL WHERE contract_id = ? AND {EDITABLE}", (contract_id,)
    ).rowcount


def line_companies(store: Store, selection: Selection) -> list[tuple[int | None, str | None, int]]:
    """The companies of the selected editable lines (their own PSA Organization, else their
    organization's): (id, name, lines), most lines first."""
    where_sql, params = selection.subquery()
    return [tuple(r) for r in store.db.execute_sql(
        f"SELECT {_CURRENT_COMPANY} AS company, cm.name, COUNT(*) FROM invoice_line l "
        "JOIN organization o ON o.platform_id = l.organization_id "
        f"LEFT JOIN company cm ON cm.id = {_CURRENT_COMPANY} "
        f"WHERE l.line_id IN ({where_sql}) AND l.{EDITABLE} GROUP BY company, cm.name "
        f"ORDER BY COUNT(*) DESC, company{store.backend.NULLS_LIKE_SQLITE[0]}", params)]


class StagedLines:
    """The editable lines a change applies to, staged inside the caller's transaction: on
    SQLite their rowids (each UPDATE then finds a line by its integer key, not by a text
    index), elsewhere their line IDs. The set_* calls gather the new values; `stamp()`, which
    every change ends with, writes them all and the stamp in one UPDATE (each line is
    rewritten once)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        db = store.db
        self._by_rowid = store.backend.HAS_ROWID
        if self._by_rowid:
            db.execute_sql("CREATE TEMP TABLE IF NOT EXISTS bulk_rows (k INTEGER PRIMARY KEY)")
            db.execute_sql("DELETE FROM bulk_rows")
            self.staged = "rowid IN (SELECT k FROM bulk_rows)"  # a condition on invoice_line
            self._key = "rowid"
        else:
            # no key: each line is staged once (from invoice_line, or IDs made unique), and an
            # index to keep up made staging 50,000 lines ~240 ms instead of ~140
            db.execute_sql("CREATE TEMP TABLE IF NOT EXISTS bulk_line_ids (line_id TEXT NOT NULL)")
            db.execute_sql("DELETE FROM bulk_line_ids")
            self.staged = "line_id IN (SELECT line_id FROM bulk_line_ids)"
            self._key = "line_id"
        self._table = "bulk_rows" if self._by_rowid else "bulk_line_ids"
        self._sets: dict[str, tuple[str, list[Any]]] = {}  # column -> (its new value's SQL, parameters)

    @classmethod
    def of_selection(cls, store: Store, selection: Selection) -> StagedLines:
        staged = cls(store)
        where_sql, params = selection.subquery()
        staged._add(f"line_id IN ({where_sql})", params)
        return staged

    @classmethod
    def of_line_ids(cls, store: Store, line_ids: list[str]) -> StagedLines:
        staged = cls(store)
        # each key once (the staging table's key is unique); no sort: a sort of 50,000 IDs
        # costs 15 ms, and each IN list is looked up in its own order anyway
        line_ids = list(dict.fromkeys(line_ids))
        if not staged._by_rowid:  # PostgreSQL: one array parameter (ten IN lists of 5,000 took 330-450 ms)
            staged._add("line_id = ANY(?)", [line_ids])
            return staged
        for start in range(0, len(line_ids), CHUNK):
            chunk = list(line_ids[start : start + CHUNK])
            staged._add(f"line_id IN ({','.join('?' * len(chunk))})", chunk)
        return staged

    def _add(self, condition: str, params: list[Any]) -> None:
        self.store.db.execute_sql(
            f"INSERT INTO {self._table} SELECT {self._key} FROM invoice_line WHERE {condition} AND {EDITABLE}", params)

    def count(self) -> int:
        return self.store.db.execute_sql(f"SELECT COUNT(*) FROM {self._table}").fetchone()[0]

    def of_other_company(self, new_company: Any, company_id: int) -> tuple[str, int | None, int] | None:
        """The first staged line whose company after the change is not `company_id`."""
        return _other_company(self.store, f"SELECT line_id FROM invoice_line WHERE {self.staged}", [],
                              _company_sql(new_company), company_id)

    def own_agreement_of_other_company(self, new_company: Any) -> tuple[str, int, int | None] | None:
        """The first staged line whose own agreement belongs to another company than the line's
        after the change: (line ID, agreement ID, the line's company)."""
        company_sql = _company_sql(new_company)
        row = self.store.db.execute_sql(
            f"SELECT l.line_id, l.override_agreement_id, {company_sql} FROM invoice_line l "
            "JOIN organization o ON o.platform_id = l.organization_id JOIN agreement ag ON ag.id = l.override_agreement_id "
            f"WHERE l.{self.staged} AND ({company_sql} IS NULL OR {company_sql} != ag.company_id) "
            "ORDER BY l.line_id LIMIT 1").fetchone()
        return tuple(row) if row is not None else None

    def end_before_start(self, start: date | None, end: date) -> int:
        """How many staged lines would end before they start (start None: their own start)."""
        start_sql, start_params = ("charge_start", []) if start is None else ("?", [start.isoformat()])
        return self.store.db.execute_sql(f"SELECT COUNT(*) FROM invoice_line WHERE {self.staged} AND ? < {start_sql}",
                                         [end.isoformat(), *start_params]).fetchone()[0]

    def typed_end_before(self, start: date) -> int:
        """How many staged lines have a typed (not default) end before `start`."""
        return self.store.db.execute_sql(
            f"SELECT COUNT(*) FROM invoice_line WHERE {self.staged} AND charge_end_badge != 'default' "
            "AND charge_end IS NOT NULL AND charge_end < ?", [start.isoformat()]).fetchone()[0]

    def set_charge_start(self, start: date) -> None:
        """A typed start (badge User Updated); a default end follows it: the last day of its
        month for one-time lines, none for recurring ones (SPEC §9). (Every SET of one UPDATE
        reads the row as it was: the default end is of the new start, the parameter.)"""
        day = start.isoformat()
        self._sets["charge_start"] = ("?", [day])
        self._sets["charge_start_badge"] = ("'user'", [])
        self._sets["charge_end"] = (f"CASE WHEN charge_end_badge != 'default' THEN charge_end WHEN charge_type IN ({_RECURRING}) "
                                    f"THEN NULL ELSE {self.store.backend.month_end_sql('?')} END", [day])

    def set_charge_end(self, end: date | None) -> None:
        self._sets["charge_end"] = ("?", [end.isoformat() if end is not None else None])
        self._sets["charge_end_badge"] = ("'user'", [])

    def set_override(self, field: str, value: int | None) -> None:
        """The line's own company, product or agreement (None: it follows its organization,
        offer or contract again)."""
        column = {"company_id": "override_company_id", "product_id": "override_product_id",
                  "agreement_id": "override_agreement_id"}[field]
        self._sets[column] = ("?", [value])

    def stamp(self, changed_by: str, changed_at) -> None:
        """Who changed the staged lines, and when (store/changes.py): written with the values
        set before, in one UPDATE."""
        self._sets["changed_by"] = ("?", [changed_by])
        self._sets["changed_at"] = ("?", [utc_to_text(changed_at)])
        sets, params = self._sets, [p for _, values in self._sets.values() for p in values]
        self.store.db.execute_sql(
            f"{self.store.backend.UPDATE_MANY} invoice_line SET {', '.join(f'{column} = {sql}' for column, (sql, _) in sets.items())} "
            f"WHERE {self.staged}", params)
        self._sets = {}
