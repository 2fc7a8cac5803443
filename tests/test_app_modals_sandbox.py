"""Issue 12 over the real sandbox: auto-match names the matched companies ConnectWise does not
hold as Active, a line whose agreement is gone from ConnectWise can be given a current one,
and the Sync progress bar is on screen at 80x24 while a sync posts."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path

from textual.widgets import Button, OptionList, ProgressBar

from cw_tui.screens.mapping import MappingScreen
from cw_tui.screens.mapping_modals import (
    AutomapModal,
    LineEditModal,
    ScopeModal,
    SyncPlanModal,
)
from cw_tui.screens.pickers import PickerModal
from cw_tui.store import Agreement, Contract, InvoiceLine, Organization
from cw_tui.widgets.grid import SqlGrid
from tests.app_helpers import make_app, run, wait_for
from tests.sandbox_helpers import sandbox_thread
from tests.test_app_mapping import configured_store, modal_ready, put_cursor_on
from tests.test_app_modals_layout import shown_whole

SMALL = (80, 24)
NOW = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)  # 2026-10 is closed


def test_auto_match_says_which_matched_companies_are_not_active(tmp_path: Path, demo_folder: Path, cli) -> None:
    with sandbox_thread() as sandbox:
        db = tmp_path / "s.sqlite3"
        store = configured_store(db, demo_folder, sandbox)
        assert cli("--db", db, "sync-organizations").code == 0
        state = sandbox.sandbox.state
        org_names = {o.name for o in Organization.select()}
        matching = [c for c in state.companies.values() if c["name"] in org_names]
        statuses = {s["name"]: s["id"] for s in state.statuses.values()}
        # two matched companies are made Delinquent and Not-Approved in ConnectWise, then the cache refreshed
        for company, status in zip(sorted(matching, key=lambda c: c["name"])[:2], ("Delinquent", "Not-Approved"), strict=False):
            company["status"] = {"id": statuses[status], "name": status}
        assert cli("--db", db, "sync-organizations").code == 0
        expected = sorted((c["name"], c["status"]["name"]) for c in matching if c["status"]["name"] != "Active")
        assert {"Delinquent", "Not-Approved"} <= {status for _, status in expected}

        async def scenario() -> None:
            app = make_app(store, clock=lambda: NOW)
            async with app.run_test(size=SMALL) as pilot:
                await pilot.press("2")
                await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
                await pilot.press("a")
                await modal_ready(pilot, AutomapModal, "map_include")
                modal = app.screen
                shown = sorted((company, status) for _, company, status in modal.matches.not_active)
                assert shown == expected
                text = str(modal.query_one("#not-active").render())
                assert f"{len(expected)} matched companies are not Active in ConnectWise" in text
                for company, status in expected[: modal.SHOWN_NOT_ACTIVE]:
                    assert f"{company} ({status})" in text
                for status in {status for _, status in expected}:
                    assert f"{sum(1 for _, s in expected if s == status)} {status}" in text
                assert shown_whole(app, modal.query_one("#map_include", Button))  # the default, still in view
                assert shown_whole(app, modal.query_one("#not-active"))  # at the top of the body, not scrolled away

        run(scenario())
        store.close()


def test_a_line_whose_agreement_is_gone_gets_a_current_one(tmp_path: Path, demo_folder: Path, cli) -> None:
    with sandbox_thread() as sandbox:
        db = tmp_path / "s.sqlite3"
        store = configured_store(db, demo_folder, sandbox)
        for args in (("sync-organizations",), ("load-invoices", "--period", "2026-10"), ("automap", "--include")):
            assert cli("--db", db, *args).code == 0
        # a line on the grid's first page; its company gets two more active agreements in ConnectWise if it
        # has fewer; the line's contract points at one of them, which ConnectWise then deletes
        first_page = (InvoiceLine.select().where(InvoiceLine.period == "2026-10")
                      .order_by(InvoiceLine.invoice_date, InvoiceLine.line_id).limit(20))
        line = next(line for line in first_page if Organization.get_by_id(line.organization_id).company_id is not None)
        company_id = Organization.get_by_id(line.organization_id).company_id
        state = sandbox.sandbox.state
        template = next(a for a in state.agreements.values() if a["agreementStatus"] == "Active")
        for n in range(2):
            new_id = max(state.agreements) + 1
            company = state.companies[company_id]
            state.agreements[new_id] = {**copy.deepcopy(template), "id": new_id, "name": f"{company['name'][:50]} - extra {n}",
                                        "company": {"id": company_id, "identifier": company["identifier"],
                                                    "name": company["name"]}}
        assert cli("--db", db, "sync-organizations").code == 0
        active = sorted(a.id for a in Agreement.select().where((Agreement.company_id == company_id)
                                                               & (Agreement.status == "Active")
                                                               & ~Agreement.cancelled))
        gone, *current = active
        Contract.update(agreement_id=gone).where(Contract.platform_id == line.contract_id).execute()
        del state.agreements[gone]
        assert cli("--db", db, "sync-organizations").code == 0
        assert Agreement.get_or_none(Agreement.id == gone) is None

        async def scenario() -> None:
            app = make_app(store, clock=lambda: NOW)
            async with app.run_test(size=(100, 30)) as pilot:
                await pilot.press("2")
                await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
                screen = app.screen
                screen.show_tab("invoices")
                grid = screen.query_one("#grid-invoices", SqlGrid)
                await put_cursor_on(pilot, grid, line.line_id)
                await pilot.press("e")
                await wait_for(pilot, lambda: isinstance(app.screen, LineEditModal))
                form = app.screen
                said = str(form.query_one("#agreement-gone").render())
                assert f"contract's agreement #{gone} no longer exists in ConnectWise" in said
                await pilot.click("#pick-agreement")
                await wait_for(pilot, lambda: isinstance(app.screen, PickerModal))
                picker = app.screen
                await pilot.pause(0.2)
                options = picker.query_one("#options", OptionList)
                offered = [int(options.get_option_at_index(i).id.removeprefix("pick-")) for i in range(options.option_count)]
                assert sorted(offered) == current  # the company's current agreements, not an empty list
                assert f"agreement #{gone} no longer exists" in str(picker.query_one("#note").render())
                await pilot.press("enter")
                await wait_for(pilot, lambda: app.screen is form)
                await pilot.press("ctrl+s")
                await wait_for(pilot, lambda: isinstance(app.screen, ScopeModal))
                await pilot.pause(0.1)
                await pilot.click("#contract")  # the whole contract: it points at a current agreement again
                await wait_for(pilot, lambda: Contract.get_by_id(line.contract_id).agreement_id == current[0])

        run(scenario())
        store.close()


def test_the_sync_progress_bar_is_on_screen_at_80x24_while_a_sync_runs(tmp_path: Path, demo_folder: Path, cli) -> None:
    with sandbox_thread(latency_ms=60) as sandbox:
        db = tmp_path / "s.sqlite3"
        store = configured_store(db, demo_folder, sandbox)
        for args in (("sync-organizations",), ("load-invoices", "--period", "2026-10"), ("automap", "--include")):
            assert cli("--db", db, *args).code == 0

        async def scenario() -> None:
            app = make_app(store, clock=lambda: NOW)
            async with app.run_test(size=SMALL) as pilot:
                await pilot.press("2")
                await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
                screen = app.screen
                bar = screen.query_one("#sync-progress", ProgressBar)
                assert not bar.display  # no bar while nothing posts
                await pilot.press("P")
                await modal_ready(pilot, SyncPlanModal, "post", timeout=30)
                await pilot.press("enter")
                # seen whole while it runs (checked as it runs: a pause after could see the sync end)
                await wait_for(pilot, lambda: app.screen is screen and bar.has_class("-running")
                               and (bar.progress or 0) > 0 and bar.display and shown_whole(app, bar)
                               and bar.region.width >= 40, timeout=30)
                await wait_for(pilot, lambda: not bar.has_class("-running"), timeout=120)
                assert InvoiceLine.select().where(InvoiceLine.sync_status == "synced").count() > 0

        run(scenario())
        store.close()


def test_a_contract_whose_only_agreement_is_gone_can_forget_it(tmp_path: Path, demo_folder: Path, cli) -> None:
    """The company has no other agreement: the picker says so and offers to forget the gone
    one, so that the next sync chooses or creates one (SPEC §8 rules 3-4)."""
    with sandbox_thread() as sandbox:
        db = tmp_path / "s.sqlite3"
        store = configured_store(db, demo_folder, sandbox)
        for args in (("sync-organizations",), ("load-invoices", "--period", "2026-10"), ("automap", "--include")):
            assert cli("--db", db, *args).code == 0
        first_page = (InvoiceLine.select().where(InvoiceLine.period == "2026-10")
                      .order_by(InvoiceLine.invoice_date, InvoiceLine.line_id).limit(20))
        line = next(line for line in first_page if Organization.get_by_id(line.organization_id).company_id is not None)
        company_id = Organization.get_by_id(line.organization_id).company_id
        state = sandbox.sandbox.state
        for agreement_id in [a["id"] for a in state.agreements.values() if a["company"]["id"] == company_id]:
            del state.agreements[agreement_id]
        template = next(a for a in state.agreements.values() if a["agreementStatus"] == "Active")
        only = max(state.agreements) + 1
        company = state.companies[company_id]
        state.agreements[only] = {**copy.deepcopy(template), "id": only, "name": f"{company['name'][:50]} - only",
                                  "company": {"id": company_id, "identifier": company["identifier"], "name": company["name"]}}
        assert cli("--db", db, "sync-organizations").code == 0
        Contract.update(agreement_id=only).where(Contract.platform_id == line.contract_id).execute()
        del state.agreements[only]
        assert cli("--db", db, "sync-organizations").code == 0

        async def scenario() -> None:
            app = make_app(store, clock=lambda: NOW)
            async with app.run_test(size=SMALL) as pilot:
                await pilot.press("2")
                await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
                screen = app.screen
                screen.show_tab("invoices")
                await put_cursor_on(pilot, screen.query_one("#grid-invoices", SqlGrid), line.line_id)
                await pilot.press("e")
                await wait_for(pilot, lambda: isinstance(app.screen, LineEditModal))
                form = app.screen
                await pilot.click("#pick-agreement")
                await wait_for(pilot, lambda: isinstance(app.screen, PickerModal))
                await pilot.pause(0.2)
                picker = app.screen
                assert picker.query_one("#options", OptionList).option_count == 0  # the company has none left
                assert f"agreement #{only} no longer exists" in str(picker.query_one("#note").render())
                forget = picker.query_one("#clear", Button)
                assert "Forget it" in str(forget.label) and shown_whole(app, forget)
                await pilot.click("#clear")
                await wait_for(pilot, lambda: app.screen is form)
                await pilot.press("ctrl+s")  # no scope question: only the contract's gone agreement is forgotten
                await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
                await wait_for(pilot, lambda: Contract.get_by_id(line.contract_id).agreement_id is None)

        run(scenario())
        store.close()
