"""The Mapping page's operations driven from the keyboard against the real sandbox, ending
with the state in the store and in ConnectWise; and the app's own 00:00 UTC daily sync."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from textual.widgets import TabbedContent

from cw_tui.screens.mapping import MappingScreen
from cw_tui.screens.mapping_modals import AutomapModal, LoadInvoicesModal, LoadProductsModal, SyncPlanModal
from cw_tui.services import credentials as credential_store
from cw_tui.services import settings
from cw_tui.store import Company, InvoiceLine, Offer, Organization, open_store
from cw_tui.widgets.grid import SqlGrid
from tests.app_helpers import make_app, run, wait_for
from tests.sandbox_helpers import sandbox_thread


async def put_cursor_on(pilot, grid, key: str) -> None:
    """Move the row cursor to `key` once the grid has settled (late page loads move rows)."""
    for _ in range(50):
        await wait_for(pilot, lambda: grid.page is not None and key in grid.page.keys, timeout=30)
        grid.table.focus()
        grid.table.move_cursor(row=grid.page.keys.index(key))
        await pilot.pause(0.2)
        if grid.current_key() == key:
            return
    raise AssertionError(f"the cursor never stayed on {key}")


async def modal_ready(pilot, modal_type, button_id: str, timeout: float = 60) -> None:
    """The modal is up and its default button has the focus (keys sent earlier would be lost)."""
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, modal_type) and app.focused is not None
                   and app.focused.id == button_id, timeout=timeout)


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
                await modal_ready(pilot, LoadProductsModal, "load")
                await pilot.press("enter")
                await wait_for(pilot, lambda: Offer.select().count() > 20)
                await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
                await pilot.press("a")  # auto-match: nothing changes until confirmed
                await modal_ready(pilot, AutomapModal, "map_include")
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
                await modal_ready(pilot, LoadInvoicesModal, "load")
                await pilot.press("enter")
                await wait_for(pilot, lambda: InvoiceLine.select().where(InvoiceLine.period == "2026-10").count() > 100)
                await wait_for(pilot, lambda: screen.query_one(TabbedContent).active == "invoices")

                await pilot.press("P")  # Sync Invoices to PSA: the plan first
                await modal_ready(pilot, SyncPlanModal, "post")
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


def test_edit_unmap_mark_and_bulk_update_from_the_keyboard(tmp_path: Path, demo_folder: Path) -> None:
    from cw_tui.screens.mapping_modals import BulkUpdateModal, LineEditModal, ScopeModal
    from cw_tui.screens.pickers import PickerModal
    from tests.app_helpers import seeded_store

    store = seeded_store(tmp_path / "s.sqlite3", demo_folder)

    async def scenario() -> None:
        app = make_app(store)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("2")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            screen = app.screen
            orgs = screen.query_one("#grid-organizations", SqlGrid)
            await wait_for(pilot, lambda: orgs.page is not None and orgs.page.total > 0)
            orgs.set_filter("mapping", frozenset({"Unmapped"}))
            await wait_for(pilot, lambda: orgs.page.total > 0 and orgs.state.filters)
            orgs.table.focus()
            await pilot.pause()
            key = orgs.current_key()
            # Edit: the picker, a search by name, enter picks it
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, PickerModal))
            company = Company.select().order_by(Company.id.desc()).first()
            await pilot.press(*company.name[:12])
            await pilot.press("enter")
            await wait_for(pilot, lambda: Organization.get_by_id(key).company_id == company.id)
            # Unmap: the row stays, unmapped
            orgs.set_filter("mapping", frozenset())
            orgs.set_search(Organization.get_by_id(key).name)
            await wait_for(pilot, lambda: orgs.page is not None and key in orgs.page.keys)
            orgs.table.focus()
            orgs.table.move_cursor(row=orgs.page.keys.index(key))
            await pilot.pause()
            await pilot.press("delete")
            await wait_for(pilot, lambda: Organization.get_by_id(key).company_id is None)
            assert Organization.get_or_none(Organization.platform_id == key) is not None

            # Invoices: mark all matching a filter, bulk update a Charge End Date
            await pilot.press("right_square_bracket", "right_square_bracket")
            invoices = screen.query_one("#grid-invoices", SqlGrid)
            await wait_for(pilot, lambda: invoices.page is not None and invoices.page.total > 0)
            invoices.set_filter("charge_type", frozenset({"Usage Fee"}))
            await wait_for(pilot, lambda: invoices.state.filters and invoices.page.total > 0)
            invoices.table.focus()
            await pilot.press("ctrl+a")
            await wait_for(pilot, lambda: invoices.marked_count() == invoices.page.total)
            await pilot.press("E")
            await wait_for(pilot, lambda: isinstance(app.screen, BulkUpdateModal))
            app.screen.query_one("#field").value = "end"
            await pilot.pause()
            app.screen.query_one("#date").value = "2026-12-31"
            await pilot.click("#apply")
            usage = InvoiceLine.select().where((InvoiceLine.period == invoices.source.params[0])
                                               & (InvoiceLine.charge_type == "Usage Fee")
                                               & InvoiceLine.sync_status.in_(["not_synced", "error"]))
            await wait_for(pilot, lambda: all(str(l.charge_end) == "2026-12-31" for l in usage))
            assert all(l.charge_end_badge == "user" for l in usage)
            # the grid shows the new dates (and the marks are gone) without being asked to
            end = [c.key for c in invoices.source.columns].index("charge_end")
            await wait_for(pilot, lambda: invoices.marked_count() == 0 and all(
                row[end] == "2026-12-31|user" for row, key in zip(invoices.page.rows, invoices.page.keys, strict=False)
                if InvoiceLine.get_by_id(key).sync_status in ("not_synced", "error")))

            # Edit one line of Demo agreement's company: its agreement, for the whole contract
            invoices.set_filter("charge_type", frozenset())
            invoices.set_filter("sync", frozenset({"not_synced"}))
            invoices.set_search(Company.get_by_id(250).name)
            await wait_for(pilot, lambda: invoices.state.filters and invoices.state.search and invoices.page.total > 0)
            invoices.table.focus()
            await pilot.pause()
            line_id = invoices.current_key()
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, LineEditModal))
            await pilot.click("#pick-agreement")
            await wait_for(pilot, lambda: isinstance(app.screen, PickerModal))
            await pilot.press(*"Demo agr")
            await pilot.pause()
            await pilot.press("down", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, LineEditModal))
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: isinstance(app.screen, ScopeModal))
            await pilot.click("#contract")
            line = InvoiceLine.get_by_id(line_id)
            from cw_tui.store import Contract

            await wait_for(pilot, lambda: Contract.get_by_id(line.contract_id).agreement_id == 5001)

    run(scenario())
    store.close()


def test_a_reload_asks_before_removing_lines_and_keeping_them_is_the_default(tmp_path: Path, demo_folder: Path) -> None:
    """Issue 10.3: a re-load that would remove unsynced lines gone from the export names them
    and asks (at 80x24, Keep focused); keeping loads nothing; a changed export asks again."""
    import csv

    from textual.geometry import Region

    from cw_tui.screens.mapping_modals import ConfirmRemovalsModal
    from tests.app_helpers import seeded_store

    store = seeded_store(tmp_path / "s.sqlite3", demo_folder)
    path = demo_folder / "invoice_lines_2026-10.csv"
    rows = list(csv.reader(path.open(newline="")))
    gone, later_gone, changed = [rows[i][0] for i in (10, 11, 12)], rows[13][0], rows[20][0]

    def write(skip: set[str]) -> None:
        rows[20][rows[0].index("quantity")] = "777"
        with path.open("w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(r for r in rows if r[0] not in skip)

    def stored(line_id: str):
        return InvoiceLine.get_or_none(InvoiceLine.line_id == line_id)

    write(set(gone))
    quantity_before = stored(changed).quantity
    assert quantity_before != 777

    async def ask(pilot) -> ConfirmRemovalsModal:
        app = pilot.app
        await pilot.press("i")  # Load Invoices: Previous Month (2026-10) is checked
        await modal_ready(pilot, LoadInvoicesModal, "load")
        await pilot.press("enter")
        await modal_ready(pilot, ConfirmRemovalsModal, "cancel")
        return app.screen

    async def scenario() -> None:
        app = make_app(store)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("2")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            modal = await ask(pilot)
            assert modal.need.count == 3 and modal.need.line_ids == {"2026-10": sorted(gone)}
            shown = str(modal.query_one("#removed-ids").render())
            assert all(line_id in shown for line_id in gone)
            assert "Remove 3 unsynced line(s) of 2026-10?" in str(modal.query_one(".title").render())
            for button in ("#cancel", "#remove"):  # both buttons on an 80x24 screen
                region = modal.query_one(button).region
                assert region.height >= 1 and Region(0, 0, 80, 24).contains_region(region)

            await pilot.press("enter")  # Keep them: nothing is loaded
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            await pilot.pause(0.3)
            assert all(stored(line_id) is not None for line_id in gone)
            assert stored(changed).quantity == quantity_before

            modal = await ask(pilot)
            write(set(gone) | {later_gone})  # the export changes while the question is open
            await pilot.press("tab", "enter")  # Remove
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRemovalsModal) and app.screen is not modal
                           and app.focused is not None and app.focused.id == "cancel", timeout=30)
            assert app.screen.need.count == 4 and later_gone in app.screen.need.line_ids["2026-10"]
            assert all(stored(line_id) is not None for line_id in gone + [later_gone])

            await pilot.press("tab", "enter")  # Remove these four
            await wait_for(pilot, lambda: all(stored(line_id) is None for line_id in gone + [later_gone]), timeout=30)
            assert stored(changed).quantity == 777

    run(scenario())
    store.close()


def test_sort_and_filter_the_chosen_column_from_the_keyboard(tmp_path: Path, demo_folder: Path) -> None:
    """left/right choose the column; `s` sorts it, `f` filters it; coming back from the filter
    modal keeps the filter (the period list is refilled then)."""
    from tests.app_helpers import seeded_store

    store = seeded_store(tmp_path / "s.sqlite3", demo_folder)

    async def scenario() -> None:
        app = make_app(store)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("2")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            await pilot.press("right_square_bracket", "right_square_bracket")
            grid = app.screen.query_one("#grid-invoices", SqlGrid)
            await wait_for(pilot, lambda: grid.page is not None and grid.page.total > 0)
            await pilot.press(*["right"] * 6)
            assert grid.current_column().key == "charge_type"
            await pilot.press("s")
            await wait_for(pilot, lambda: grid.state.sort == (("charge_type", False),))
            await pilot.press("right", "S")  # Quantity as the second sort key
            await wait_for(pilot, lambda: grid.state.sort == (("charge_type", False), ("quantity", False)))
            rows = [(row[6], row[7]) for row in grid.page.rows]
            assert rows == sorted(rows)
            await pilot.press("S", "S")  # descending, then dropped
            await wait_for(pilot, lambda: grid.state.sort == (("charge_type", False),))
            await pilot.press("left")
            await pilot.press("f")
            await pilot.pause()
            await pilot.press("space", "enter")  # the first value
            await wait_for(pilot, lambda: bool(grid.state.filters))
            [(key, values)] = grid.state.filters
            await pilot.pause(0.3)
            assert key == "charge_type" and len(values) == 1 and grid.state.filters  # still there
            assert all(row[6] == next(iter(values)) for row in grid.page.rows)

    run(scenario())
    store.close()


def test_per_row_sync_error_row_and_response_error(tmp_path: Path, demo_folder: Path, cli) -> None:
    """`y` posts one line (plan first); a line ConnectWise rejects ends Error with its reason;
    when ConnectWise cannot be reached, mapped organizations show Response Error."""
    from cw_tui.screens.mapping_modals import LineEditModal
    from cw_tui.store import Product

    with sandbox_thread() as sandbox:
        db = tmp_path / "s.sqlite3"
        store = configured_store(db, demo_folder, sandbox)
        for args in (("sync-organizations",), ("load-invoices", "--period", "2026-10"), ("automap", "--include")):
            assert cli("--db", db, *args).code == 0
        from cw_tui.rules.mapping import MappingStatus
        from cw_tui.sync import plan_lines

        postable = [p for p in plan_lines(store, "2026-10")
                    if p.mapping_status is MappingStatus.MAPPED and not p.charge_type.recurring]
        line = InvoiceLine.get_by_id(postable[0].line_id)
        rejected = InvoiceLine.get_by_id(postable[1].line_id)
        inactive = Product.select().where(Product.inactive == True).first()  # noqa: E712

        async def scenario() -> None:
            app = make_app(store, clock=lambda: datetime(2026, 11, 18, 9, 0, tzinfo=UTC))
            async with app.run_test(size=(120, 36)) as pilot:
                await pilot.press("2")
                await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
                screen = app.screen
                await pilot.press("right_square_bracket", "right_square_bracket")
                grid = screen.query_one("#grid-invoices", SqlGrid)
                await wait_for(pilot, lambda: grid.page is not None and grid.page.total > 0)
                grid.set_search(line.invoice_number)
                await put_cursor_on(pilot, grid, line.line_id)
                await pilot.press("y")
                await modal_ready(pilot, SyncPlanModal, "post")
                assert [c.line_ids for c in app.screen.plan.creates] == [(line.line_id,)]
                await pilot.press("enter")
                try:
                    await wait_for(pilot, lambda: InvoiceLine.get_by_id(line.line_id).sync_status == "synced", timeout=60)
                except AssertionError:
                    from cw_tui.services import system_log

                    raise AssertionError(f"screen {app.screen}, line {InvoiceLine.get_by_id(line.line_id).sync_status}, "
                                         f"logs {[e.summary for e in system_log.entries(store, limit=8)]}") from None
                assert InvoiceLine.select().where(InvoiceLine.sync_status == "synced").count() == 1  # only that line

                # an inactive product: ConnectWise rejects the line, which ends Error with the reason
                store.db.execute_sql("UPDATE invoice_line SET override_product_id = ? WHERE line_id = ?",
                                     (inactive.id, rejected.line_id))
                grid.set_search(rejected.invoice_number)
                await put_cursor_on(pilot, grid, rejected.line_id)
                await pilot.press("y")
                await modal_ready(pilot, SyncPlanModal, "post")
                await pilot.press("enter")
                await wait_for(pilot, lambda: InvoiceLine.get_by_id(rejected.line_id).sync_status == "error", timeout=60)
                assert "inactive" in InvoiceLine.get_by_id(rejected.line_id).last_error
                await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen), timeout=30)
                await put_cursor_on(pilot, grid, rejected.line_id)
                await pilot.press("e")  # the edit shows ConnectWise's reason
                await wait_for(pilot, lambda: isinstance(app.screen, LineEditModal))
                assert "inactive" in str(app.screen.line["last_error"])
                await pilot.press("escape")

                # ConnectWise unreachable: mapped organizations show Response Error
                sandbox.sandbox.faults.fail_rate = 1.0
                await pilot.press("o")
                orgs = screen.query_one("#grid-organizations", SqlGrid)
                await wait_for(pilot, lambda: Organization.select().where(Organization.mapping_error.is_null(False)).count() > 0,
                               timeout=60)
                orgs.set_filter("mapping", frozenset({"Response Error"}))
                await wait_for(pilot, lambda: orgs.page is not None and orgs.state.filters and orgs.page.total > 0,
                               timeout=30)

        run(scenario())
        store.close()


def test_the_shown_grid_has_the_keys_and_the_mouse_sorts_opens_and_presses_keys(tmp_path: Path, demo_folder: Path) -> None:
    """An action that shows another tab (Load Invoices from Organizations) gives that tab's
    grid the keys; a click on a column title sorts, a click on the cursor row opens it, and
    a click on a key hint presses the key."""
    from cw_tui.screens.pickers import PickerModal
    from cw_tui.widgets.key_bar import KeyBar
    from tests.app_helpers import seeded_store

    store = seeded_store(tmp_path / "s.sqlite3", demo_folder)

    async def scenario() -> None:
        app = make_app(store)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("2")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            screen = app.screen
            organizations = screen.query_one("#grid-organizations", SqlGrid)
            invoices = screen.query_one("#grid-invoices", SqlGrid)
            await wait_for(pilot, lambda: app.focused is organizations.table)  # the keys work at once
            await pilot.press("i")  # Load Invoices belongs to the Invoices tab
            await modal_ready(pilot, LoadInvoicesModal, "load")
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            assert screen.query_one(TabbedContent).active == "invoices"
            await wait_for(pilot, lambda: app.focused is invoices.table)
            await wait_for(pilot, lambda: invoices.page is not None and invoices.page.total > 20)
            await pilot.press("s")  # sorts the invoices, not the hidden organizations
            await wait_for(pilot, lambda: invoices.state.sort == (("invoice_date", False),))
            assert organizations.state.sort == ()

            # the header: " ● " then each column as its width plus a space either side
            first, second = invoices._visible()[:2]
            x = 3 + (invoices.width_of(first) + 2) + (invoices.width_of(second) + 2) + 2  # inside "Organization Name"
            await pilot.click(invoices.table, offset=(x, 0))
            await wait_for(pilot, lambda: invoices.state.sort == (("organization", False),))
            names = [row[2] for row in invoices.page.rows]
            assert names == sorted(names)
            await pilot.click(invoices.table, offset=(x, 0))  # again: descending
            await wait_for(pilot, lambda: invoices.state.sort == (("organization", True),))

            third = invoices.table.header_height + 2  # the header takes two lines where a title wraps
            await pilot.click(invoices.table, offset=(20, third))  # the third row takes the cursor
            await wait_for(pilot, lambda: invoices.table.cursor_row == 2)
            key = invoices.current_key()
            await pilot.click(invoices.table, offset=(20, third))  # a click on the cursor row opens it
            await wait_for(pilot, lambda: not isinstance(app.screen, MappingScreen))
            assert invoices.current_key() == key
            await pilot.press("escape")
            while isinstance(app.screen, PickerModal) or not isinstance(app.screen, MappingScreen):
                await pilot.press("escape")
                await pilot.pause(0.1)

            bar = screen.query_one(KeyBar)
            start = next(start for start, _end, hint_key in bar._spans if hint_key == "slash")
            await pilot.click(bar, offset=(start + 1, 0))  # "/ Search"
            await wait_for(pilot, lambda: app.focused is invoices.query_one(".search"))

    run(scenario())
    store.close()


def shown_cells(grid: SqlGrid, key: str) -> dict[str, str]:
    """A row's cells as drawn: after the mark, each column is its width with a space either side."""
    text = grid.table._strips[grid.page.keys.index(key)].text
    cells, x = {}, 3
    for column in grid._visible():
        width = grid.width_of(column)  # as laid out for the page (issue 12)
        cells[column.key] = text[x + 1 : x + 1 + width].strip()
        x += width + 2
    return cells


