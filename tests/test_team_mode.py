"""Issue 17, team mode: several people and the nightly job on one PostgreSQL database. Two real
apps driven by Pilot (finance.anna and finance.ben) and a `cw-tui sync` process (the nightly
job) on one database of the suite's server, against the real sandbox: a mapping one person
makes shows in the other's grid at the next refresh, a save over a colleague's is refused with
the colleague's name and the row shown fresh, and the live pane of both shows the CLI's sync
(the pane polls the store for entries newer than the last it showed)."""

from __future__ import annotations

import pytest

from cw_tui.screens.logs import LogsScreen
from cw_tui.screens.mapping import MappingScreen
from cw_tui.screens.pickers import PickerModal
from cw_tui.store import Company, Organization, open_store
from cw_tui.widgets.grid import SqlGrid
from tests.app_helpers import make_app, run, wait_for
from tests.conftest import run_process
from tests.sandbox_helpers import sandbox_thread
from tests.sync_helpers import assert_exactly_once, cw_env, set_up_as_finance

P1 = "2026-09"
pytestmark = pytest.mark.postgres_only


def _cell(grid: SqlGrid, key: str, column: str):
    index = [c.key for c in grid.source.columns].index(column)
    return grid.page.rows[grid.page.keys.index(key)][index]


def _live_text(app) -> str:
    live = app.screen.query_one("#live")
    return "\n".join(line.text for line in live.lines)


def test_two_people_and_the_nightly_job_on_one_database(cli, demo_folder, new_db, monkeypatch) -> None:
    with sandbox_thread(seed=7) as sandbox:
        for key, value in cw_env(sandbox).items():
            monkeypatch.setenv(key, value)
        db = new_db("team")
        set_up_as_finance(cli, db, demo_folder, P1)
        with open_store(db):
            # an organization auto-match mapped, and two companies that nobody chose for it
            org = Organization.select().where(Organization.company_id.is_null(False)).order_by(Organization.name).first()
            key, name = org.platform_id, org.name
            anna_pick, ben_pick = Company.select().where(Company.id != org.company_id).order_by(Company.name).limit(2)
        store = open_store(db)

        def person(name: str) -> None:  # each person is a process of their own in life: here, whose key it is
            monkeypatch.setenv("CW_TUI_USER", name)

        async def organizations(app, pilot) -> SqlGrid:
            await pilot.press("2")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            grid = app.screen.query_one("#grid-organizations", SqlGrid)
            await wait_for(pilot, lambda: grid.page is not None and grid.page.total > 0)
            grid.set_search(name)
            await wait_for(pilot, lambda: grid.page is not None and grid.page.keys == [key])
            grid.table.focus()
            await pilot.pause()
            return grid

        async def pick(app, pilot, company) -> None:
            await wait_for(pilot, lambda: isinstance(app.screen, PickerModal))
            await pilot.press(*company.name[:14])
            await pilot.pause(0.3)
            await pilot.press("enter")
            await wait_for(pilot, lambda: not isinstance(app.screen, PickerModal))

        async def scenario() -> None:
            anna, ben = make_app(store), make_app(store)
            async with anna.run_test(size=(120, 36)) as a, ben.run_test(size=(120, 36)) as b:
                grid_a, grid_b = await organizations(anna, a), await organizations(ben, b)
                assert _cell(grid_b, key, "psa_id") == org.company_id

                # 1. Anna maps it; Ben's grid shows it after a refresh (ctrl+r)
                person("finance.anna")
                await a.press("e")
                await pick(anna, a, anna_pick)
                await wait_for(a, lambda: Organization.get_by_id(key).company_id == anna_pick.id)
                assert Organization.get_by_id(key).changed_by == "finance.anna"
                await b.press("ctrl+r")
                await wait_for(b, lambda: grid_b.page is not None and key in grid_b.page.keys
                               and _cell(grid_b, key, "psa_id") == anna_pick.id)

                # 2. both open its editor; Ben saves first; Anna's save is refused with Ben's name
                await a.press("e")
                await wait_for(a, lambda: isinstance(anna.screen, PickerModal))
                person("finance.ben")
                await b.press("e")
                await pick(ben, b, ben_pick)
                await wait_for(b, lambda: Organization.get_by_id(key).company_id == ben_pick.id)
                person("finance.anna")
                await pick(anna, a, anna_pick)
                await wait_for(a, lambda: any("changed by finance.ben" in n.message for n in anna._notifications))
                saved = Organization.get_by_id(key)
                assert (saved.company_id, saved.changed_by) == (ben_pick.id, "finance.ben")  # no lost update
                await wait_for(a, lambda: grid_a.page is not None and key in grid_a.page.keys
                               and _cell(grid_a, key, "psa_id") == ben_pick.id)  # shown as it is now

                # 3. the nightly job syncs in a process of its own: both live panes show it
                for app, pilot in ((anna, a), (ben, b)):
                    await pilot.press("3")
                    await wait_for(pilot, lambda app=app: isinstance(app.screen, LogsScreen))
                result = run_process("--db", db, "sync", "--period", P1, env={**cw_env(sandbox), "CW_TUI_USER": "nightly"})
                assert result.code == 0, result.err
                for app, pilot in ((anna, a), (ben, b)):
                    await wait_for(pilot, lambda app=app: f"Sync of {P1} finished" in _live_text(app), timeout=15)
                    assert f"Sync of {P1} started" in _live_text(app)

        try:
            run(scenario())
        finally:
            store.close()
        assert_exactly_once(sandbox, db)
