"""Issue 15 (must show 4): the Runs list, a run's actions and the reconciliation screen (and a
row's drill-down) at 80x24 and 100x30, on the seeded store with a run's journal and a
reconciliation at fixed times (tests/journal_helpers.py)."""

from __future__ import annotations

import pytest

from tests.app_helpers import make_app
from tests.test_snapshots import SIZES, keys, settle


def _opened(which: str, *presses: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        pilot.app.open_history(which)
        await settle(pilot)
        await keys(*presses)(pilot)
    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_runs_list(snap_compare, journaled, size) -> None:
    assert snap_compare(make_app(journaled), terminal_size=size, run_before=_opened("runs"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_run_actions(snap_compare, journaled, size) -> None:
    # the newest run is the interrupted one; the one below posted the journal
    assert snap_compare(make_app(journaled), terminal_size=size, run_before=_opened("runs", "down", "enter"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_reconciliation(snap_compare, journaled, size) -> None:
    assert snap_compare(make_app(journaled), terminal_size=size, run_before=_opened("reconciliation"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_reconciliation_drill_down(snap_compare, journaled, size) -> None:
    assert snap_compare(make_app(journaled), terminal_size=size, run_before=_opened("reconciliation", "enter"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("outcome", ["done", "error"])
def test_line_detail_journal_rows(snap_compare, journaled, size, outcome: str) -> None:
    """The line detail's Journal section (scrolled to the end): the write that created the
    line's Addition, and the one ConnectWise refused (run, action, outcome, Addition, who)."""
    from cw_tui.screens.line_detail import LineDetailModal
    from cw_tui.services.line_detail import line_detail
    from cw_tui.store import journal

    line_id = next(line_id for line_id in sorted(_journaled_line_ids(journaled))
                   if journal.journal_for_line(journaled, line_id)[-1].outcome == outcome)

    async def run_before(pilot) -> None:
        await settle(pilot)
        pilot.app.push_screen(LineDetailModal(line_detail(journaled, line_id)))
        await settle(pilot)
        await pilot.press("end")
        await settle(pilot)

    assert snap_compare(make_app(journaled), terminal_size=size, run_before=run_before)


def _journaled_line_ids(store) -> list[str]:
    from cw_tui.store import InvoiceLine

    return [line.line_id for line in InvoiceLine.select().where(InvoiceLine.period == "2026-09",
                                                              InvoiceLine.sync_status.in_(["synced", "error"]))]