def notices(seen: list[str]):
    """Records every notification's text (they vanish from the screen after a while)."""
    from textual.notifications import Notify

    return lambda message: seen.append(str(message.notification.message)) if isinstance(message, Notify) else None


def first_lines(period: str, n: int) -> list[str]:
    """The first rows of the Invoices grid in its default order."""
    return [l.line_id for l in InvoiceLine.select().where(InvoiceLine.period == period)
            .order_by(InvoiceLine.invoice_date, InvoiceLine.line_id).limit(n)]


def test_ctrl_e_exports_what_the_invoices_grid_shows(tmp_path: Path, demo_folder: Path) -> None:
    """Issue 10 (7a, 7b): the export of the grid holds its cells as the grid draws them (plain
    decimals, the user's words, ISO dates, each date's source in a column of its own), in the
    grid's order; a synced line shows the agreement it was posted to."""
    import csv

    from cw_tui.store import Agreement, Contract
    from tests.app_helpers import FROZEN, seeded_store

    store = seeded_store(tmp_path / "s.sqlite3", demo_folder)
    shaped, posted, uncached = first_lines("2026-10", 3)
    store.db.execute_sql(
        "UPDATE invoice_line SET quantity = 10000000, unit_price = 12500000, unit_cost = 123, total = 125000000, "
        "charge_start = '2026-10-03', charge_start_badge = 'user', sync_status = 'not_synced' WHERE line_id = ?", (shaped,))
    Agreement.insert(id=6100, name="Posted here", company_id=250, type_id=2, status="Active", cancelled=False,
                     synced_at=FROZEN).execute()
    for line_id, agreement in ((posted, 6100), (uncached, 99999)):
        store.db.execute_sql("UPDATE invoice_line SET sync_status = 'synced', posted_agreement_id = ?, addition_id = 7, "
                             "last_sync_at = '2026-11-17T23:00:00.000000Z' WHERE line_id = ?", (agreement, line_id))
    # the mapping names another agreement now: the grid still shows where the line went
    Contract.update(agreement_id=5001).where(Contract.platform_id == InvoiceLine.get_by_id(posted).contract_id).execute()
    seen: list[str] = []

    async def scenario() -> None:
        app = make_app(store)
        async with app.run_test(size=(120, 36), notifications=True, message_hook=notices(seen)) as pilot:
            await pilot.press("2")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            await pilot.press("right_square_bracket", "right_square_bracket")
            grid = app.screen.query_one("#grid-invoices", SqlGrid)
            await wait_for(pilot, lambda: grid.page is not None and shaped in grid.page.keys and app.focused is grid.table)
            assert shown_cells(grid, posted)["psa_agreement"] == "Posted here"
            assert shown_cells(grid, uncached)["psa_agreement"] == "#99999"
            cells = shown_cells(grid, shaped)
            assert (cells["quantity"], cells["unit_price"], cells["unit_cost"], cells["total"]) == \
                   ("10", "12.50", "0.00", "125.00")  # money to the cent on screen (issue 12), exact in the CSV
            assert cells["charge_start"] == "2026-10-03 U" and cells["sync"] == "Not Synced"
            page_keys = list(grid.page.keys)
            drawn = {key: shown_cells(grid, key) for key in page_keys}
            columns = grid._visible()

            await pilot.press("ctrl+e")
            path = Path.home() / f"cw-tui-invoice-lines-2026-10-{FROZEN:%Y%m%d-%H%M%S}.csv"
            await wait_for(pilot, lambda: any(str(path) in s for s in seen))
            with open(path, encoding="utf-8-sig", newline="") as handle:
                rows = list(csv.DictReader(handle))
            assert len(rows) == grid.page.total
            by_line = dict(zip(page_keys, rows, strict=False))  # the grid's order: the page is the export's first rows
            for key, row in by_line.items():
                assert row["Invoice #"] == drawn[key]["invoice_number"]
            row = by_line[shaped]
            assert (row["Quantity"], row["Unit Price"], row["Unit Cost"], row["Total"]) == ("10", "12.50", "0.000123", "125.00")
            assert (row["Charge Start Date"], row["Charge Start Source"]) == ("2026-10-03", "User Updated")
            assert by_line[posted]["PSA Agreement Name"] == "Posted here" and by_line[posted]["Status in PSA"] == "Synced"
            assert by_line[posted]["Last Sync"] == "2026-11-17T23:00:00Z"  # the grid: 2026-11-17 23:00 (local, here UTC)
            letters = {"User Updated": " U", "System Updated": " S", "Default": ""}
            for key in (shaped, posted, uncached):
                for column in columns:
                    cell, text = drawn[key][column.key], by_line[key][column.title]
                    if column.key in ("charge_start", "charge_end"):
                        text = (text or "—") + letters[by_line[key][column.title.replace("Date", "Source")]]
                    elif column.key == "last_sync" and text:
                        text = text.replace("T", " ")[:16]
                    elif column.key == "psa_agreement" and not text and cell.startswith("New agreement"):
                        text = cell  # SPEC §8 rule 4: the grid says what sync will do; the CSV stays empty
                    elif column.key.startswith("psa_") and not text:
                        text = "Click to select"  # the grid's prompt where nothing is mapped; the CSV stays empty
                    elif column.key == "psa_agreement" and cell.startswith("… "):
                        assert text.endswith(cell[2:]), (key, text, cell)  # the part after the customer's name
                        text = cell
                    elif column.key in ("unit_price", "unit_cost", "total"):
                        text = f"{Decimal(text).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):f}"
                    if not cell.endswith("…"):  # a cell cut to its column's width
                        assert cell == text.replace(",", ""), (key, column.key)

    run(scenario())
    store.close()


