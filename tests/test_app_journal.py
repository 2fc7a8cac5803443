"""Issue 15 in the app: the Runs screen, a run's actions, the line's journal, Reconciliation.
Pilot tests on the real app, the real sandbox on a loopback socket and real SQLite (the
Reconciliation screen on PostgreSQL too)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cw_tui.rules.additions import marker
from cw_tui.rules.vocabulary import ChargeType
from cw_tui.services.connectwise import ConnectWiseClient
from cw_tui.store import InvoiceLine, SubscriptionAddition, open_store
from tests.app_helpers import make_app, wait_for
from tests.sandbox_helpers import sandbox_thread
from tests.sync_helpers import cw_env, set_up_as_finance

P1 = "2026-09"


@pytest.fixture
def synced(cli, demo_folder: Path, new_db, monkeypatch: pytest.MonkeyPatch):
    """A sandbox, and a store set up as a finance user does, with P1 synced through the CLI."""
    with sandbox_thread(seed=7) as sandbox:
        for key, value in cw_env(sandbox).items():
            monkeypatch.setenv(key, value)
        db = new_db("finance")
        set_up_as_finance(cli, db, demo_folder, P1, sync=True)
        yield sandbox, db


def _grid_texts(grid) -> list[str]:
    return [" | ".join("" if v is None else str(v) for v in row) for row in (grid.page.rows if grid.page else [])]


@pytest.mark.both_backends
def test_reconciliation_names_a_changed_and_a_deleted_addition(synced) -> None:
    asyncio.run(_reconciliation(synced))


async def _reconciliation(synced) -> None:
    from cw_tui.screens.dashboard import DashboardScreen
    from cw_tui.screens.reconciliation import ReconciliationItemsScreen, ReconciliationScreen
    from cw_tui.widgets.grid import SqlGrid

    sandbox, db = synced
    with open_store(db):
        subs = list(SubscriptionAddition.select().where(SubscriptionAddition.state == "active")
                    .order_by(SubscriptionAddition.subscription_id).limit(2))
        one_time = next(line for line in InvoiceLine.select().where(
            (InvoiceLine.sync_status == "synced") & InvoiceLine.addition_id.is_null(False) & (InvoiceLine.period == P1))
            .order_by(InvoiceLine.line_id) if not ChargeType(line.charge_type).recurring)
    changed = subs[0]
    assert one_time is not None
    deleted_marker = marker("L", one_time.line_id)

    async def tamper() -> None:
        async with ConnectWiseClient(sandbox.credentials) as client:
            await client.patch_addition(changed.agreement_id, changed.addition_id, {"quantity": 999})
            await client.delete_addition(one_time.posted_agreement_id, one_time.addition_id)
    await tamper()

    with open_store(db) as store:
        app = make_app(store)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))
            tile = app.screen.query_one("#tile-amounts")
            await wait_for(pilot, lambda: "not reconciled yet" in str(tile.render()))
            app.open_history("reconciliation")
            await wait_for(pilot, lambda: isinstance(app.screen, ReconciliationScreen))
            screen = app.screen
            await pilot.pause()
            await pilot.press("r")
            grid = screen.query_one("#reconcile-grid", SqlGrid)
            await wait_for(pilot, lambda: grid.page is not None and grid.page.total > 0, timeout=30)
            await app.workers.wait_for_complete()
            await pilot.pause()
            rows = _grid_texts(grid)
            # mismatched rows come first, with their reasons
            assert "changed in ConnectWise since posted" in rows[0] + rows[1]
            assert any("missing in ConnectWise" in r for r in rows[:2])
            # drill down on the row of the deleted Addition
            index = next(i for i, r in enumerate(rows) if "missing in ConnectWise" in r)
            grid.table.move_cursor(row=index)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ReconciliationItemsScreen))
            items = app.screen.query_one("#reconcile-items-grid", SqlGrid)
            await wait_for(pilot, lambda: items.page is not None and items.page.total > 0)
            texts = _grid_texts(items)
            assert any(deleted_marker in t and t.startswith("missing") for t in texts), texts[:3]
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, ReconciliationScreen))
            changed_row = next(i for i, r in enumerate(_grid_texts(grid)) if "changed in ConnectWise" in r)
            grid.table.move_cursor(row=changed_row)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ReconciliationItemsScreen))
            items = app.screen.query_one("#reconcile-items-grid", SqlGrid)
            await wait_for(pilot, lambda: items.page is not None and items.page.total > 0)
            texts = _grid_texts(items)
            hit = next(t for t in texts if marker("S", changed.subscription_id) in t)
            assert hit.startswith("changed") and "changed in ConnectWise since posted (quantity)" in hit, hit
            # the Dashboard tells the last reconciliation and opens it
            await pilot.press("escape", "escape")
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))
            await app.workers.wait_for_complete()
            await pilot.pause()
            tile = app.screen.query_one("#tile-amounts")
            assert f"{P1}: 2 mismatches in ConnectWise" in str(tile.render())
            tile.focus()
            await pilot.press("enter")  # the tile opens the reconciliation of that month
            await wait_for(pilot, lambda: isinstance(app.screen, ReconciliationScreen))
            assert app.screen.period == P1


def test_runs_screen_lists_the_run_and_its_actions_lead_to_the_line(synced) -> None:
    asyncio.run(_runs(synced))


async def _runs(synced) -> None:
    from cw_tui.screens.dashboard import DashboardScreen
    from cw_tui.screens.line_detail import LineDetailModal
    from cw_tui.screens.runs import RunActionsScreen, RunsScreen
    from cw_tui.widgets.grid import SqlGrid

    _sandbox, db = synced
    with open_store(db) as store:
        app = make_app(store)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))
            await pilot.pause()
            app.screen.query_one("#tile-last-sync").focus()
            await pilot.press("enter")  # the Last Sync tile opens the runs
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
            grid = app.screen.query_one("#runs-grid", SqlGrid)
            await wait_for(pilot, lambda: grid.page is not None and grid.page.total == 1)
            row = grid.page.rows[0]
            assert P1 in row and "finished" in row and "CLI" in row
            await wait_for(pilot, lambda: grid.table.has_focus)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, RunActionsScreen))
            actions = app.screen.query_one("#run-actions-grid", SqlGrid)
            await wait_for(pilot, lambda: actions.page is not None and actions.page.total > 10)
            actions.set_filter("action", frozenset({"create"}))
            await wait_for(pilot, lambda: actions.page is not None and all(r[1] == "create" for r in actions.page.rows))
            await wait_for(pilot, lambda: actions.table.has_focus)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, LineDetailModal))
            journal = dict(app.screen.detail.sections)["Journal"]
            assert any("run #" in f.value and "created" in f.value and "done" in f.value for f in journal)
            await pilot.press("escape", "escape", "escape")
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))
