"""What the start does before its first paint (issue 18): Textual parses the stylesheets once,
only app.tcss and the first area's styles are read, Settings' hidden tabs come after the
paint, and each screen file's rules name its own screens (so a file read later changes nothing
already shown). The time itself is benchmarks/startup_bench.py's."""

from __future__ import annotations

import re
from pathlib import Path

from textual.widgets import Select

from cw_tui.app import AREA_STYLES, LATER_STYLES, STYLES
from tests.app_helpers import make_app, run, seeded_store, wait_for


def _started(app) -> dict:
    """Counts the full re-parses of the app's stylesheet (Textual's reparse) from the start on."""
    seen = {"reparses": 0}
    reparse = app.stylesheet.reparse

    def counted() -> None:
        seen["reparses"] += 1
        reparse()

    app.stylesheet.reparse = counted
    return seen


def _read(app) -> set[str]:
    return {Path(path).name for path, _ in app.stylesheet.source if path.endswith(".tcss")}


def test_the_first_start_parses_once_and_mounts_the_hidden_tabs_after_its_paint(tmp_path: Path, demo_folder: Path) -> None:
    store = seeded_store(tmp_path / "s.sqlite3", demo_folder, configured=False)
    app = make_app(store)
    seen = _started(app)
    run(_first_start(app, seen))
    store.close()


async def _first_start(app, seen: dict) -> None:
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: type(app.screen).__name__ == "SettingsScreen")
        assert seen["reparses"] == 0
        assert _read(app) == {"app.tcss", "settings.tcss"}
        # the Configuration tab's form arrives after the first paint, whole
        await wait_for(pilot, lambda: bool(app.screen.query("#agreement-type")))
        assert app.screen.query_one("#agreement-type", Select).prompt == "Choose an agreement type"
        await wait_for(pilot, lambda: bool(app.screen.query("#dictionary-table")))
        app.action_help()  # a modal: the other screens' styles, once
        await pilot.pause()
        assert _read(app) == {"app.tcss", "settings.tcss", LATER_STYLES}
        assert seen["reparses"] == 0


def test_the_configured_start_reads_the_dashboards_styles_only(tmp_path: Path, demo_folder: Path) -> None:
    store = seeded_store(tmp_path / "s.sqlite3", demo_folder)
    app = make_app(store)
    seen = _started(app)
    run(_configured_start(app, seen))
    store.close()


async def _configured_start(app, seen: dict) -> None:
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: type(app.screen).__name__ == "DashboardScreen")
        assert seen["reparses"] == 0 and _read(app) == {"app.tcss", "dashboard.tcss"}
        await pilot.press("2")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "MappingScreen")
        assert _read(app) == {"app.tcss", "dashboard.tcss", LATER_STYLES}


def _rule_subjects(name: str) -> set[str]:
    """The type each selector of a styles file starts with: the screen the rule is about."""
    text = re.sub(r"/\*.*?\*/", "", (STYLES / name).read_text(encoding="utf-8"), flags=re.S)
    selectors = [s for block in re.findall(r"([^{}]+)\{", text) for s in block.split(",")]
    return {re.match(r"\w+", s.strip()).group(0) for s in selectors if s.strip()}


def test_each_styles_file_is_about_its_own_screens() -> None:
    assert _rule_subjects("app.tcss") == {"Screen", "Toast"}
    assert _rule_subjects(AREA_STYLES["settings"]) == {"SettingsScreen"}
    assert _rule_subjects(AREA_STYLES["dashboard"]) == {"DashboardScreen"}
    later = _rule_subjects(LATER_STYLES)
    assert later and not later & {"Screen", "Toast", "SettingsScreen", "DashboardScreen"}
    assert all(subject.endswith(("Screen", "Modal", "Detail", "Practices")) for subject in later)  # never a bare widget
