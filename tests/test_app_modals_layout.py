"""Issue 12: every modal of the Mapping page shows its buttons at 80x24 with its default
focused, Best Practices reads to the end from the keyboard, the month selector has no blank
choice and a key of its own, and Cancel at the scope question goes back to the edit form.
The real app under Pilot on the seeded store."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.containers import VerticalScroll
from textual.widgets import Button, Select, TabbedContent

from cw_tui.screens.mapping import (
    BEST_PRACTICES,
    BestPractices,
    MappingScreen,
    PeriodSelect,
)
from cw_tui.screens.mapping_modals import (
    BulkUpdateModal,
    ConfirmRemovalsModal,
    LineEditModal,
    LoadInvoicesModal,
    LoadProductsModal,
    ScopeModal,
    ShrinkModal,
)
from cw_tui.screens.pickers import PickerModal
from cw_tui.services.connectwise_data import Shrink
from cw_tui.store import Agreement, InvoiceLine, Organization, open_store
from cw_tui.widgets.grid import SqlGrid
from tests.app_helpers import make_app, run, wait_for
from tests.test_app_mapping import put_cursor_on

SMALL = (80, 24)
LONG_ERROR = ("ConnectWise refused the addition: the product P1 is inactive in the catalog, and the agreement "
              "takes additions only of active products; reactivate the product or map the offer to another one. ") * 2




def shown_whole(app, widget) -> bool:
    """The widget lies inside the terminal, and nothing covers or clips it: the cell at its
    middle is the widget (or one of its own children)."""
    region = widget.region
    if region.area == 0 or not app.screen.region.contains_region(region):
        return False
    found, _ = app.screen.get_widget_at(region.x + region.width // 2, region.y + region.height // 2)
    return widget in found.ancestors_with_self


def assert_buttons_shown(app, default_id: str | None, *others: str) -> None:
    screen = app.screen
    ids = [*([default_id] if default_id else []), *others]
    for button_id in ids:
        button = screen.query_one(f"#{button_id}", Button)
        assert shown_whole(app, button), f"{type(screen).__name__}: {button_id} at {button.region} is not on screen"
    if default_id:
        assert app.focused is screen.query_one(f"#{default_id}", Button), (type(screen).__name__, app.focused)


async def to_mapping(pilot):
    await pilot.press("2")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, MappingScreen))
    return pilot.app.screen


async def first_unsynced_line(pilot) -> tuple[MappingScreen, SqlGrid, str]:
    """The Invoices tab shown, and the first unsynced line on its first page."""
    screen = await to_mapping(pilot)
    screen.show_tab("invoices")
    grid = screen.query_one("#grid-invoices", SqlGrid)
    await wait_for(pilot, lambda: grid.source.params == ("2026-10",) and grid.page is not None and grid.page.total > 0)
    line_id = next(key for key in grid.page.keys if InvoiceLine.get_by_id(key).sync_status == "not_synced")
    return screen, grid, line_id


async def error_line_edit(pilot) -> str:
    """The edit form of an Error line with a long reason, open: the line's ID."""
    _screen, grid, line_id = await first_unsynced_line(pilot)
    InvoiceLine.update(sync_status="error", last_error=LONG_ERROR).where(InvoiceLine.line_id == line_id).execute()
    grid.reload()
    await put_cursor_on(pilot, grid, line_id)
    await pilot.press("e")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, LineEditModal))
    await pilot.pause(0.2)
    return line_id


def test_best_practices_reads_to_the_end_from_the_keyboard_at_80x24(seeded) -> None:
    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=SMALL) as pilot:
            await to_mapping(pilot)
            await pilot.press("b")
            await wait_for(pilot, lambda: isinstance(app.screen, BestPractices))
            await pilot.pause(0.2)
            modal = app.screen
            body = modal.query_one("#practices", VerticalScroll)
            assert app.focused is body  # the arrows and page keys scroll it
            assert body.max_scroll_y > 0  # at 80x24 the eight do not fit at once
            close = modal.query_one("#close", Button)
            assert shown_whole(app, close)
            items = list(modal.query(".item"))
            assert len(items) == len(BEST_PRACTICES) == 8
            assert not shown_whole(app, items[-1])
            for _ in range(10):
                await pilot.press("pagedown")
            await pilot.pause(0.2)
            assert body.scroll_y == body.max_scroll_y
            assert shown_whole(app, items[-1])  # item 8, Charge End Date, is read
            assert shown_whole(app, close)  # Close never moved
            await pilot.press("tab")
            assert app.focused is close
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))

    run(scenario())