def test_agreements_are_offered_and_accepted_for_the_lines_company_only(tmp_path: Path, demo_folder: Path) -> None:
    """Issue 10 (7b): the line editor and Bulk Update offer the agreements of the lines' company
    only; another company's agreement is refused with a message, and nothing changes."""
    from textual.widgets import OptionList

    from cw_tui.screens.mapping_modals import BulkUpdateModal, LineEditModal, ScopeModal
    from cw_tui.screens.pickers import PickerModal
    from cw_tui.store import Agreement
    from tests.app_helpers import FROZEN, seeded_store

    store = seeded_store(tmp_path / "s.sqlite3", demo_folder)
    for agreement_id, name, company in ((5002, "Other company agreement", 251), (5003, "Second of the first", 250)):
        Agreement.insert(id=agreement_id, name=name, company_id=company, type_id=2, status="Active", cancelled=False,
                         synced_at=FROZEN).execute()
    ours, theirs = Company.get_by_id(250), Company.get_by_id(251)

    def state() -> list:
        return store.db.execute_sql("SELECT line_id, override_company_id, override_agreement_id FROM invoice_line "
                                    "UNION ALL SELECT platform_id, NULL, agreement_id FROM contract ORDER BY 1").fetchall()

    def company_of(line_id: str) -> int | None:
        return Organization.get_by_id(InvoiceLine.get_by_id(line_id).organization_id).company_id

    def offered() -> set[str]:
        options = app.screen.query_one("#options", OptionList)
        return {options.get_option_at_index(i).id for i in range(options.option_count)}

    seen: list[str] = []
    app = make_app(store)

    async def scenario() -> None:
        async with app.run_test(size=(120, 36), notifications=True, message_hook=notices(seen)) as pilot:
            await pilot.press("2")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            await pilot.press("right_square_bracket", "right_square_bracket")
            grid = app.screen.query_one("#grid-invoices", SqlGrid)
            grid.set_filter("sync", frozenset({"not_synced"}))
            grid.set_search(ours.name)
            await wait_for(pilot, lambda: grid.page is not None and grid.page.total > 0
                           and {company_of(k) for k in grid.page.keys} == {250})
            line_id = grid.page.keys[0]
            await put_cursor_on(pilot, grid, line_id)
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, LineEditModal))
            await pilot.click("#pick-agreement")
            await wait_for(pilot, lambda: isinstance(app.screen, PickerModal))
            assert offered() == {"pick-5001", "pick-5003"}  # not 5002, of company 251
            await pilot.press(*"Demo", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, LineEditModal))
            # then another company for the line: the agreement no longer fits it
            await pilot.click("#pick-company")
            await wait_for(pilot, lambda: isinstance(app.screen, PickerModal))
            await pilot.press(*"251")
            await wait_for(pilot, lambda: offered() == {"pick-251"})
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, LineEditModal))
            before = state()
            await pilot.press("ctrl+s")
            await modal_ready(pilot, ScopeModal, "line")
            await pilot.press("enter")
            await wait_for(pilot, lambda: any("Demo agreement (#5001) belongs to" in s for s in seen))
            message = next(s for s in seen if "#5001" in s)
            assert f"{ours.name} (#250)" in message and f"{theirs.name} (#251)" in message and line_id in message
            assert state() == before

            # Bulk Update: lines of two companies get no agreement offered, and are told why
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            grid.table.focus()
            await pilot.press("space")  # the line of company 250
            grid.set_search(theirs.name)
            await wait_for(pilot, lambda: grid.page.total > 0 and {company_of(k) for k in grid.page.keys} == {251})
            await put_cursor_on(pilot, grid, grid.page.keys[0])
            await pilot.press("space")
            await wait_for(pilot, lambda: grid.marked_count() == 2)
            await pilot.press("E")
            await wait_for(pilot, lambda: isinstance(app.screen, BulkUpdateModal))
            app.screen.query_one("#field").value = "agreement"
            await pilot.pause()
            await pilot.click("#choose")
            await wait_for(pilot, lambda: isinstance(app.screen, PickerModal))
            assert offered() == set() and "belong to 2 companies" in str(app.screen.query_one("#note").render())
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, BulkUpdateModal))
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            grid.table.focus()
            await pilot.press("U")  # only the line of 251 now: its company's agreement
            await pilot.press("space")
            await wait_for(pilot, lambda: grid.marked_count() == 1)
            await pilot.press("E")
            await wait_for(pilot, lambda: isinstance(app.screen, BulkUpdateModal))
            app.screen.query_one("#field").value = "agreement"
            await pilot.pause()
            await pilot.click("#choose")
            await wait_for(pilot, lambda: isinstance(app.screen, PickerModal))
            assert offered() == {"pick-5002"}

    run(scenario())
    store.close()


