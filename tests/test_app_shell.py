"""Issue 12, the app shell: `/` from a tile, the 401 message whole at 80x24, the command
palette's screen actions, a focus that shows in dark, light and NO_COLOR, the Settings tab
keys, the feedback of Reload agreement types, and short, few toasts."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Select, Static, TabbedContent, Tabs
from textual.widgets._toast import Toast

from cw_tui.screens.dashboard import DashboardScreen
from cw_tui.screens.logs import LogsScreen
from cw_tui.screens.mapping import BestPractices, MappingScreen
from cw_tui.screens.settings import SettingsScreen
from cw_tui.services import system_log
from cw_tui.store import open_store
from cw_tui.widgets.grid import SqlGrid
from cw_tui.widgets.grid_table import GridTable
from cw_tui.widgets.tiles import Tile
from tests.app_helpers import make_app, run, seeded_store, wait_for
from tests.sandbox_helpers import sandbox_thread


def screen_text(app) -> str:
    """What the terminal shows, one line per row."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def region_text(app, widget: Widget) -> str:
    """What the terminal shows where the widget is."""
    region = widget.region
    strips = app.screen._compositor.render_strips()
    return "\n".join(strips[y].crop(region.x, region.right).text for y in range(region.y, region.bottom))


def words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def looks(app, widget: Widget) -> list[tuple[str, bool, bool, bool, bool]]:
    """The widget's cells as drawn, without their colours: (character, bold, reverse,
    underline, italic). A mark of focus that differs here shows without colour too."""
    region = widget.region
    strips = app.screen._compositor.render_strips()
    cells = []
    for y in range(region.y, region.bottom):
        for segment in strips[y].crop(region.x, region.right):
            style = segment.style
            for character in segment.text:
                cells.append((character, bool(style and style.bold), bool(style and style.reverse),
                              bool(style and style.underline), bool(style and style.italic)))
    return cells


def plain_marks(app, widget: Widget) -> list[tuple[str, bool, bool]]:
    return [(character, reverse, underline) for character, _, reverse, underline, _ in looks(app, widget)]




def test_slash_on_system_logs_goes_to_the_search_from_a_tile(seeded) -> None:
    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("3")
            await wait_for(pilot, lambda: isinstance(app.screen, LogsScreen))
            grid = app.screen.query_one(SqlGrid)
            await wait_for(pilot, lambda: grid.page is not None and grid.page.total > 1)
            app.screen.query_one("#tile-errors", Tile).focus()
            await pilot.pause()
            assert "/ Search" in screen_text(app).splitlines()[-1]  # the key bar says so, on the tile
            await pilot.press("slash", *"inactive")
            search = grid.query_one(".search", Input)
            assert app.focused is search and search.value == "inactive"
            await wait_for(pilot, lambda: grid.page.total == 1)

    run(scenario())


def test_the_401_message_is_shown_whole_at_80x24(tmp_path: Path) -> None:
    with sandbox_thread() as sandbox, open_store(tmp_path / "s.sqlite3") as store:
        async def scenario() -> None:
            app = make_app(store, prefill_credentials=replace(sandbox.credentials, private_key="wrong-private-key"))
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.pause()
                await pilot.press("ctrl+t")
                status = app.screen.query_one("#test-status", Static)
                await wait_for(pilot, lambda: "✗" in str(status.render()))
                await pilot.pause()
                message = str(status.render())
                assert "(401: Password or user name is invalid.)" in message and message.endswith("Client ID")
                assert words(message) in words(screen_text(app))

        run(scenario())


def test_the_command_palette_offers_the_actions_of_the_screen_shown(seeded) -> None:
    async def scenario() -> None:
        app = make_app(seeded, keymap={"mapping.best_practices": "f6"})
        async with app.run_test(size=(100, 30)) as pilot:
            def offered() -> dict[str, str]:
                return {command.title: command.help for command in app.get_system_commands(app.screen)}

            await pilot.press("2")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            await wait_for(pilot, lambda: isinstance(app.focused, GridTable))
            mapping = offered()
            for title in ("Sync to PSA", "Load invoices", "Load products", "Auto-match", "Sync orgs", "Export CSV",
                          "Best practices", "Go to Invoices"):
                assert title in mapping, (title, mapping)
            assert mapping["Best practices"] == "key f6 · mapping.best_practices"  # as the keymap has it
            assert mapping["Export CSV"] == "key ^e · grid.export"
            assert "Dashboard" not in mapping  # the areas are offered as "Go to …"

            # chosen in the palette, an action runs on its screen
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*"best practices")
            await pilot.pause(0.3)  # the palette searches in the background
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, BestPractices))
            await pilot.press("escape")

            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            await pilot.press("3")
            await wait_for(pilot, lambda: isinstance(app.screen, LogsScreen))
            logs = offered()
            assert {"Refresh", "Level", "Live pane", "Search", "Export CSV"} <= set(logs)
            assert "Sync to PSA" not in logs
            await pilot.press("4")
            await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen))
            settings = offered()
            assert settings["Test connection"] == "key ^t · settings.test" and "Save" in settings

    run(scenario())


