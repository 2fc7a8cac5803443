"""Issue 18: the grid's filter list, page box and tabs keep their keys and behaviour while
they paint fewer frames: the filter list is one screen per grid, filled anew each time it opens
and closed with the filtered page; enter in the page box holds the repaints until the page is
shown, never longer, and a key typed in the search until the page it finds (briefly at most); the
tabs' underline follows the tab shown."""

from __future__ import annotations

from textual.widgets import Input, SelectionList, TabbedContent
from textual.widgets._tabs import Underline

from cw_tui.screens.mapping import MappingScreen
from cw_tui.widgets.grid import FilterModal, SqlGrid
from tests.app_helpers import invoices_grid, make_app, run, wait_for


def option_texts(modal: FilterModal) -> list[str]:
    values = modal.query_one(SelectionList)
    return [str(values.get_option_at_index(n).prompt) for n in range(values.option_count)]


def test_the_filter_list_is_filled_anew_for_each_column_and_applies_with_the_page(seeded) -> None:
    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=(120, 40)) as pilot:
            grid = await invoices_grid(app, pilot)
            grid.action_filter("charge_type")
            await wait_for(pilot, lambda: isinstance(app.screen, FilterModal))
            await pilot.pause()
            first = app.screen
            charge_types = option_texts(first)
            assert charge_types and first.focused is first.query_one(SelectionList)
            await pilot.press("escape")  # cancelled: nothing filtered, the rows have the keys again
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            assert not grid.state.filters and grid.table.has_focus

            grid.action_filter("mapping")
            await wait_for(pilot, lambda: isinstance(app.screen, FilterModal))
            await pilot.pause()
            assert app.screen is first  # the same screen, other values
            statuses = option_texts(first)
            assert statuses != charge_types and not first.query_one(SelectionList).selected
            before = grid.page
            await pilot.press("space", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            # it closed with the filtered page, not before it
            assert grid.page is not before and grid.state.filter_values("mapping")
            assert 0 < grid.page.total < before.total and grid.table.has_focus

            grid.action_filter("mapping")  # the filter as it is, shown when the list opens again
            await wait_for(pilot, lambda: isinstance(app.screen, FilterModal))
            assert len(app.screen.query_one(SelectionList).selected) == 1
            await pilot.click("#clear")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen) and not grid.state.filters)

    run(scenario())


def test_enter_in_the_page_box_shows_the_page_and_paints_again(seeded) -> None:
    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=(120, 40)) as pilot:
            grid = await invoices_grid(app, pilot)
            number = grid.query_one(".page-number", Input)
            number.focus()
            await pilot.pause()
            number.value = str(grid.page.pages)
            await pilot.press("enter")
            await wait_for(pilot, lambda: grid.page.page == grid.page.pages)
            await pilot.pause()
            assert app._batch_count == 0 and grid.table.has_focus  # the repaints held no longer
            number.focus()
            await pilot.pause()
            number.value = ""  # nothing typed: no page to fetch, nothing held
            await pilot.press("enter")
            await pilot.pause()
            assert app._batch_count == 0 and number.value == str(grid.page.page)

    run(scenario())


def test_the_underline_is_under_the_tab_shown(seeded) -> None:
    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("2")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            await pilot.pause()
            content = app.screen.query_one(TabbedContent)
            underline = content.query_one(Underline)
            for key, tab in (("right_square_bracket", "products"), ("right_square_bracket", "invoices"),
                             ("left_square_bracket", "products")):
                await pilot.press(key)
                await wait_for(pilot, lambda tab=tab: content.active == tab)
                await pilot.pause()
                shown = content.query_one(f"#--content-tab-{tab}")
                start, end = shown.virtual_region.shrink(shown.styles.gutter).column_span
                assert (underline.highlight_start, underline.highlight_end) == (start, end)
                assert app.screen.query_one(f"#grid-{tab}", SqlGrid).table.has_focus

    run(scenario())


def test_a_page_shown_a_moment_makes_its_kept_mapping_status_ahead_of_the_first_sort(seeded) -> None:
    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=(120, 40)) as pilot:
            grid = await invoices_grid(app, pilot)
            cache = grid._cache
            assert "mapping" not in cache._kept  # nothing made before the page has been shown a while
            await wait_for(pilot, lambda: "mapping" in cache._kept and SqlGrid._prefilling is None)
            made = dict(cache._kept)
            grid.state = grid.state.with_sort_key("mapping")
            before = grid.page
            grid.reload()
            await wait_for(pilot, lambda: grid.page is not before)
            # the sort read the table made ahead: the same rows of the same data, not made again
            assert cache._kept == made and grid.page.total == before.total

    run(scenario())


def test_a_key_typed_in_the_search_is_painted_with_the_page_it_finds(seeded) -> None:
    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=(120, 40)) as pilot:
            grid = await invoices_grid(app, pilot)
            painted: list[tuple[object, str]] = []  # (the page shown, the box's text) at each repaint
            screen, search = app.screen, grid.query_one(".search", Input)
            paint = screen._compositor_refresh

            def watched() -> None:
                paint()
                painted.append((grid.page, search.value))

            screen._compositor_refresh = watched
            await pilot.press("slash")
            await pilot.pause()
            before = grid.page
            painted.clear()
            await pilot.press("H")
            await wait_for(pilot, lambda: grid.page is not before)
            await pilot.pause()
            # no frame with the letter and the old rows: the first frame has both new
            assert painted and painted[0] == (grid.page, "H") and grid.page.total < before.total
            assert app._batch_count == 0

            # the database thread busy (a long query of another grid): the letter is seen at
            # once all the same, the rows when they come
            import threading

            free = threading.Event()
            app.db_executor.submit(free.wait, 5)
            before = grid.page
            painted.clear()
            await pilot.press("a")
            await pilot.pause(0.3)  # HOLD_SEARCH, well under it
            assert grid.page is before and ("Ha" in {text for _, text in painted})
            free.set()
            await wait_for(pilot, lambda: grid.page is not before)
            await pilot.pause()
            assert painted[-1] == (grid.page, "Ha") and app._batch_count == 0

    run(scenario())