def test_x_toggles_the_organization_of_the_row_on_the_tab_shown(tmp_path: Path, demo_folder: Path) -> None:
    """Issue 10 (7c): on a line, `x` includes or excludes that line's organization and stays on
    Invoices; on Organizations the one under the cursor; on Products nothing changes. Each says so."""
    from tests.app_helpers import seeded_store

    store = seeded_store(tmp_path / "s.sqlite3", demo_folder)
    seen: list[str] = []

    def excluded() -> dict[str, bool]:
        return {o.platform_id: o.excluded for o in Organization.select()}

    async def scenario() -> None:
        app = make_app(store)
        async with app.run_test(size=(120, 36), notifications=True, message_hook=notices(seen)) as pilot:
            await pilot.press("2")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            screen = app.screen
            await pilot.press("right_square_bracket", "right_square_bracket")
            grid = screen.query_one("#grid-invoices", SqlGrid)
            await wait_for(pilot, lambda: grid.page is not None and grid.page.total > 0)
            line = InvoiceLine.get_by_id(grid.page.keys[4])
            await put_cursor_on(pilot, grid, line.line_id)
            org = Organization.get_by_id(line.organization_id)
            orgs_cursor = screen.query_one("#grid-organizations", SqlGrid).current_key()
            assert orgs_cursor != org.platform_id  # what `x` used to toggle instead
            before = excluded()
            await pilot.press("x")
            await wait_for(pilot, lambda: Organization.get_by_id(org.platform_id).excluded != org.excluded)
            assert excluded() == {**before, org.platform_id: not org.excluded}  # that one only
            assert screen.query_one(TabbedContent).active == "invoices"
            word = "excluded from" if not org.excluded else "included in"
            await wait_for(pilot, lambda: f"{org.name} is now {word} sync." in seen)

            await pilot.press("left_square_bracket")  # Products: nothing changes, and x says what it is for
            await wait_for(pilot, lambda: screen.query_one(TabbedContent).active == "products")
            after = excluded()
            await pilot.press("x")
            await wait_for(pilot, lambda: any("x includes or excludes an organization" in s for s in seen))
            assert excluded() == after and screen.query_one(TabbedContent).active == "products"

            await pilot.press("left_square_bracket")  # Organizations: the one under the cursor
            orgs = screen.query_one("#grid-organizations", SqlGrid)
            await wait_for(pilot, lambda: app.focused is orgs.table)
            key = orgs.current_key()
            first = Organization.get_by_id(key)
            await pilot.press("x")
            await wait_for(pilot, lambda: Organization.get_by_id(key).excluded != first.excluded)
            word = "excluded from" if not first.excluded else "included in"
            await wait_for(pilot, lambda: f"{first.name} is now {word} sync." in seen)

    run(scenario())
    store.close()


