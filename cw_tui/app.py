"""The cw-tui app: four areas (Dashboard, Mapping, System Logs, Settings), gated until the
setup is done (SPEC §3), with keys, mouse and the command palette."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterable
from datetime import datetime

from rich.text import Text
from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import Screen

from cw_tui.keymap import load_keymap
from cw_tui.rules.safe_text import safe_text
from cw_tui.screens.base import AreaScreen
from cw_tui.screens.dashboard import DashboardScreen
from cw_tui.screens.help import HelpScreen
from cw_tui.screens.logs import LogsScreen
from cw_tui.screens.mapping import MappingScreen
from cw_tui.screens.settings import SettingsScreen
from cw_tui.services import credentials as credential_store
from cw_tui.services import settings as settings_service
from cw_tui.services import system_log
from cw_tui.services.credentials import Credentials, CredentialsError
from cw_tui.services.store import DATABASE_ERRORS, Store, StoreError, now_utc
from cw_tui.widgets.grid import SqlGrid
from cw_tui.widgets.tiles import Tile

AREA_NAMES = {"dashboard": "Dashboard", "mapping": "Mapping", "logs": "System Logs", "settings": "Settings"}


def terminal_is_light() -> bool:
    """Follow the terminal's light/dark choice where it says (COLORFGBG="fg;bg")."""
    choice = os.environ.get("CW_TUI_THEME", "").lower()
    if choice in ("light", "dark"):
        return choice == "light"
    background = os.environ.get("COLORFGBG", "").split(";")[-1]
    return background.isdigit() and int(background) in (7, 15)


