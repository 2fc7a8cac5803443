"""The shared SQL grid's source over one run's actions (the journal, SPEC §15 run history):
search, sort, filter by action and outcome, CSV export, as every grid. The SQL is the
store's (store/journal.py RUN_ACTION_COLUMNS); this module only gives its columns the
grid's display (rules/display.py), as store/grid_sources.py does for the app's other grids."""

from __future__ import annotations

from cw_tui.rules.display import iso_utc, local_minute, money_text
from cw_tui.store.grid import Column, GridSource
from cw_tui.store.journal import RUN_ACTION_COLUMNS, RUN_ACTIONS_FROM, RUN_ACTIONS_WHERE

_WIDTHS = {"id": 6, "action": 13, "outcome": 8, "customer": 28, "currency": 4, "amount": 12, "marker": 26,
           "agreement": 9, "addition": 9, "lines": 5, "error": 30, "written": 16, "who": 10}


def _column(key: str, title: str, sql: str, kind: str) -> Column:
    width = _WIDTHS.get(key)
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
        "run actions", RUN_ACTIONS_FROM, tuple(_column(*c) for c in RUN_ACTION_COLUMNS), key_sql="j.id",
        where=RUN_ACTIONS_WHERE, params=(int(run_id),), default_sort=(("id", False),), singular="run action",
        name_key="customer",
    )
