"""Issue 16 in the app: `u` on the Runs screen shows the undo plan, asks, and runs it with
progress; run history shows the undo run and the sync it undid. Pilot tests on the real app,
the real sandbox on a loopback socket and real SQLite; what ConnectWise holds is read through
its API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.widgets import Button, DataTable, Static

from cw_tui.store import InvoiceLine, open_store
from tests.app_helpers import make_app, wait_for
from tests.sandbox_helpers import sandbox_thread
from tests.sync_helpers import cw_env, cw_markers, set_up_as_finance

P1 = "2026-09"


@pytest.fixture
def synced(cli, demo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A sandbox, and a store set up as a finance user does, with P1 synced through the CLI."""
    with sandbox_thread(seed=7) as sandbox:
        for key, value in cw_env(sandbox).items():
            monkeypatch.setenv(key, value)
        db = tmp_path / "finance.sqlite3"
        set_up_as_finance(cli, db, demo_folder, P1, sync=True)
        yield sandbox, db


def _notices(seen: list[str]):
    from textual.notifications import Notify

    def hook(message) -> None:
        if isinstance(message, Notify):
            seen.append(message.notification.message)
    return hook


def _text(widget: Static) -> str:
    return str(widget.render())


def test_u_on_the_runs_screen_shows_the_plan_and_undoes_the_run_after_a_confirm(synced, cli) -> None:
    sandbox, db = synced
    before = cw_markers(sandbox)
    assert sum(before.values()) > 10
    with open_store(db):
        synced_lines = InvoiceLine.select().where((InvoiceLine.period == P1) & (InvoiceLine.sync_status == "synced")).count()
    assert synced_lines > 10
    seen: list[str] = []
    ids: dict[str, int] = {}
    asyncio.run(_undo_in_the_app(db, seen, ids))
    sync_id, undo_id = ids["sync"], ids["undo"]
    # ConnectWise no longer holds any Addition of the run, and its lines are Not Synced again
    assert sum(cw_markers(sandbox).values()) == 0
    with open_store(db):
        assert not InvoiceLine.select().where((InvoiceLine.period == P1) & (InvoiceLine.sync_status == "synced")).count()
        assert InvoiceLine.select().where((InvoiceLine.period == P1) & (InvoiceLine.sync_status == "not_synced")
                                          ).count() >= synced_lines
    assert any(f"Undo of run #{sync_id}:" in s and "lines back to Not Synced" in s for s in seen), seen
    assert any(f"Run #{undo_id} is an undo of run #{sync_id}" in s for s in seen), seen
    # run history, as the CLI tells it
    runs = cli("--db", db, "runs", "--json")
    assert runs.code == 0
    undo, sync = runs.json()
    assert undo["id"] == undo_id and undo["kind"] == "undo" and undo["undoes_run_id"] == sync_id
    assert undo["state"] == "finished" and undo["trigger"] == "app" and undo["counts"]["deleted"] == sum(before.values())
    assert "undone_by" not in undo
    assert sync["id"] == sync_id and sync["kind"] == "sync" and sync["undone_by"] == [undo_id]
    assert sync["undone"] == "undone" and sync["undoes_run_id"] is None
    text = cli("--db", db, "runs")
    assert f"undo of #{sync_id}" in text.out and f"undone by #{undo_id}" in text.out
    assert "back to Not Synced" in text.out
    # syncing the month again gives one Addition per marker
    assert cli("--db", db, "sync", "--period", P1).code == 0
    again = cw_markers(sandbox)
    assert set(again) == set(before) and all(n == 1 for n in again.values())