class CwTuiApp(App):
    TITLE = "cw-tui"
    SUB_TITLE = "Platform invoices into ConnectWise"
    MODES = {"dashboard": DashboardScreen, "mapping": MappingScreen, "logs": LogsScreen, "settings": SettingsScreen}
    BINDINGS = [
        Binding("1", "area('dashboard')", "Dashboard", id="app.dashboard"),
        Binding("2", "area('mapping')", "Mapping", id="app.mapping"),
        Binding("3", "area('logs')", "Logs", id="app.logs"),
        Binding("4", "area('settings')", "Settings", id="app.settings"),
        Binding("question_mark,f1", "help", "Help", id="app.help"),
        Binding("ctrl+q", "quit", "Quit", id="app.quit"),
    ]
    CSS = """
    Screen { background: $background; }
    Toast { max-width: 60; }
    """

    def __init__(self, store: Store, *, clock: Callable[[], datetime] | None = None,
                 prefill_credentials: Credentials | None = None, keymap: dict[str, str] | None = None,
                 watch_daily_sync: bool = True) -> None:
        super().__init__()
        self.store = store
        self._clock = clock or now_utc
        self.prefill_credentials = prefill_credentials
        self._keymap_override = keymap
        self.watch_daily_sync = watch_daily_sync
        self._daily_done: str | None = None
        self.connection_timeout = 20.0  # Test Connection gives up after this many seconds
        # grid queries run here, off the UI thread, on one warm SQLite connection
        self.db_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cw-tui-db")
        self.theme = "textual-light" if terminal_is_light() else "textual-dark"
        self._allowed: tuple[float, set[str]] | None = None
        # No sliding tab underline: over SSH each animation frame is a screen update sent
        # down the line. TEXTUAL_ANIMATIONS still chooses, when set.
        if "TEXTUAL_ANIMATIONS" not in os.environ:
            self.animation_level = "none"

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Every toast is literal, its control characters made visible: its words come from
        data (names, ConnectWise's answers, the Platform files' problems) as often as not."""
        super().notify(safe_text(message, lines=True), title=safe_text(title), severity=severity, timeout=timeout,
                       markup=markup)

    # --------------------------------------------------------------- a database that fails

    def _handle_exception(self, error: Exception) -> None:
        """The last resort for a database that fails where no screen expected it (a damaged
        file under the Dashboard): Textual stops the failing widget's message loop, so the
        app ends, with a message naming the file and the cause instead of a traceback.
        Screens run their writes through `database_problem` and stay up."""
        if isinstance(error, (*DATABASE_ERRORS, StoreError)):
            # printed through Rich at exit: Text, so a path's [brackets] are not read as markup
            self.exit(return_code=2, message=Text(f"cw-tui: error: {safe_text(self._database_message(error))}"))
            return
        super()._handle_exception(error)

    def _database_message(self, error: BaseException) -> str:
        return system_log.redact(str(error) if isinstance(error, StoreError) else self.store.describe(error))

    def database_problem(self, error: BaseException) -> None:
        """A write the database refused (locked, read-only, full): say so; SQLite rolled it back."""
        message = self._database_message(error)
        try:
            system_log.write(self.store, system_log.Level.ERROR, system_log.Category.CONFIGURATION,
                             "The database refused a change", message)
        except DATABASE_ERRORS:
            pass  # the same problem: the message on screen is what is left
        self.notify(message, title="Database", severity="error", timeout=30, markup=False)

    # --------------------------------------------------------------- state

    def now(self) -> datetime:
        return self._clock()

    def has_credentials(self) -> bool:
        try:
            creds = credential_store.current()
        except CredentialsError:
            return False
        return creds is not None and creds.complete()

    def setup_complete(self) -> bool:
        return self.has_credentials() and settings_service.load_configuration(self.store).agreement_type is not None

    def allowed_areas(self) -> set[str]:
        # Asked for every area binding each time the key hints refresh (every focus change):
        # remembered briefly, and forgotten at once when Settings saves.
        now = time.monotonic()
        if self._allowed is None or now - self._allowed[0] > 2.0:
            if not self.has_credentials():
                areas = {"settings"}
            elif not self.setup_complete():
                areas = {"settings", "logs"}
            else:
                areas = set(AREA_NAMES)
            self._allowed = (now, areas)
        return set(self._allowed[1])

    def credentials_changed(self) -> None:
        self._allowed = None
        for screen in self._all_screens():
            refresh = getattr(screen, "refresh_gating", None)
            if refresh:
                refresh()
        self.refresh_bindings()

    def _all_screens(self) -> Iterable[Screen]:
        for stack in self._screen_stacks.values():
            yield from stack

    # --------------------------------------------------------------- lifecycle

    def on_mount(self) -> None:
        keymap, problem = (self._keymap_override, None) if self._keymap_override is not None else load_keymap()
        if keymap:
            self.set_keymap(keymap)
        self.keymap = keymap
        if problem:
            self.notify(problem, severity="warning", timeout=10)
        self.switch_mode("dashboard" if self.setup_complete() else "settings")
        if self.watch_daily_sync:
            self.set_interval(30, self.check_daily_sync)

    def on_unmount(self) -> None:
        self.db_executor.shutdown(wait=False, cancel_futures=True)

    # --------------------------------------------------------------- navigation

    def action_area(self, mode: str) -> None:
        if mode not in self.allowed_areas():
            reason = ("Save your ConnectWise credentials first (Settings → Authentication)." if not self.has_credentials()
                      else "Choose an Agreement Type first (Settings → Configuration).")
            self.notify(f"{AREA_NAMES[mode]} is not available yet. {reason}", severity="warning")
            return
        if self.current_mode != mode:
            for screen in self._screen_stacks.get(mode, []):
                if isinstance(screen, AreaScreen):
                    screen.stale = True
            self.switch_mode(mode)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "area" and parameters:
            return True if parameters[0] in self.allowed_areas() else None  # None: shown, greyed out
        return True

    def open_target(self, target: str | None) -> None:
        """A tile's target: "mapping:invoices", "logs:ERROR", "settings:configuration"."""
        if not target:
            return
        area, _, detail = target.partition(":")
        self.action_area(area)
        if area not in self.allowed_areas():
            return

        def after() -> None:
            screen = self.screen
            if isinstance(screen, MappingScreen) and detail:
                screen.show_tab(detail)
            elif isinstance(screen, LogsScreen) and detail:
                screen.show_level(detail)
            elif isinstance(screen, SettingsScreen) and detail:
                from textual.widgets import TabbedContent

                screen.query_one(TabbedContent).active = detail

        self.call_after_refresh(after)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        groups = [("Everywhere", list(self.BINDINGS)), ("Dashboard", DashboardScreen.BINDINGS),
                  ("Mapping", MappingScreen.BINDINGS), ("System Logs", LogsScreen.BINDINGS),
                  ("Settings", SettingsScreen.BINDINGS), ("Grids", SqlGrid.BINDINGS), ("Tiles", Tile.BINDINGS)]
        self.push_screen(HelpScreen([(w, [b for b in g if isinstance(b, Binding)]) for w, g in groups], self.keymap or {}))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, name in AREA_NAMES.items():
            if mode in self.allowed_areas():
                yield SystemCommand(f"Go to {name}", f"Open the {name} area", lambda m=mode: self.action_area(m))
        if "mapping" in self.allowed_areas():
            for tab in ("organizations", "products", "invoices"):
                yield SystemCommand(f"Go to {tab.capitalize()}", f"Mapping → {tab.capitalize()}",
                                    lambda t=tab: self.open_target(f"mapping:{t}"))
        yield SystemCommand("Keys", "Every key binding", self.action_help)

    # --------------------------------------------------------------- daily sync

    def check_daily_sync(self) -> None:
        """While the app is open it also syncs at 00:00 UTC (SPEC §11); the engine's claims
        keep it from posting what cron posts at the same moment."""
        config = settings_service.load_configuration(self.store)
        now = self.now()
        today = now.date().isoformat()
        if not config.daily_sync or not self.setup_complete() or self._daily_done == today:
            return
        if now.hour == 0:
            self._daily_done = today
            self.daily_sync()

    @work(exclusive=True, group="daily-sync", exit_on_error=False)
    async def daily_sync(self) -> None:
        from cw_tui.services.connectwise import ConnectWiseClient, ConnectWiseError
        from cw_tui.services.connectwise_data import CacheShrinkRefused
        from cw_tui.services.sync_engine import periods_to_sync, run_sync

        creds = credential_store.current()
        if creds is None:
            return
        try:
            async with ConnectWiseClient(creds) as client:
                for period in periods_to_sync(self.store):
                    result = await run_sync(self.store, client, period, today=self.now().date())
                    self.notify(f"Daily sync of {period}: {result.synced_lines} lines synced, {result.errors} errors",
                                severity="error" if result.errors else "information")
        except (ConnectWiseError, CacheShrinkRefused) as error:
            system_log.write(self.store, system_log.Level.ERROR, system_log.Category.SYNC, "Daily sync failed", error.details())
            self.notify(f"Daily sync failed: {safe_text(error.message)}", severity="error")
        except Exception as error:  # noqa: BLE001 - logged and shown, never lost in a worker
            system_log.write(self.store, system_log.Level.ERROR, system_log.Category.SYNC, "Daily sync failed",
                             f"{type(error).__name__}: {error}")
            self.notify(f"Daily sync failed: {error}", severity="error", markup=False)