def test_a_shrinking_refresh_asks_first_no_keeps_the_cache_yes_replaces_it(tmp_path: Path, demo_folder: Path, cli) -> None:
    """Issue 10, part 6: Sync Organizations and the sync plan ask before a refresh drops more
    than half of a cached list. The question's buttons show at 80x24, "Keep" is the default."""
    import json

    from textual.widgets import Button, Static

    from cw_tui.sandbox.odd_answers import OddAnswer
    from cw_tui.screens.mapping_modals import ShrinkModal
    from cw_tui.store import Agreement

    with sandbox_thread() as sandbox:
        db = tmp_path / "s.sqlite3"
        store = configured_store(db, demo_folder, sandbox)
        for args in (("sync-organizations",), ("load-invoices", "--period", "2026-10"), ("automap", "--include")):
            assert cli("--db", db, *args).code == 0
        companies = sorted(Company.select().tuples())
        agreements = Agreement.select().count()
        assert len(companies) == 400 and agreements > 10
        three = sorted(sandbox.sandbox.state.companies.values(), key=lambda c: c["id"])[:3]
        sandbox.sandbox.faults.odd_answers += [
            OddAnswer("body", "/company/companies", {"text": json.dumps([{"id": c["id"], "name": c["name"]} for c in three])}),
        ]

        async def question(pilot) -> ShrinkModal:
            await modal_ready(pilot, ShrinkModal, "cancel", timeout=30)
            modal = pilot.app.screen
            for button in modal.query(Button):
                assert modal.region.contains_region(button.region), button.id
            return modal

        async def scenario() -> None:
            app = make_app(store, clock=lambda: datetime(2026, 11, 18, 9, 0, tzinfo=UTC))
            async with app.run_test(size=(80, 24), notifications=True) as pilot:
                await pilot.press("2")
                await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
                await pilot.press("o")
                modal = await question(pilot)
                text = " ".join(str(s.render()) for s in modal.query(Static))
                assert "Companies: 400 cached, 3 sent now" in text
                assert sorted(Company.select().tuples()) == companies  # nothing changed while it asks
                await pilot.press("enter")  # "Keep the cache"
                await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
                await pilot.pause(0.2)
                assert sorted(Company.select().tuples()) == companies

                await pilot.press("o")
                await question(pilot)
                await pilot.click("#replace")
                await wait_for(pilot, lambda: Company.select().count() == 3, timeout=20)
                assert {c.name for c in Company.select()} == {c["name"] for c in three}

                # the plan's agreements refresh asks too
                sandbox.sandbox.faults.odd_answers.append(OddAnswer("body", "/finance/agreements", {"text": "[]"}))
                await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
                await pilot.press("P")
                modal = await question(pilot)
                assert "Agreements:" in " ".join(str(s.render()) for s in modal.query(Static))
                await pilot.press("enter")
                await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
                await pilot.pause(0.2)
                assert Agreement.select().count() == agreements
                await pilot.press("P")
                await question(pilot)
                await pilot.click("#replace")
                await modal_ready(pilot, SyncPlanModal, "post", timeout=30)
                assert Agreement.select().count() == 0
                await pilot.press("escape")  # nothing is posted

        additions = len(sandbox.sandbox.state.additions)
        run(scenario())
        assert len(sandbox.sandbox.state.additions) == additions  # nothing was posted
        store.close()
