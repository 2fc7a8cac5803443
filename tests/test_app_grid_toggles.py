"""Issue 12: check boxes say their state in the glyph, `[x]` or `[ ]`, without colour: the
Load Invoices months and the values of a grid's filter list, under NO_COLOR."""

from __future__ import annotations

import pytest

from cw_tui.screens.mapping import MappingScreen
from cw_tui.screens.mapping_modals import LoadInvoicesModal
from cw_tui.widgets.grid import FilterModal, SqlGrid
from tests.app_helpers import make_app, run, wait_for


def screen_text(app) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())




def test_load_invoices_check_boxes_show_their_state_without_colour(seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")

    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("2")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            await pilot.press("i")
            await wait_for(pilot, lambda: isinstance(app.screen, LoadInvoicesModal))
            await pilot.pause()
            text = screen_text(app)
            assert "[ ] Current Month" in text and "[x] Previous Month" in text
            assert "▐X▌" not in text
            app.screen.query_one("#current").focus()
            await pilot.press("space")
            await pilot.pause()
            text = screen_text(app)
            assert "[x] Current Month" in text and "[x] Previous Month" in text
            app.screen.query_one("#previous").focus()
            await pilot.press("space")  # Previous Month, off
            await pilot.pause()
            text = screen_text(app)
            assert "[x] Current Month" in text and "[ ] Previous Month" in text

    run(scenario())


def test_a_filter_list_shows_which_values_are_chosen_without_colour(seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")

    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("2")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            grid = app.screen.query_one("#grid-organizations", SqlGrid)
            await wait_for(pilot, lambda: grid.page is not None)
            grid.action_filter("status")
            await wait_for(pilot, lambda: isinstance(app.screen, FilterModal))
            await pilot.pause()
            lines = [line for line in screen_text(app).splitlines() if "Active" in line or "Inactive" in line]
            assert lines and all("[ ] " in line for line in lines), lines
            await pilot.press("space")  # the first value, chosen
            await pilot.pause()
            rows = [line for line in screen_text(app).splitlines() if "[x] " in line or "[ ] " in line]
            assert "[x] " in rows[0] and all("[ ] " in line for line in rows[1:]), rows
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen) and grid.state.filters)
            grid.action_filter("status")
            await wait_for(pilot, lambda: isinstance(app.screen, FilterModal))
            await pilot.pause()
            rows = [line for line in screen_text(app).splitlines() if "[x] " in line or "[ ] " in line]
            assert sum("[x] " in line for line in rows) == 1  # the filter as it is, shown when the list opens

    run(scenario())
