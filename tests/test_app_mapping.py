"""The Mapping page's operations driven from the keyboard against the real sandbox, ending
with the state in the store and in ConnectWise; and the app's own 00:00 UTC daily sync."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from textual.widgets import TabbedContent

from cw_tui.screens.mapping import MappingScreen
from cw_tui.screens.mapping_modals import AutomapModal, LoadInvoicesModal, LoadProductsModal, SyncPlanModal
from cw_tui.services import credentials as credential_store
from cw_tui.services import settings
from cw_tui.services.store import Company, InvoiceLine, Offer, Organization, open_store
from cw_tui.widgets.grid import SqlGrid
from tests.app_helpers import make_app, run, wait_for
from tests.sandbox_helpers import sandbox_thread


def configured_store(path: Path, folder: Path, sandbox):
    store = open_store(path)
    credential_store.save(sandbox.credentials)
    config = settings.load_configuration(store)
    config.platform_dir = str(folder)
    config.agreement_type = settings.AgreementTypeChoice(id=2, name="Cloud Services")
    settings.save_configuration(store, config)
    return store


def test_the_monthly_workflow_from_the_keyboard(tmp_path: Path, demo_folder: Path) -> None:
    now = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)  # previous month = 2026-10, the demo's last month
    with sandbox_thread() as sandbox:
        store = configured_store(tmp_path / "s.sqlite3", demo_folder, sandbox)

        async def scenario() -> None:
            app = make_app(store, clock=lambda: now)
            async with app.run_test(size=(100, 30), notifications=True) as pilot:
                await pilot.press("2")
                await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
                screen = app.screen
                await pilot.press("o")  # Sync Organizations
                await wait_for(pilot, lambda: Company.select().count() == 400, timeout=20)
                await wait_for(pilot, lambda: Organization.select().count() > 20)
                await pilot.press("p")  # Load Products
                await wait_for(pilot, lambda: isinstance(app.screen, LoadProductsModal))
                await pilot.press("enter")
                await wait_for(pilot, lambda: Offer.select().count() > 20)
                await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
                await pilot.press("a")  # auto-match: nothing changes until confirmed
                await wait_for(pilot, lambda: isinstance(app.screen, AutomapModal))
                assert Organization.select().where(Organization.company_id.is_null(False)).count() == 0
                await pilot.press("enter")  # "Map and include in sync" has the focus
                await wait_for(pilot, lambda: Organization.select().where(Organization.company_id.is_null(False)).count() > 20)
                assert Offer.select().where(Offer.product_id.is_null(False)).count() > 10
                included = Organization.select().where(Organization.excluded == False).count()  # noqa: E712
                assert included > 20

                # exclude the organization under the cursor again, with `x`
                grid = screen.query_one("#grid-organizations", SqlGrid)
                grid.table.focus()
                await pilot.pause()
                key = grid.current_key()
                before = Organization.get_by_id(key).excluded
                await pilot.press("x")
                await wait_for(pilot, lambda: Organization.get_by_id(key).excluded != before)

                await pilot.press("i")  # Load Invoices: Previous Month is checked
                await wait_for(pilot, lambda: isinstance(app.screen, LoadInvoicesModal))
                await pilot.press("enter")
                await wait_for(pilot, lambda: InvoiceLine.select().where(InvoiceLine.period == "2026-10").count() > 100)
                await wait_for(pilot, lambda: screen.query_one(TabbedContent).active == "invoices")

                await pilot.press("P")  # Sync Invoices to PSA: the plan first
                await wait_for(pilot, lambda: isinstance(app.screen, SyncPlanModal), timeout=20)
                assert InvoiceLine.select().where(InvoiceLine.sync_status == "synced").count() == 0
                plan = app.screen.plan
                await pilot.press("enter")  # Post to ConnectWise
                await wait_for(pilot, lambda: InvoiceLine.select().where(InvoiceLine.sync_status == "synced").count()
                               == sum(len(c.line_ids) for c in plan.creates), timeout=60)
                invoices = screen.query_one("#grid-invoices", SqlGrid)
                invoices.set_filter("sync", frozenset({"synced"}))
                await wait_for(pilot, lambda: invoices.page is not None and invoices.page.total > 0)

        run(scenario())
        markers = [a.get("serialNumber") for a in sandbox.sandbox.state.additions.values() if str(a.get("serialNumber", "")).startswith("cwt:")]
        assert len(markers) == len(set(markers)) > 0
        store.close()


def test_the_open_app_syncs_at_midnight_utc(tmp_path: Path, demo_folder: Path, cli) -> None:
    with sandbox_thread() as sandbox:
        db = tmp_path / "s.sqlite3"
        store = configured_store(db, demo_folder, sandbox)
        for args in (("sync-organizations",), ("load-invoices", "--period", "2026-10"), ("automap", "--include"),
                     ("configure", "--daily-sync", "on")):
            assert cli("--db", db, *args).code == 0
        clock = [datetime(2026, 11, 18, 23, 59, tzinfo=UTC)]

        async def scenario() -> None:
            app = make_app(store, clock=lambda: clock[0])
            async with app.run_test(size=(100, 30)) as pilot:
                await pilot.pause()
                app.check_daily_sync()
                await pilot.pause()
                assert InvoiceLine.select().where(InvoiceLine.sync_status == "synced").count() == 0  # not yet
                clock[0] = datetime(2026, 11, 19, 0, 0, 20, tzinfo=UTC)
                app.check_daily_sync()
                await wait_for(pilot, lambda: InvoiceLine.select().where(InvoiceLine.sync_status == "synced").count() > 0,
                               timeout=30)
                await wait_for(pilot, lambda: not [w for w in app.workers if w.group == "daily-sync" and w.is_running])
                app.check_daily_sync()  # once a day only
                assert len([w for w in app.workers if w.group == "daily-sync"]) <= 1

        run(scenario())
        store.close()
