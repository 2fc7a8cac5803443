"""Snapshot tests of every screen at 100x30 and 80x24 (issue 5, must show 2): seeded data,
a frozen clock, UTC, no animations."""

from __future__ import annotations

from pathlib import Path

import pytest

from cw_tui.store import open_store
from tests.app_helpers import FIXED_CREDENTIALS, HOSTILE_NAME, hostile_store, make_app

SIZES = [(100, 30), (80, 24)]


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    for widget in pilot.app.screen.query("Input"):
        widget.cursor_blink = False


def keys(*pressed: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        for key in pressed:
            await pilot.press(key)
            await settle(pilot)
    return run_before




@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_first_start_settings(snap_compare, tmp_path: Path, size) -> None:
    with open_store(tmp_path / "fresh.sqlite3") as store:
        app = make_app(store, prefill_credentials=FIXED_CREDENTIALS)
        assert snap_compare(app, terminal_size=size, run_before=keys())


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", ["dashboard", "mapping", "logs", "settings", "configuration", "dictionary",
                                    "products", "invoices", "help", "best-practices"])
def test_screens(snap_compare, seeded, size, screen: str) -> None:
    presses = {
        "dashboard": (),
        "mapping": ("2",),
        "products": ("2", "right_square_bracket"),
        "invoices": ("2",),
        "logs": ("3",),
        "settings": ("4",),
        "configuration": ("4",),
        "dictionary": ("4",),
        "help": ("question_mark",),
        "best-practices": ("2", "b"),
    }[screen]

    async def run_before(pilot) -> None:
        await keys(*presses)(pilot)
        app = pilot.app
        if screen in ("configuration", "dictionary"):
            from textual.widgets import TabbedContent

            app.screen.query_one(TabbedContent).active = screen
        if screen in ("products", "invoices"):
            from textual.widgets import TabbedContent

            app.screen.query_one(TabbedContent).active = screen
        await settle(pilot)

    assert snap_compare(make_app(seeded), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("modal", ["load-products", "load-invoices", "confirm-removals", "line-edit", "picker", "bulk-update",
                                   "filter", "bulk-agreement"])
def test_mapping_modals(snap_compare, seeded, demo_folder: Path, size, modal: str) -> None:
    async def run_before(pilot) -> None:
        await keys("2")(pilot)
        app = pilot.app
        from textual.widgets import TabbedContent

        from cw_tui.widgets.grid import SqlGrid

        screen = app.screen
        if modal == "load-products":
            await pilot.press("p")
        elif modal == "load-invoices":
            await pilot.press("i")
        elif modal == "confirm-removals":  # the previous month's export lost 12 lines since it was loaded
            path = demo_folder / "invoice_lines_2026-10.csv"
            lines = path.read_text().splitlines(keepends=True)
            path.write_text("".join(lines[:10] + lines[22:]))
            await pilot.press("i")
            await settle(pilot)
            await pilot.press("enter")
        elif modal == "picker":
            screen.query_one("#grid-organizations", SqlGrid).table.focus()
            await settle(pilot)
            await pilot.press("e")
        else:
            screen.query_one(TabbedContent).active = "invoices"
            await settle(pilot)
            grid = screen.query_one("#grid-invoices", SqlGrid)
            grid.table.focus()
            await settle(pilot)
            if modal == "line-edit":
                await pilot.press("e")
            elif modal in ("bulk-update", "bulk-agreement"):
                await pilot.press("ctrl+a")
                await settle(pilot)
                await pilot.press("E")
                if modal == "bulk-agreement":  # lines of many companies: no agreement is offered, and why
                    await settle(pilot)
                    app.screen.query_one("#field").value = "agreement"
                    await settle(pilot)
                    await pilot.click("#choose")
                    app.clear_notifications()  # the toast of ctrl+a would hide the buttons
            else:
                grid.table.move_cursor(column=7)
                await pilot.press("f")
        await settle(pilot)

    assert snap_compare(make_app(seeded), terminal_size=size, run_before=run_before)


def _hostile_plan():
    """The plan of a line of the hostile organization, as prepare_plan builds it (its customer
    is the organization's name; a new agreement is named after it)."""
    from datetime import date
    from decimal import Decimal

    from cw_tui.rules.additions import AdditionValues
    from cw_tui.rules.sync_plan import CreateAddition, NewAgreement, PeriodState, Plan

    agreement = NewAgreement("CT-00001", 250, 2, f"{HOSTILE_NAME} - CT-00001")
    values = AdditionValues(1000, Decimal(3), Decimal("12.5"), Decimal(10), date(2026, 10, 1), None, "Seats", "Seats")
    creates = [CreateAddition("cwt:L:LN-1", ("LN-1",), agreement, values, 250, HOSTILE_NAME, "USD"),
               # the markup alone, as the Customer column is too narrow for all of HOSTILE_NAME
               CreateAddition("cwt:L:LN-2", ("LN-2",), 5001, values, 250, "[link=http://x]y[/]", "USD")]
    return Plan("2026-10", creates=creates, new_agreements=[agreement], state=PeriodState("2026-10", True, 0))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("view", ["organizations", "invoices", "picker", "plan"])
def test_hostile_names_are_shown_literally(snap_compare, tmp_path: Path, demo_folder: Path, size, view: str) -> None:
    """Issue 11: ESC, BEL, CR/LF and U+202E are one visible glyph each, markup is plain text."""
    store = hostile_store(tmp_path / "h.sqlite3", demo_folder)

    async def run_before(pilot) -> None:
        from textual.widgets import TabbedContent

        from cw_tui.screens.mapping_modals import SyncPlanModal
        from cw_tui.widgets.grid import SqlGrid

        await keys("2")(pilot)
        screen = pilot.app.screen
        if view == "invoices":
            screen.query_one(TabbedContent).active = "invoices"
        elif view == "picker":  # the hostile organization is the first row
            screen.query_one("#grid-organizations", SqlGrid).table.focus()
            await settle(pilot)
            await pilot.press("e")
        elif view == "plan":
            pilot.app.push_screen(SyncPlanModal(_hostile_plan()))
        await settle(pilot)

    assert snap_compare(make_app(store), terminal_size=size, run_before=run_before)
    store.close()