FOCUSABLE = [  # (keys that show it, a Settings tab, the widget, a modal to close after)
    (("4",), None, "#field-url", False),
    (("4",), None, "#test", False),
    (("4",), "configuration", "#agreement-type", False),
    (("4",), "configuration", "#daily-sync", False),
    (("4",), None, "Tabs", False),
    (("3",), None, "GridTable", False),
    (("3",), None, "#tile-errors", False),
    (("1",), None, "#tile-orgs", False),
    (("2", "i"), None, "#current", True),  # Load Invoices' checkboxes
    (("question_mark",), None, "DataTable", True),  # Help
]


@pytest.mark.parametrize("mode", ["dark", "light", "no-color"])
def test_the_focused_widget_is_plain_in_dark_light_and_no_color(seeded, monkeypatch: pytest.MonkeyPatch,
                                                                  mode: str) -> None:
    """Each kind of focusable widget is drawn otherwise when focused, and not only in its
    colours, nor only in bold (which some terminals show as a colour): the cells differ in
    their characters (a border) or in reverse video or underline."""
    monkeypatch.setenv("CW_TUI_THEME", "light" if mode == "light" else "dark")
    if mode == "no-color":
        monkeypatch.setenv("NO_COLOR", "1")

    async def scenario() -> None:
        app = make_app(seeded)
        same = []
        async with app.run_test(size=(100, 30)) as pilot:
            assert app.no_color is (mode == "no-color")
            assert app.theme == ("textual-light" if mode == "light" else "textual-dark")
            for keys, tab, selector, modal in FOCUSABLE:
                for key in keys:
                    await pilot.press(key)
                    await pilot.pause()
                if tab:
                    app.screen.query_one(TabbedContent).active = tab
                await pilot.pause()
                await app.workers.wait_for_complete()
                widget = app.screen.query_one(selector)
                for field in app.screen.query(Input):
                    field.cursor_blink = False
                app.screen.set_focus(None)
                await pilot.pause()
                blurred = plain_marks(app, widget)
                widget.focus()
                await pilot.pause()
                assert app.focused is widget
                if plain_marks(app, widget) == blurred:
                    same.append(selector)
                if modal:
                    await pilot.press("escape")
                    await pilot.pause()
        assert not same, f"these look the same focused and not, in {mode}: {same}"

    run(scenario())


