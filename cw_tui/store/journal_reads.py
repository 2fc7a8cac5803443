"""The app's grids over run history and the last reconciliation (SPEC §15): the list of sync
runs, one run's actions (the journal), and the last reconciliation's rows per customer and currency with the Additions and
lines behind each. Sources of the shared grid engine (grid.py); they answer plain rows.

Each month's last reconciliation is kept as one JSON value in the settings table
(RECONCILIATION_REPORT + the month, written by services/reconciliation.py); its grids read it in SQL (SQLite's json_each,
PostgreSQL's jsonb functions), so they search, sort, filter and export as every other grid. No textual here."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from cw_tui.rules.display import iso_utc, local_minute, money_text
from cw_tui.store.grid import Column, GridSource
from cw_tui.store.journal import RUN_ACTION_COLUMNS, RUN_ACTIONS_FROM, RUN_ACTIONS_WHERE, undo_counts

RECONCILIATION_SUMMARY = "reconciliation.last"  # {at, period, mismatches, customers, additions_read, who}
RECONCILIATION_REPORT = "reconciliation.report:"  # + period: {period, at, rows: [...], items: [...]}


def local_with_zone(stored: str | None) -> str:
    """A stored UTC timestamp in local time, to the minute, with its zone: 2026-11-18 09:30 UTC."""
    if not stored:
        return ""
    moment = datetime.fromisoformat(stored.replace("Z", "+00:00"))
    moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone()
    return f"{moment:%Y-%m-%d %H:%M} {moment.tzname() or moment.strftime('%z')}"


def totals_text(stored: str | None) -> str:
    """A run's totals per currency (JSON, Decimals as text), to the cent: EUR 1,234.50 · USD 9.00."""
    if not stored:
        return ""
    try:
        totals = json.loads(stored)
    except ValueError:
        return ""
    return " · ".join(f"{currency} {Decimal(amount):,.2f}" for currency, amount in sorted(totals.items()))


def undo_text(counts: dict[str, int]) -> str:
    """What an undo run did, in words: 37 deleted, 33 restored, 27 lines back to Not Synced, 2 refused."""
    def n(key: str) -> int:
        return int(counts.get(key) or 0)

    parts = [f"{n('deleted'):,} deleted" if n("deleted") else "", f"{n('restored'):,} restored" if n("restored") else "",
             f"{n('ended'):,} ended" if n("ended") else "",
             f"{n('agreements_deleted'):,} agreement{'s' if n('agreements_deleted') != 1 else ''} deleted"
             if n("agreements_deleted") else "",
             f"{n('lines_not_synced'):,} line{'s' if n('lines_not_synced') != 1 else ''} back to Not Synced"
             if n("lines_not_synced") else "",
             f"{n('refused'):,} refused" if n("refused") else "", f"{n('kept'):,} kept" if n("kept") else "",
             f"{n('errors'):,} error{'s' if n('errors') != 1 else ''}" if n("errors") else ""]
    return ", ".join(p for p in parts if p) or "nothing undone"


def run_totals_text(stored: str | None) -> str:
    """The runs grid's Totals: a sync's totals posted per currency, an undo's tallies in words
    (an undo's counts are keyed by word, a sync's totals by currency code)."""
    counts = undo_counts(stored)
    if "lines_not_synced" in counts or "deleted" in counts:
        return undo_text(counts)
    return totals_text(stored)


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"


def money_or_blank(micros: int | None) -> str:
    return money_text(micros) if micros is not None else ""


TRIGGER_SQL = ("CASE r.trigger WHEN 'app' THEN 'app' WHEN 'cli' THEN 'CLI' WHEN 'scheduled' THEN 'scheduled' "
               "ELSE COALESCE(r.trigger, '') END")


def _ids(ids: Iterable[int]) -> str:
    return ",".join(str(i) for i in sorted({int(i) for i in ids}))  # integers only: they go into the SQL text


# a sync's newest finished undo run (NULL: none)
_UNDONE_BY = ("(SELECT MAX(u.id) FROM sync_run u WHERE u.kind = 'undo' AND u.state = 'finished' "
              "AND u.undoes_run_id = r.id)")


def _state_sql(interrupted: Iterable[int], partly: Iterable[int] = ()) -> str:
    """As run history shows it (journal._shown_state and RunSummary.undone_text): a sync a
    finished undo reverted is "undone by #M" ("partly undone by #M" when that undo refused
    items or had errors); a running run whose process is gone is interrupted; before v5, ok
    and partial were finished and refused failed."""
    dead, some = _ids(interrupted), _ids(partly)
    how = f"CASE WHEN r.id IN ({some}) THEN 'partly undone by #' ELSE 'undone by #' END" if some else "'undone by #'"
    undone = f"WHEN r.kind = 'sync' AND {_UNDONE_BY} IS NOT NULL THEN {how} || CAST({_UNDONE_BY} AS TEXT) "
    gone = f"WHEN r.id IN ({dead}) THEN 'interrupted' " if dead else ""
    return (f"CASE {undone}{gone}WHEN r.state IN ('ok', 'partial') THEN 'finished' WHEN r.state = 'refused' THEN 'failed' "
            "ELSE r.state END")