def test_the_load_modals_show_their_buttons_with_the_default_focused_at_80x24(seeded) -> None:
    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=SMALL) as pilot:
            await to_mapping(pilot)
            for key, modal_type in (("p", LoadProductsModal), ("i", LoadInvoicesModal)):
                await pilot.press(key)
                await wait_for(pilot, lambda modal_type=modal_type: isinstance(app.screen, modal_type))
                await pilot.pause(0.1)
                assert_buttons_shown(app, "load", "cancel")
                await pilot.press("escape")
                await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            app.push_screen(ShrinkModal([Shrink("companies", 400, 3), Shrink("catalog products", 200, 1),
                                         Shrink("agreements", 300, 0)]))
            await wait_for(pilot, lambda: isinstance(app.screen, ShrinkModal))
            await pilot.pause(0.1)
            assert_buttons_shown(app, "cancel", "replace")  # keeping the cache is the default

    run(scenario())


def test_the_removals_confirmation_shows_its_buttons_at_80x24(seeded, demo_folder: Path) -> None:
    path = demo_folder / "invoice_lines_2026-10.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:10] + lines[40:]))  # 30 lines gone from the export

    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=SMALL) as pilot:
            await to_mapping(pilot)
            await pilot.press("i")
            await wait_for(pilot, lambda: isinstance(app.screen, LoadInvoicesModal))
            await pilot.pause(0.1)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRemovalsModal), timeout=20)
            await pilot.pause(0.2)
            assert_buttons_shown(app, "cancel", "remove")  # keeping them is the default

    run(scenario())


def test_the_edit_form_of_an_error_line_shows_its_buttons_at_80x24(seeded) -> None:
    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=SMALL) as pilot:
            await error_line_edit(pilot)
            modal = app.screen
            assert_buttons_shown(app, None, "confirm", "cancel")
            assert app.focused is modal.query_one("#pick-company", Button)  # the form starts at its first field
            assert shown_whole(app, app.focused)
            # the whole reason is in the form: the body scrolls to it, the buttons stay
            body = modal.query_one(".body")
            assert body.max_scroll_y > 0
            for _ in range(8):
                await pilot.press("tab")
                assert shown_whole(app, app.focused), app.focused
            assert_buttons_shown(app, None, "confirm", "cancel")

    run(scenario())


def test_bulk_update_and_the_pickers_show_their_buttons_at_80x24(seeded) -> None:
    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=SMALL) as pilot:
            screen = await to_mapping(pilot)
            screen.show_tab("invoices")
            grid = screen.query_one("#grid-invoices", SqlGrid)
            await wait_for(pilot, lambda: grid.page is not None and grid.page.total > 0)
            grid.table.focus()
            await pilot.press("ctrl+a")
            await pilot.press("E")
            await wait_for(pilot, lambda: isinstance(app.screen, BulkUpdateModal))
            await pilot.pause(0.1)
            assert_buttons_shown(app, None, "apply", "cancel", "choose")
            assert app.focused is app.screen.query_one("#field", Select)
            await pilot.click("#choose")
            await wait_for(pilot, lambda: isinstance(app.screen, PickerModal))
            await pilot.pause(0.1)
            assert_buttons_shown(app, None, "clear", "cancel")
            assert shown_whole(app, app.focused)  # the search box
            await pilot.press("escape")  # the picker's Cancel: back to the bulk form, as it was
            await wait_for(pilot, lambda: isinstance(app.screen, BulkUpdateModal))
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            app.clear_notifications()
            screen.show_tab("organizations")
            await pilot.pause(0.2)
            await pilot.press("e")  # the company picker of an organization
            await wait_for(pilot, lambda: isinstance(app.screen, PickerModal))
            await pilot.pause(0.1)
            assert_buttons_shown(app, None, "clear", "cancel")

    run(scenario())