def test_the_focus_mark_is_reverse_video_on_a_field_and_underline_on_a_checkbox(seeded,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The mark itself, not just any difference, in NO_COLOR."""
    monkeypatch.setenv("NO_COLOR", "1")

    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("4")
            await pilot.pause()
            field = app.screen.query_one("#field-company_id", Input)
            field.cursor_blink = False
            field.focus()
            await pilot.press("end")
            await pilot.pause()
            cells = looks(app, field)
            assert "".join(c[0] for c in cells).startswith("sandbox")
            assert all(reverse for _, _, reverse, _, _ in cells[:7])
            await pilot.press("escape", "2")  # out of the field first: there "2" is text
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            await pilot.press("i")
            await pilot.pause()
            box = app.screen.query_one("#current", Checkbox)
            box.focus()
            await pilot.pause()
            cells = looks(app, box)
            start = "".join(c[0] for c in cells).index("Current Month")
            label = cells[start:start + len("Current Month")]
            assert label and all(bold and underline for _, bold, _, underline, _ in label)

    run(scenario())


def test_settings_has_the_tab_keys_of_mapping(seeded) -> None:
    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("4")
            await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen))
            content = app.screen.query_one(TabbedContent)
            assert isinstance(app.focused, Tabs)  # the tabs first: the area buttons are out of the Tab order
            await pilot.press("right_square_bracket")
            assert content.active == "configuration"
            await pilot.press("right_square_bracket")
            assert content.active == "dictionary"
            await pilot.press("right_square_bracket")
            assert content.active == "authentication"
            await pilot.press("left_square_bracket")
            assert content.active == "dictionary"
            await pilot.press("left_square_bracket", "left_square_bracket")
            assert content.active == "authentication"

            # in a field, `[` is text (an IPv6 URL); escape leaves the field for the tabs
            url = app.screen.query_one("#field-url", Input)
            url.focus()
            url.value = "http://"
            await pilot.press("end", "left_square_bracket")
            assert url.value == "http://[" and content.active == "authentication"
            await pilot.press("escape")
            assert isinstance(app.focused, Tabs)
            await pilot.press("right_square_bracket")
            assert content.active == "configuration"

            # from deep in the Configuration form, one key to the tabs
            await pilot.pause()
            app.screen.query_one("#name-user-correction", Input).focus()
            await pilot.press("escape", "left_square_bracket")
            assert content.active == "authentication"

    run(scenario())


def test_reload_agreement_types_says_what_it_does_next_to_the_button(tmp_path: Path, demo_folder: Path) -> None:
    with sandbox_thread(latency_ms=300) as sandbox:
        store = seeded_store(tmp_path / "s.sqlite3", demo_folder)
        from cw_tui.services import credentials as credential_store
        from cw_tui.store import AgreementType

        credential_store.save(sandbox.credentials)
        AgreementType.delete().where(AgreementType.id == 1).execute()  # the cache lacks one of ConnectWise's

        async def scenario() -> None:
            app = make_app(store)
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.press("4")
                await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen))
                app.screen.query_one(TabbedContent).active = "configuration"
                await wait_for(pilot, lambda: bool(app.screen.query("#reload-types")))
                button = app.screen.query_one("#reload-types", Button)
                status = app.screen.query_one("#types-status", Static)
                select = app.screen.query_one("#agreement-type", Select)
                assert len(select._options) == 1 + 1  # the blank and Cloud Services
                assert select.value == 2
                await pilot.pause()
                await pilot.click("#reload-types")
                await wait_for(pilot, lambda: "Loading agreement types" in str(status.render()))
                assert button.disabled  # busy
                await wait_for(pilot, lambda: "✓" in str(status.render()))
                assert not button.disabled
                active = sum(1 for t in sandbox.sandbox.state.agreement_types.values() if not t["inactiveFlag"])
                assert str(status.render()) == f"✓ {active} agreement types loaded from ConnectWise."
                assert len(select._options) == 1 + active and select.value == 2  # updated, the choice kept
                # next to the button, on screen
                assert status.region.y == button.region.y and status.region.x > button.region.right - 1
                assert str(status.render())[:20] in screen_text(app)

        run(scenario())
        store.close()


def test_toasts_are_few_and_short_and_a_cut_one_is_whole_in_the_system_logs(seeded) -> None:
    long = "Sync of 2026-10: " + ", ".join(f"line LN-{n:04d} was posted" for n in range(40))

    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))
            for n in range(6):
                app.notify(f"message {n}")
            app.notify(long, severity="warning")
            await pilot.pause()
            await pilot.pause()
            toasts = list(app.screen.query(Toast))
            assert len(toasts) == 3
            shown = [str(toast.render()) for toast in toasts]
            assert "message 4" in shown[0] and "message 5" in shown[1]  # the newest stay
            assert shown[2].endswith("…") and len(shown[2]) <= 160 and shown[2].startswith("Sync of 2026-10: line LN-0000")

    run(scenario())
    [entry] = [e for e in system_log.entries(seeded, limit=1000) if e.details == long]
    assert entry.level == "WARNING" and entry.summary.endswith("…") and len(entry.summary) <= 160


@pytest.mark.parametrize("size", [(80, 24), (200, 50)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_dashboard_tiles_and_help_are_not_cut(seeded, size) -> None:
    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=size) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))
            tiles = list(app.screen.query(Tile))
            await wait_for(pilot, lambda: all(tile.figure for tile in tiles))
            await pilot.pause()
            shown = words(screen_text(app))
            for tile in tiles:
                for line in str(tile.render()).splitlines():
                    assert words(line) in shown, (tile.id, line)
            assert "…" not in shown
            assert "Last Organizations Sync" in shown and "2026-10: " not in shown  # the period is in the title

            await pilot.press("question_mark")
            await pilot.pause()
            help_text = screen_text(app)
            title = app.screen.query_one(".title", Static)
            assert title.region in app.screen.region
            assert words(str(title.render())) == words(region_text(app, title))
            for binding_id in ("app.dashboard", "app.settings", "dashboard.refresh", "mapping.sync_organizations"):
                assert re.search(rf"\b{re.escape(binding_id)}\b", help_text), binding_id

    run(scenario())