KIND_SQL = "CASE WHEN r.kind = 'undo' THEN 'undo of #' || COALESCE(CAST(r.undoes_run_id AS TEXT), '?') ELSE r.kind END"


def _sync_only(column: str) -> str:
    """A sync's tally; blank on an undo's row (what an undo did is in its Totals, in words)."""
    return f"CASE WHEN r.kind = 'undo' THEN NULL ELSE r.{column} END"


def runs_source(interrupted: Iterable[int] = (), partly_undone: Iterable[int] = ()) -> GridSource:
    """Every sync and undo run, newest first. `interrupted`: the running runs whose process is
    gone (journal.list_runs knows them; SQL cannot ask a process); `partly_undone`: the syncs
    whose newest finished undo refused items or had errors (list_runs reads the undo's tallies,
    so the grid's SQL needs no JSON function)."""
    return GridSource(
        "runs", "sync_run r",
        (
            Column("id", "Run", "r.id", numeric=True, searchable=True, width=5),
            Column("kind", "Kind", KIND_SQL, filterable=True, searchable=True, width=11),
            Column("started", "When", "r.started_at", width=20, display=local_with_zone, csv=iso_utc),
            Column("who", "Who", "COALESCE(r.who, '')", searchable=True, filterable=True, text=True, width=10),
            Column("trigger", "Started by", TRIGGER_SQL, filterable=True, width=9),
            Column("period", "Period", "COALESCE(r.period, '')", filterable=True, searchable=True, text=True, width=7),
            Column("state", "State", _state_sql(interrupted, partly_undone), filterable=True, width=14),
            Column("lines", "Lines", "r.synced_lines", numeric=True, width=7),
            Column("created", "Created", _sync_only("created"), numeric=True, width=7),
            Column("updated", "Updated", _sync_only("updated"), numeric=True, width=7),
            Column("cancelled", "Cancelled", _sync_only("cancelled"), numeric=True, width=9),
            Column("adopted", "Adopted", _sync_only("adopted"), numeric=True, width=7),
            Column("errors", "Errors", "r.errors", numeric=True, width=6),
            Column("api", "API calls", "r.api_calls", numeric=True, width=9),
            Column("duration", "Duration", "r.duration_s", numeric=True, width=10, display=duration_text),
            Column("totals", "Totals", "CASE WHEN r.kind = 'undo' THEN r.counts ELSE r.totals END", sortable=False,
                   width=60, display=run_totals_text),
        ),
        key_sql="r.id", where="r.kind IN ('sync', 'undo')", default_sort=(("id", True),), singular="run", name_key="id",
    )


def report_key(period: str) -> str:
    return RECONCILIATION_REPORT + period


def _report(store, period: str, part: str) -> str:
    """The rows (or items) of the month's report as a table of (key, value): key the place in
    the list from 0, value one JSON object. SQLite's json_each; on PostgreSQL the jsonb
    elements with their ordinality, so keys and order are the same on both."""
    if len(period) != 7 or not period.replace("-", "").isdigit():
        raise ValueError(f"not a month: {period!r}")  # it goes into the SQL text: YYYY-MM only
    assert part in ("rows", "items")
    value = f"(SELECT value FROM setting WHERE key = '{report_key(period)}')"
    if store.is_postgres:
        return (f"(SELECT e.ord - 1 AS key, e.value FROM jsonb_array_elements(CAST({value} AS jsonb) -> '{part}') "
                "WITH ORDINALITY AS e(value, ord))")
    return f"json_each({value}, '$.{part}')"


def _fields(store):
    """SQL for one field of a report's JSON object: text, or a number (amounts are micros)."""
    if store.is_postgres:
        def text(alias: str, name: str) -> str:
            return f"({alias}.value ->> '{name}')"

        def number(alias: str, name: str) -> str:
            return f"CAST({alias}.value ->> '{name}' AS bigint)"

        return text, number

    def extract(alias: str, name: str) -> str:
        return f"json_extract({alias}.value, '$.{name}')"

    return extract, extract