async def _undo_in_the_app(db: Path, seen: list[str], ids: dict[str, int]) -> None:
    from cw_tui.screens.runs import RunsScreen
    from cw_tui.screens.undo_modal import UndoPlanModal
    from cw_tui.widgets.grid import SqlGrid

    with open_store(db) as store:
        app = make_app(store)
        async with app.run_test(size=(80, 24), notifications=True, message_hook=_notices(seen)) as pilot:
            await pilot.pause()
            app.open_history("runs")
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
            screen = app.screen
            grid = screen.query_one("#runs-grid", SqlGrid)
            await wait_for(pilot, lambda: grid.page is not None and grid.page.total == 1 and grid.table.has_focus)
            sync_id = ids["sync"] = int(grid.current_key())
            await pilot.press("u")
            await wait_for(pilot, lambda: isinstance(app.screen, UndoPlanModal))
            modal = app.screen
            await wait_for(pilot, lambda: modal.plan is not None, timeout=30)
            await pilot.pause()
            plan = modal.plan
            assert plan.run_id == sync_id and not plan.empty and len(plan.sends) > 10
            summary = _text(modal.query_one("#undo-summary", Static))
            assert f"{len(plan.of('delete'))} deleted" in summary and "back to Not Synced" in summary
            table = modal.query_one("#undo-items", DataTable)
            assert table.row_count == len(plan.items) and table.has_focus
            # nothing here undoes by accident: u again, enter on the list, escape-less keys
            await pilot.press("u", "enter", "down", "u")
            await pilot.pause()
            assert modal.result is None and not modal.running and app.screen is modal
            assert "the run's create" in _text(modal.query_one("#undo-detail", Static))
            # the explicit confirm: Tab to Cancel, Tab to "Undo run 1", Enter
            await pilot.press("tab")
            assert app.focused is modal.query_one("#cancel", Button)
            await pilot.press("tab")
            undo = modal.query_one("#undo", Button)
            assert app.focused is undo and f"Undo run {sync_id}" in str(undo.label)
            await pilot.press("enter")
            await wait_for(pilot, lambda: modal.result is not None, timeout=60)
            result = modal.result
            undo_id = ids["undo"] = result.run_id
            assert result.errors == 0 and result.refused == 0 and result.deleted == len(plan.of("delete"))
            assert f"Undo run #{undo_id} finished" in _text(modal.query_one("#undo-summary", Static))
            close = modal.query_one("#close", Button)
            assert close.display and app.focused is close
            assert not modal.query_one("#undo", Button).display
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen is screen)
            # the grid shows the undo run on top and the sync it undid
            await wait_for(pilot, lambda: grid.page is not None and grid.page.total == 2)
            await app.workers.wait_for_complete()
            await pilot.pause()
            rows = [grid.page.rows[0], grid.page.rows[1]]
            kinds = {row[0]: row[1] for row in rows}
            assert kinds == {undo_id: f"undo of #{sync_id}", sync_id: "sync"}
            states = {row[0]: row[6] for row in rows}
            assert states[sync_id] == f"undone by #{undo_id}" and states[undo_id] == "finished"
            # u on the undo run: why not, and no modal
            grid.table.move_cursor(row=0)
            await pilot.pause()
            assert grid.current_key() == str(undo_id)
            await pilot.press("u")
            await pilot.pause()
            assert app.screen is screen


def test_the_help_lists_the_runs_keys_and_the_key_bar_shows_u_undo(journaled) -> None:
    asyncio.run(_help(journaled))


async def _help(store) -> None:
    from cw_tui.screens.help import HelpScreen
    from cw_tui.screens.runs import RunsScreen
    from cw_tui.widgets.key_bar import KeyBar

    app = make_app(store)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        app.open_history("runs")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.pause()
        bar = app.screen.query_one(KeyBar)
        assert "u Undo" in " ".join(str(bar.render()).split()) or any(
            key == "u" and what == "Undo" for key, _shown, what, _on in bar._hints)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        rows = app.screen.rows
        assert any(where == "Runs" and binding == "runs.undo" and keys == "u" for where, keys, _what, binding in rows)
        assert any(where == "Run actions" and binding == "run.undo" for where, _keys, _what, binding in rows)


def test_u_on_a_running_run_says_why_not(journaled) -> None:
    from cw_tui.store import SyncRun, now_utc
    from cw_tui.sync.claims import owner_name

    run = SyncRun.create(kind="sync", period="2026-10", started_at=now_utc(), state="running", who="someone",
                         trigger="cli")
    run.owner = owner_name(run.id)  # this process: alive
    run.save()
    asyncio.run(_running(journaled, run.id))


async def _running(store, run_id: int) -> None:
    from cw_tui.screens.runs import RunsScreen
    from cw_tui.widgets.grid import SqlGrid

    seen: list[str] = []
    app = make_app(store)
    async with app.run_test(size=(100, 30), notifications=True, message_hook=_notices(seen)) as pilot:
        await pilot.pause()
        app.open_history("runs")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        grid = app.screen.query_one("#runs-grid", SqlGrid)
        await wait_for(pilot, lambda: grid.page is not None and grid.page.total == 3 and grid.table.has_focus)
        # every worker done; a grid fetch cancelled by a newer one counts as done (under load
        # wait_for_complete raised WorkerFailed for it)
        await wait_for(pilot, lambda: not any(w.is_running for w in app.workers))
        await pilot.pause()
        row = grid.current_values()
        assert row is not None and row["id"] == run_id and row["state"] == "running"
        await pilot.press("u")
        await pilot.pause()
        assert any(f"Run #{run_id} is still running" in s for s in seen), seen
        assert app.screen.__class__ is RunsScreen
