"""Issue 12, the grids' keys: keys typed quickly into a search box all arrive, in order; escape
and enter leave the box for the rows (the search kept); `/` on System Logs from a tile."""

from __future__ import annotations

import pytest
from textual import events
from textual.widgets import Input

from cw_tui.screens.logs import LogsScreen
from cw_tui.screens.mapping import MappingScreen
from cw_tui.store.grid import contains_pattern
from cw_tui.widgets.grid import SqlGrid
from cw_tui.widgets.grid_table import GridTable
from tests.app_helpers import invoices_grid, make_app, run, wait_for

CHARACTERS = {"slash": "/", "minus": "-", "space": " ", "escape": "\x1b", "enter": "\r"}
KEYS = {"/": "slash", "-": "minus", " ": "space"}


def type_fast(app, *keys: str) -> None:
    """Keys as a terminal delivers a quick typist's (or a paste's): all queued at once, none
    waiting for the one before to be handled (pilot.press waits after each key)."""
    for key in keys:
        key = KEYS.get(key, key)
        event = events.Key(key, CHARACTERS.get(key, key if len(key) == 1 else None))
        event.set_sender(app)
        app._driver.send_message(event)





def matching_lines(store, text: str) -> int:
    like = contains_pattern(text)
    return store.db.execute_sql(
        "SELECT COUNT(*) FROM invoice_line l JOIN organization o ON o.platform_id = l.organization_id "
        "JOIN offer f ON f.platform_id = l.offer_id WHERE l.period = '2026-10' AND (l.invoice_number LIKE ? ESCAPE '\\' "
        "OR o.name LIKE ? ESCAPE '\\' OR l.contract_id LIKE ? ESCAPE '\\' OR l.subscription_name LIKE ? ESCAPE '\\' "
        "OR f.name LIKE ? ESCAPE '\\')", [like] * 5).fetchone()[0]




@pytest.mark.parametrize("text", ["Hospitality", "202610-0001", "skipped", "1414"])
def test_keys_typed_quickly_into_the_search_all_arrive_in_order(seeded, text: str) -> None:
    # the letters of "Hospitality" are keys of the grid and the screen (s sorts, p and i load,
    # a auto-matches), the digits switch areas: typed into the box, each is a letter
    expected = matching_lines(seeded, text)

    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=(120, 40)) as pilot:
            grid = await invoices_grid(app, pilot, settle=False)
            sort_before = grid.state.sort
            type_fast(app, "/", *text)
            search = grid.query_one(".search", Input)
            await wait_for(pilot, lambda: grid.state.search == text and grid.page.total == expected)
            assert search.value == text and app.focused is search
            assert isinstance(app.screen, MappingScreen) and len(app.screen_stack) == 1  # no modal, no other area
            assert grid.state.sort == sort_before  # no `s` reached the grid
            shown = grid.page
            assert len(shown.rows) == min(expected, shown.page_size)

    run(scenario())


def test_escape_and_enter_leave_the_search_box_and_keep_the_search(seeded) -> None:
    """Chosen: the search stays when the box is left. The rows shown are the ones found, ready
    to be marked or opened; ctrl+u in the box clears it."""
    text = "Hospitality"
    expected = matching_lines(seeded, text)
    assert 1 < expected < 20

    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=(120, 40)) as pilot:
            grid = await invoices_grid(app, pilot, settle=False)
            search = grid.query_one(".search", Input)
            # escape: the rows have the keys, the search stays
            type_fast(app, "/", *text, "escape")
            await wait_for(pilot, lambda: grid.state.search == text and grid.page.total == expected)
            assert isinstance(app.focused, GridTable) and search.value == text
            # `down` moves the cursor, space marks
            type_fast(app, "down", "space")
            await wait_for(pilot, lambda: grid.marked_count() == 1)
            assert grid.table.cursor_row == 2  # down, then space marks the row and steps on
            marked = next(iter(grid.marked))
            assert marked == grid.page.keys[1]
            # enter does the same: the space typed right after it marks a row, it is not a letter
            type_fast(app, "/", "ctrl+u", *"Alder", "enter", "space")
            await wait_for(pilot, lambda: grid.state.search == "Alder" and grid.page.total == matching_lines(seeded, "Alder"))
            await wait_for(pilot, lambda: grid.marked_count() == 2)
            assert isinstance(app.focused, GridTable) and search.value == "Alder"
            await pilot.press("slash")
            assert app.focused is search and search.value == "Alder"
            # `/` typed in the box is a letter of the search
            await pilot.press("end", "slash")
            assert search.value == "Alder/"

    run(scenario())


def test_escape_and_enter_in_the_page_number(seeded) -> None:
    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=(120, 40)) as pilot:
            grid = await invoices_grid(app, pilot, settle=False)
            assert grid.page.pages > 3
            number = grid.query_one(".page-number", Input)
            number.focus()
            await pilot.pause()
            type_fast(app, "ctrl+u", "3", "escape")
            await wait_for(pilot, lambda: isinstance(app.focused, GridTable))
            await pilot.pause(0.2)
            assert number.value == "1" and grid.page.page == 1  # escape: nothing changes
            number.focus()
            await pilot.pause()
            type_fast(app, "ctrl+u", "3", "enter")
            await wait_for(pilot, lambda: grid.page.page == 3 and isinstance(app.focused, GridTable))
            assert number.value == "3"

    run(scenario())


def test_slash_on_system_logs_from_a_tile_takes_keys_typed_quickly(seeded) -> None:
    expected_at_least = seeded.db.execute_sql(
        "SELECT COUNT(*) FROM log_entry WHERE category LIKE '%skipped%' OR summary LIKE '%skipped%' "
        "OR details LIKE '%skipped%'").fetchone()[0]
    assert expected_at_least >= 1

    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("3")
            await wait_for(pilot, lambda: isinstance(app.screen, LogsScreen))
            grid = app.screen.query_one(SqlGrid)
            await wait_for(pilot, lambda: grid.page is not None and grid.page.total > 1)
            app.screen.query_one("#tile-errors").focus()
            await pilot.pause()
            expected = seeded.db.execute_sql(  # with the entries of this start
                "SELECT COUNT(*) FROM log_entry WHERE category LIKE '%skipped%' OR summary LIKE '%skipped%' "
                "OR details LIKE '%skipped%'").fetchone()[0]
            type_fast(app, "/", *"skipped")
            search = grid.query_one(".search", Input)
            await wait_for(pilot, lambda: grid.state.search == "skipped" and grid.page.total == expected)
            assert app.focused is search and search.value == "skipped"
            assert isinstance(app.screen, LogsScreen)
            type_fast(app, "escape")
            await wait_for(pilot, lambda: isinstance(app.focused, GridTable))
            assert search.value == "skipped" and grid.page.total == expected

    run(scenario())