def reconciliation_source(store, period: str) -> GridSource:
    """The month's last reconciliation, per customer and currency (mismatched rows first)."""
    t, n = _fields(store)
    return GridSource(
        "reconciliation rows", f"{_report(store, period, 'rows')} r",
        (
            Column("customer", "Customer", t("r", "customer"), searchable=True, text=True, width=20),
            Column("currency", "Cur", t("r", "currency"), filterable=True, width=3),
            Column("status", "Status", t("r", "status"), filterable=True, width=12),
            Column("invoiced", "Invoiced", n("r", "invoiced"), numeric=True, width=10, display=money_or_blank),
            Column("posted", "Posted", n("r", "posted"), numeric=True, width=10, display=money_or_blank),
            Column("connectwise", "CW now", n("r", "connectwise"), numeric=True, width=10, display=money_or_blank),
            Column("reasons", "Reasons", t("r", "reasons"), searchable=True, text=True, width=40),
            Column("lines", "Lines", n("r", "invoiced_lines"), numeric=True, width=6),
            Column("additions", "Additions", n("r", "posted_count"), numeric=True, width=9),
            Column("not_posted", "Not posted", n("r", "not_posted_lines"), numeric=True, width=10),
        ),
        key_sql="r.key", singular="reconciliation row",
        name_key="customer",
    )


def reconciliation_items_source(store, period: str, customer: str, currency: str) -> GridSource:
    """The Additions and lines behind one row of the month's last reconciliation."""
    t, n = _fields(store)
    return GridSource(
        "reconciliation items", f"{_report(store, period, 'items')} i",
        (
            Column("status", "Status", t("i", "status"), filterable=True, width=13),
            Column("reason", "Reason", t("i", "reason"), searchable=True, text=True, width=44),
            Column("kind", "What", t("i", "kind"), filterable=True, width=8),
            Column("addition", "Addition", t("i", "addition"), searchable=True, text=True, width=9),
            Column("agreement", "Agreement", n("i", "agreement"), numeric=True, searchable=True, width=9),
            Column("invoiced", "Invoiced", n("i", "invoiced"), numeric=True, width=12, display=money_or_blank),
            Column("posted", "Posted", n("i", "posted"), numeric=True, width=12, display=money_or_blank),
            Column("connectwise", "CW now", n("i", "connectwise"), numeric=True, width=12, display=money_or_blank),
            Column("marker", "Marker", t("i", "marker"), searchable=True, text=True, width=26),
            Column("lines", "Lines", t("i", "lines"), searchable=True, text=True, width=30),
        ),
        key_sql="i.key", where=f"{t('i', 'customer')} = ? AND {t('i', 'currency')} = ?",
        params=(customer, currency), singular="reconciliation item", name_key="status",
    )


def reconciliation_row(store, period: str, key: str) -> dict | None:
    """One row of the month's last reconciliation by its grid key (plain values)."""
    value = "CAST(r.value AS text)" if store.is_postgres else "r.value"  # JSON text on both
    found = store.db.execute_sql(f"SELECT {value} FROM {_report(store, period, 'rows')} r WHERE r.key = ?",
                                 (int(key),)).fetchone()
    return json.loads(found[0]) if found else None


__all__ = ["RECONCILIATION_REPORT", "RECONCILIATION_SUMMARY", "duration_text", "local_with_zone",
           "reconciliation_items_source", "reconciliation_row", "report_key", "reconciliation_source", "run_totals_text",
           "runs_source", "totals_text", "undo_text"]


# ---- one run's actions: the journal's columns (store/journal.py RUN_ACTION_COLUMNS) with the grid's display

_ACTION_WIDTHS = {"id": 6, "action": 13, "outcome": 8, "customer": 28, "currency": 4, "amount": 12, "marker": 26,
           "agreement": 9, "addition": 9, "lines": 5, "error": 30, "written": 16, "who": 10}


def _action_column(key: str, title: str, sql: str, kind: str) -> Column:
    width = _ACTION_WIDTHS.get(key)
    if kind == "filter":
        return Column(key, title, sql, filterable=True, searchable=True, text=True, width=width)
    if kind == "money":
        return Column(key, title, sql, numeric=True, width=width, display=money_text)
    if kind == "number":
        return Column(key, title, sql, numeric=True, searchable=key in ("agreement", "addition"), width=width)
    if kind == "time":
        return Column(key, title, sql, width=width, display=local_minute, csv=iso_utc)
    return Column(key, title, sql, searchable=True, text=True, width=width)


def run_actions_source(run_id: int) -> GridSource:
    """Every journal entry of run `run_id`, oldest first."""
    return GridSource(
        "run actions", RUN_ACTIONS_FROM, tuple(_action_column(*c) for c in RUN_ACTION_COLUMNS), key_sql="j.id",
        where=RUN_ACTIONS_WHERE, params=(int(run_id),), default_sort=(("id", False),), singular="run action",
        name_key="customer",
    )