def test_cancel_at_the_scope_question_goes_back_to_the_form_with_the_edits_kept(seeded) -> None:
    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=SMALL) as pilot:
            _screen, grid, line_id = await first_unsynced_line(pilot)
            before = InvoiceLine.get_by_id(line_id)
            # the line's organization is of company 250, which has the agreement "Demo agreement" (#5001)
            Organization.update(company_id=250).where(Organization.platform_id == before.organization_id).execute()
            grid.reload()
            await put_cursor_on(pilot, grid, line_id)
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, LineEditModal))
            form = app.screen
            form.query_one("#end").value = "2026-10-30"  # an edit typed by the user
            await pilot.click("#pick-agreement")
            await wait_for(pilot, lambda: isinstance(app.screen, PickerModal))
            await pilot.press("enter")  # the first agreement offered: Demo agreement
            await wait_for(pilot, lambda: app.screen is form)
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: isinstance(app.screen, ScopeModal))
            await pilot.pause(0.1)
            assert_buttons_shown(app, "line", "contract", "cancel")
            await pilot.press("escape")  # Cancel at the last question
            await wait_for(pilot, lambda: app.screen is form)
            assert form.query_one("#end").value == "2026-10-30"
            assert form.changes["agreement"] == (5001, "Demo agreement")
            assert app.focused is form.query_one("#confirm", Button)
            assert "Nothing was changed yet" in str(form.query_one("#problem").render())
            line = InvoiceLine.get_by_id(line_id)  # nothing was applied
            assert (line.override_agreement_id, line.charge_end) == (before.override_agreement_id, before.charge_end)
            await pilot.press("enter")  # Confirm again: the question again; this line
            await wait_for(pilot, lambda: isinstance(app.screen, ScopeModal))
            await pilot.pause(0.1)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            await wait_for(pilot, lambda: InvoiceLine.get_by_id(line_id).override_agreement_id == 5001)
            assert str(InvoiceLine.get_by_id(line_id).charge_end) == "2026-10-30"
            assert Agreement.get_by_id(5001).name == "Demo agreement"

    run(scenario())


def test_the_month_selector_has_no_blank_choice_and_a_key_of_its_own(seeded, tmp_path: Path) -> None:
    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=SMALL) as pilot:
            screen = await to_mapping(pilot)
            assert screen.query_one(TabbedContent).active == "organizations"
            await pilot.press("m")  # from the Organizations grid, one key
            select = screen.query_one("#period", PeriodSelect)
            await wait_for(pilot, lambda: select.expanded)
            assert screen.query_one(TabbedContent).active == "invoices"
            values = [value for _, value in select._options]
            assert values == ["2026-10", "2026-09"]  # no "no periods loaded", no blank
            assert select.value == "2026-10"
            await pilot.press("down", "enter")
            grid = screen.query_one("#grid-invoices", SqlGrid)
            await wait_for(pilot, lambda: grid.source.params == ("2026-09",))
            assert select.value == "2026-09"
            with pytest.raises(Exception):  # noqa: B017 - Textual refuses a blank value
                select.clear()

    run(scenario())

    with open_store(tmp_path / "empty.sqlite3") as empty:
        async def nothing_loaded() -> None:
            from cw_tui.services import settings

            config = settings.load_configuration(empty)
            config.agreement_type = settings.AgreementTypeChoice(id=2, name="Cloud Services")
            config.platform_dir = str(tmp_path)
            settings.save_configuration(empty, config)
            app = make_app(empty)
            async with app.run_test(size=SMALL, notifications=True) as pilot:
                screen = await to_mapping(pilot)
                screen.show_tab("invoices")
                await pilot.pause(0.2)
                select = screen.query_one("#period", PeriodSelect)
                assert not select.display  # no selector offering nothing: the bar says none are loaded
                assert "none loaded" in str(screen.query_one("#no-periods").render())
                await pilot.press("m")
                await wait_for(pilot, lambda: any("No invoice lines" in n.message for n in app._notifications))

        run(nothing_loaded())
