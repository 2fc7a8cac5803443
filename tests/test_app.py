"""The real app driven by Pilot (issue 5, must show 1)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from textual.widgets import Button, Input, Select, Static, Switch, TabbedContent

from cw_tui.sandbox.server import free_port
from cw_tui.screens.dashboard import DashboardScreen
from cw_tui.screens.logs import LogDetail, LogsScreen
from cw_tui.screens.mapping import MappingScreen
from cw_tui.screens.settings import SettingsScreen
from cw_tui.services import credentials as credential_store
from cw_tui.services import settings, system_log
from cw_tui.store import open_store
from cw_tui.widgets.grid import SqlGrid
from tests.app_helpers import make_app, run, seeded_store, wait_for
from tests.sandbox_helpers import sandbox_thread


def fill(screen, creds) -> None:
    for name in ("url", "company_id", "public_key", "private_key", "client_id"):
        screen.query_one(f"#field-{name}", Input).value = getattr(creds, name)


def status_text(screen) -> str:
    return str(screen.query_one("#test-status", Static).render())


def test_gating_banner_save_and_configuration(tmp_path: Path) -> None:
    with sandbox_thread() as sandbox, open_store(tmp_path / "s.sqlite3") as store:
        async def scenario() -> None:
            app = make_app(store, prefill_credentials=sandbox.credentials)
            async with app.run_test(size=(100, 30)) as pilot:
                await pilot.pause()
                assert isinstance(app.screen, SettingsScreen)
                assert app.allowed_areas() == {"settings"}
                assert app.screen.query_one("#area-dashboard", Button).disabled
                await pilot.press("1")  # gated: stays on Settings
                await pilot.pause()
                assert isinstance(app.screen, SettingsScreen)
                assert "Start here" in str(app.screen.query_one("#banner", Static).render())

                await pilot.press("ctrl+t")
                await wait_for(pilot, lambda: "Connected to ConnectWise v2025.1" in status_text(app.screen))
                assert credential_store.current() is None  # testing saves nothing
                await pilot.press("ctrl+s")
                await wait_for(pilot, lambda: credential_store.current() is not None)
                assert credential_store.current() == sandbox.credentials
                await wait_for(pilot, lambda: app.screen.query_one(TabbedContent).active == "configuration")
                banner = str(app.screen.query_one("#banner", Static).render())
                assert "choose an Agreement Type" in banner
                assert app.allowed_areas() == {"settings", "logs"}
                await pilot.press("1")
                await pilot.pause()
                assert isinstance(app.screen, SettingsScreen)  # still gated until an Agreement Type is saved

                select = app.screen.query_one("#agreement-type", Select)
                await wait_for(pilot, lambda: len(select._options) > 1)
                select.value = 2  # Cloud Services
                app.screen.query_one("#daily-sync", Switch).value = True
                app.screen.query_one("#end-usage-fee", Select).value = "last_day_of_invoice_month"
                app.screen.query_one("#name-cycle-fee", Input).value = "Monthly subscription"
                await pilot.press("ctrl+s")
                await pilot.pause()
                assert not app.screen.query_one("#banner", Static).display
                await pilot.press("1")
                await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))

        run(scenario())
        config = settings.load_configuration(store)
        assert config.agreement_type is not None and config.agreement_type.name == "Cloud Services"
        assert config.daily_sync is True
        assert config.rules.end_rule(next(iter(config.end_rules))).value == "last_day_of_invoice_month"
        assert list(config.charge_type_names.values()) == ["Monthly subscription"]

        async def reopened() -> None:
            app = make_app(store)
            async with app.run_test(size=(100, 30)) as pilot:
                await pilot.pause()
                assert isinstance(app.screen, DashboardScreen)  # setup done: the app opens on the Dashboard
                await pilot.press("4")
                await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen))
                screen = app.screen
                assert screen.query_one("#daily-sync", Switch).value is True
                assert screen.query_one("#name-cycle-fee", Input).value == "Monthly subscription"
                assert screen.query_one("#end-usage-fee", Select).value == "last_day_of_invoice_month"
                assert screen.query_one("#agreement-type", Select).value == 2
                # saved secrets are never shown again
                assert screen.query_one("#field-private_key", Input).value == ""
                assert "saved" in screen.query_one("#field-private_key", Input).placeholder

        run(reopened())


def test_each_connection_failure_has_its_own_message(tmp_path: Path) -> None:
    with sandbox_thread() as sandbox, open_store(tmp_path / "s.sqlite3") as store:
        good = sandbox.credentials
        cases = [
            (replace(good, private_key="wrong-private-key"), "Bad credentials"),
            (replace(good, url=f"http://127.0.0.1:{free_port()}"), "Host unreachable"),
            (replace(good, url=good.url + "/v1999_1/apis/3.0"), "Wrong URL or codebase"),
            (replace(good, url="http://cw.example.com"), "Check the fields"),
        ]

        async def scenario() -> None:
            app = make_app(store)
            async with app.run_test(size=(100, 30)) as pilot:
                await pilot.pause()
                messages = []
                for creds, expected in cases:
                    fill(app.screen, creds)
                    await pilot.press("ctrl+t")
                    await wait_for(pilot, lambda: "✗" in status_text(app.screen))
                    text = status_text(app.screen)
                    assert expected in text, text
                    assert "wrong-private-key" not in text
                    messages.append(text)
                    app.screen.query_one("#test-status", Static).update("")
                sandbox.sandbox.faults.latency_ms = 3000
                fill(app.screen, good)
                await pilot.press("ctrl+t")
                await wait_for(pilot, lambda: "✗" in status_text(app.screen), timeout=15)
                assert "Timed out" in status_text(app.screen)
                assert len(set(messages)) == len(cases)
                assert credential_store.current() is None  # a failed test never saves

        run(scenario())
        errors = system_log.entries(store, system_log.LogQuery(level=system_log.Level.ERROR))
        assert len(errors) >= len(cases) and all("wrong-private-key" not in e.details for e in errors)


def test_save_goes_to_mapping_when_setup_is_complete(tmp_path: Path, demo_folder: Path) -> None:
    with sandbox_thread() as sandbox:
        store = seeded_store(tmp_path / "s.sqlite3", demo_folder)

        async def scenario() -> None:
            app = make_app(store)
            async with app.run_test(size=(100, 30)) as pilot:
                await pilot.press("4")
                await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen))
                fill(app.screen, sandbox.credentials)  # replacing the saved credentials
                await pilot.press("ctrl+s")
                await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))

        run(scenario())
        assert credential_store.current() == sandbox.credentials
        store.close()


def test_log_filter_search_detail_and_live_pane(tmp_path: Path, demo_folder: Path) -> None:
    store = seeded_store(tmp_path / "s.sqlite3", demo_folder)

    async def scenario() -> None:
        app = make_app(store)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("3")
            await wait_for(pilot, lambda: isinstance(app.screen, LogsScreen))
            grid = app.screen.query_one(SqlGrid)
            await wait_for(pilot, lambda: grid.page is not None and grid.page.total >= 6)
            total = grid.page.total
            app.screen.query_one("#level", Select).value = "ERROR"
            await wait_for(pilot, lambda: grid.page.total == 1)
            app.screen.query_one("#level", Select).value = "ALL"
            await wait_for(pilot, lambda: grid.page.total == total)
            grid.set_search("not fully mapped")
            await wait_for(pilot, lambda: grid.page.total == 1)
            assert "skipped" in grid.page.rows[0][3]
            grid.table.focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, LogDetail))
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, LogsScreen))

            # an entry written meanwhile (as by a sync in another process) shows in the live pane
            system_log.write(store, system_log.Level.ERROR, system_log.Category.SYNC, "Live pane test entry")
            live = app.screen.query_one("#live")
            await wait_for(pilot, lambda: any("Live pane test entry" in line.text for line in live.lines), timeout=5)

    run(scenario())
    store.close()


def test_tiles_lead_to_their_screens_and_help_lists_bindings(tmp_path: Path, demo_folder: Path) -> None:
    store = seeded_store(tmp_path / "s.sqlite3", demo_folder)

    async def scenario() -> None:
        app = make_app(store, keymap={"app.logs": "f3"})
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))
            tile = app.screen.query_one("#tile-errors")
            await wait_for(pilot, lambda: tile.figure != "")
            tile.focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, LogsScreen))
            await wait_for(pilot, lambda: app.screen.query_one("#level", Select).value == "ERROR")
            await pilot.press("1")
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))
            await pilot.press("f3")  # remapped from 3
            await wait_for(pilot, lambda: isinstance(app.screen, LogsScreen))
            await pilot.press("question_mark")
            await pilot.pause()
            from cw_tui.screens.help import HelpScreen

            assert isinstance(app.screen, HelpScreen)
            keys = {row[3]: row[1] for row in app.screen.rows}
            assert keys["app.logs"] == "f3" and keys["grid.sort"] == "s" and "app.quit" in keys

    run(scenario())
    store.close()


def test_a_malformed_url_gets_a_field_message_at_once_and_every_failed_test_is_logged(tmp_path: Path) -> None:
    """Issue 10, part 8: nothing is sent for a malformed URL, the message is next to the API
    URL field at once, the test is never left running; IPv6 loopback connects; a redirect
    is refused; each failure is in the System Logs (Authentication)."""
    from cw_tui.sandbox.odd_answers import OddAnswer

    with sandbox_thread(host="::1") as sandbox, open_store(tmp_path / "s.sqlite3") as store:
        async def scenario() -> None:
            app = make_app(store)
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.pause()
                screen = app.screen
                message = screen.query_one("#url-message", Static)
                assert not message.display
                fill(screen, replace(sandbox.credentials, url="https://host:58371z"))
                await pilot.press("ctrl+t")
                await pilot.pause()  # no waiting: nothing was sent
                assert message.display and "invalid port '58371z'" in str(message.render())
                assert "Check the fields" in status_text(screen)
                assert not [w for w in app.workers if w.group == "connection"]
                assert not screen.query_one("#test", Button).disabled  # not left busy
                assert app.focused is screen.query_one("#field-url", Input)

                # typing clears the message; leaving the field judges it again
                url_field = screen.query_one("#field-url", Input)
                url_field.value = "http://[::1"
                await pilot.pause()
                assert not message.display
                await pilot.press("tab")
                await pilot.pause()
                assert message.display and "malformed [IPv6] address" in str(message.render())

                # IPv6 loopback works
                url_field.value = sandbox.url
                await pilot.press("ctrl+t")
                await wait_for(pilot, lambda: "Connected to ConnectWise" in status_text(screen))
                assert not message.display

                # a redirect is refused, never followed
                sandbox.sandbox.faults.odd_answers.append(
                    OddAnswer("redirect", "/system/info", {"status": 301, "json_body": True}))
                await pilot.press("ctrl+t")
                await wait_for(pilot, lambda: "✗" in status_text(screen))
                assert "Redirected" in status_text(screen) and "check the API URL" in status_text(screen)
                assert credential_store.current() is None

        run(scenario())
        entries = system_log.entries(store, system_log.LogQuery(category=system_log.Category.AUTHENTICATION))
        failed = [e for e in reversed(entries) if e.level == "ERROR"]
        assert [e.summary for e in failed] == ["Connection test failed; credentials not saved"] * 2
        assert "invalid port '58371z'" in failed[0].details and "with 301 (" in failed[1].details and "a redirect to" in failed[1].details
        assert any(e.level == "INFO" and "Connected to ConnectWise" in e.summary for e in entries)
