"""Issue 16 (must show 5): the undo plan modal at 80x24 and 100x30, over the Runs screen of the
seeded store with a run's journal (tests/journal_helpers.py, fixed times). The plan is made by
the undo rules from that run's journal, with what ConnectWise "holds" given: most Additions as
the run left them (deleted), one changed there, one on an invoiced agreement (refused, with the
alternative), one a later run changed, one already undone."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cw_tui.rules import undo_plan as rules
from cw_tui.rules.additions import AdditionValues
from tests.app_helpers import make_app
from tests.test_snapshots import SIZES, settle


def synced_run(store) -> int:
    from cw_tui.store import SyncRun

    return SyncRun.get((SyncRun.kind == "sync") & (SyncRun.period == "2026-09")).id


def seeded_plan(store) -> rules.UndoPlan:
    from cw_tui.store import journal
    from cw_tui.store import undo as store_undo

    run_id = synced_run(store)
    detail = journal.run_detail(store, run_id)
    assert detail is not None
    written = store_undo.written(detail.actions)
    creates = [w for w in written if w.action == "create"]
    changed, invoiced, later, undone = creates[1], creates[3], creates[5], creates[7]
    written = [replace(w, agreement_id=5002) if w is invoiced else w for w in written]
    held: dict[int, AdditionValues | None] = {w.addition_id: w.after for w in written if w.addition_id is not None}
    assert changed.after is not None and changed.addition_id is not None
    held[changed.addition_id] = replace(changed.after, quantity=changed.after.quantity + 1)
    return rules.plan_undo(
        run_id, "2026-09", written, undone={undone.id: 9},
        later={later.id: rules.Later(run_id + 1, "2026-10", "updated it")}, held=held,
        invoiced_through={5001: None, 5002: (2026, 9)}, agreements={},
        lines_by_addition={w.addition_id: w.line_ids for w in written if w.addition_id is not None})


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("moved", [0, 1], ids=["first", "second"])
def test_undo_plan_modal(snap_compare, journaled, size, moved: int) -> None:
    """The summary (per currency), the items (refused first) and the highlighted item's whole
    reason; `second`: the invoiced one, with what ConnectWise allows instead."""
    from cw_tui.screens.undo_modal import UndoPlanModal

    plan = seeded_plan(journaled)
    assert plan.refused and plan.of(rules.DELETE) and plan.already_undone == 1

    async def run_before(pilot) -> None:
        await settle(pilot)
        pilot.app.open_history("runs")
        await settle(pilot)
        pilot.app.push_screen(UndoPlanModal(plan.run_id, plan=plan))
        await settle(pilot)
        for _ in range(moved):
            await pilot.press("down")
        await settle(pilot)

    assert snap_compare(make_app(journaled), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [(80, 24)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_undo_plan_modal_nothing_to_undo(snap_compare, journaled, size) -> None:
    from cw_tui.screens.undo_modal import UndoPlanModal

    empty = rules.UndoPlan(synced_run(journaled), "2026-09", [], already_undone=28, fingerprint="0000aaaa1111bbbb")

    async def run_before(pilot) -> None:
        await settle(pilot)
        pilot.app.open_history("runs")
        await settle(pilot)
        pilot.app.push_screen(UndoPlanModal(empty.run_id, plan=empty))
        await settle(pilot)

    assert snap_compare(make_app(journaled), terminal_size=size, run_before=run_before)
