"""The cw-tui app: four areas (Dashboard, Mapping, System Logs, Settings), gated until the
setup is done (SPEC §3), with keys, mouse and the command palette."""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import Notify, SeverityLevel
from textual.screen import Screen

from cw_tui.keymap import load_keymap
from cw_tui.rules.safe_text import safe_text
from cw_tui.rules.words import plural
from cw_tui.screens.base import AreaScreen
from cw_tui.services import credentials as credential_store
from cw_tui.services import settings as settings_service
from cw_tui.services import system_log
from cw_tui.services.credentials import Credentials, CredentialsError
from cw_tui.store import DATABASE_ERRORS, Store, StoreError, now_utc
from cw_tui.store.errors import STORE_ERRORS
from cw_tui.tasks import run_service
from cw_tui.widgets.focus import FOCUS_CSS

AREA_NAMES = {"dashboard": "Dashboard", "mapping": "Mapping", "logs": "System Logs", "settings": "Settings"}
MAX_TOASTS = 3  # more would cover half of the grid
TOAST_CHARS = 160  # about three lines of a toast
TOAST_LINES = 3


def toast_text(text: str, limit: int = TOAST_CHARS) -> str:
    """The text cut to a toast's size, with "…" where it was cut."""
    lines = text.splitlines() or [""]
    cut = "\n".join(lines[:TOAST_LINES])
    if len(cut) > limit:
        cut = cut[:limit - 1].rstrip()
    return cut if cut == text.rstrip("\n") else cut.rstrip() + "…"


def terminal_is_light() -> bool:
    """Follow the terminal's light/dark choice where it says (COLORFGBG="fg;bg")."""
    choice = os.environ.get("CW_TUI_THEME", "").lower()
    if choice in ("light", "dark"):
        return choice == "light"
    background = os.environ.get("COLORFGBG", "").split(";")[-1]
    return background.isdigit() and int(background) in (7, 15)


# Each area's screen is imported when it is first shown: the start imports the first one only
# (Settings or the Dashboard), not the grids of Mapping and System Logs.
SCREEN_CLASSES = {"dashboard": ("dashboard", "DashboardScreen"), "mapping": ("mapping", "MappingScreen"),
                  "logs": ("logs", "LogsScreen"), "settings": ("settings", "SettingsScreen"), "help": ("help", "HelpScreen")}


def screen_class(name: str) -> type[Screen]:
    module, cls = SCREEN_CLASSES[name]
    return getattr(importlib.import_module(f"cw_tui.screens.{module}"), cls)


def shows(screen: Screen, name: str) -> bool:
    """isinstance(screen, the class of `name`), without importing it: a screen whose module was
    never imported cannot be one of its classes."""
    module, cls = SCREEN_CLASSES[name]
    loaded = sys.modules.get(f"cw_tui.screens.{module}")
    return loaded is not None and isinstance(screen, getattr(loaded, cls))


STYLES = Path(__file__).parent / "styles"
# The styles read at the start are app.tcss (CSS_PATH) and the first area's: Textual parses and
# matches every rule it is given. The rest come when their screen is first made or pushed.
AREA_STYLES = {"settings": "settings.tcss", "dashboard": "dashboard.tcss"}
LATER_STYLES = "screens.tcss"  # the other areas', Runs', Reconciliation's and every modal's


def _area_screen(name: str) -> Callable[[], Screen]:
    def make() -> Screen:
        screen = screen_class(name)()
        screen.app.read_styles(AREA_STYLES.get(name, LATER_STYLES))  # type: ignore[attr-defined]
        # A new screen gets its styles when it mounts. Textual's first switch to a mode takes
        # the new screen's count of CSS updates (-1) as "behind the app's" and re-parses and
        # re-applies every stylesheet, twice, before the screen is even mounted: about 40 ms
        # of every start. Counted as up to date, it is styled once, at its mount.
        screen._css_update_count = screen.app._css_update_count
        return screen
    make.__name__ = make.__qualname__ = SCREEN_CLASSES[name][1]
    return make


class CwTuiApp(App):
    TITLE = "cw-tui"
    SUB_TITLE = "Platform invoices into ConnectWise"
    MODES = {mode: _area_screen(mode) for mode in AREA_NAMES}
    BINDINGS = [
        # not in the key hints: the area bar at the top shows these keys, greyed out while gated
        Binding("1", "area('dashboard')", "Dashboard", id="app.dashboard", show=False),
        Binding("2", "area('mapping')", "Mapping", id="app.mapping", show=False),
        Binding("3", "area('logs')", "Logs", id="app.logs", show=False),
        Binding("4", "area('settings')", "Settings", id="app.settings", show=False),
        Binding("question_mark,f1", "help", "Help", id="app.help"),
        Binding("ctrl+q", "quit", "Quit", id="app.quit"),
    ]
    CSS_PATH = STYLES / "app.tcss"  # what every screen shares (read_styles: each screen's own); absolute, so that a subclass elsewhere finds it too
    CSS = FOCUS_CSS  # the focus marks, shared with tests of widgets on their own

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
        self._db_executor = None
        self.theme = "textual-light" if terminal_is_light() else "textual-dark"
        self._allowed: tuple[float, set[str]] | None = None
        self._painted = False  # the first screen has been painted (Textual's Ready)
        self._after_paint: list[Callable[[], object]] = []
        # No sliding tab underline: over SSH each animation frame is a screen update sent
        # down the line. TEXTUAL_ANIMATIONS still chooses, when set.
        if "TEXTUAL_ANIMATIONS" not in os.environ:
            self.animation_level = "none"

    @property
    def db_executor(self):
        """Where the grids' queries run, off the UI thread, on one warm SQLite connection;
        made at the first grid (the Dashboard and Settings have none)."""
        if self._db_executor is None:
            from concurrent.futures import ThreadPoolExecutor

            self._db_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cw-tui-db")
        return self._db_executor

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Every toast is literal, its control characters made visible: its words come from
        data (names, ConnectWise's answers, the Platform files' problems) as often as not.
        A toast is short: a longer message is cut, and its whole text goes to the System Logs."""
        text = safe_text(message, lines=True)
        shown = toast_text(text)
        if shown != text:
            self._log_whole_toast(text, severity)
        super().notify(shown, title=safe_text(title), severity=severity, timeout=timeout, markup=markup)

    def on_notify(self, event: Notify) -> None:
        """At most MAX_TOASTS on screen: the oldest go first. It runs before Textual's own
        handler adds the new one (Textual has no public way to drop a toast)."""
        shown = list(self._notifications)
        for old in shown[:max(0, len(shown) - MAX_TOASTS + 1)]:
            self._unnotify(old, refresh=False)

    def _log_whole_toast(self, text: str, severity: SeverityLevel) -> None:
        level = {"warning": system_log.Level.WARNING, "error": system_log.Level.ERROR}.get(severity, system_log.Level.INFO)
        first_line = text.splitlines()[0] if text else ""
        try:
            system_log.write(self.store, level, self._toast_category(), toast_text(first_line, TOAST_CHARS), text)
        except STORE_ERRORS:
            pass  # the database is the problem the toast is about: what is on screen is what is left

    def _toast_category(self) -> system_log.Category:
        """The category of the area shown (on Mapping, of its tab)."""
        areas = [s for s in self.screen_stack if isinstance(s, AreaScreen)]
        area = areas[-1] if areas else None
        if area is not None and shows(area, "mapping"):
            from textual.widgets import TabbedContent

            tab = area.query_one(TabbedContent).active
            return {"organizations": system_log.Category.ORGANIZATIONS,
                    "products": system_log.Category.PRODUCTS}.get(tab, system_log.Category.INVOICES)
        return system_log.Category.SYNC if area is not None and shows(area, "dashboard") else system_log.Category.CONFIGURATION

    # --------------------------------------------------------------- a database that fails

    def _handle_exception(self, error: Exception) -> None:
        """The last resort for a database that fails where no screen expected it (a damaged
        file under the Dashboard): Textual stops the failing widget's message loop, so the
        app ends, with a message naming the file and the cause instead of a traceback.
        Screens run their writes through `database_problem` and stay up."""
        if isinstance(error, STORE_ERRORS):
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

    def read_styles(self, name: str) -> None:
        """Adds a stylesheet of styles/ once, before the screens it styles are mounted (they
        are styled at their mount; its rules name their screens, so nothing shown before
        changes). Unlike a screen's CSS_PATH, for which Textual re-parses every stylesheet,
        only the new file is parsed."""
        path = STYLES / name
        if not self.stylesheet.has_source(str(path)):
            self.stylesheet.add_source(path.read_text(encoding="utf-8"), read_from=(str(path), ""), is_default_css=False)

    def push_screen(self, screen, *args, **kwargs):  # type: ignore[override]
        self.read_styles(LATER_STYLES)  # a modal's, Runs' or Reconciliation's
        return super().push_screen(screen, *args, **kwargs)

    def after_first_paint(self, callback: Callable[[], object]) -> None:
        """Run `callback` once the first screen has been painted: what a screen shows only
        later (its hidden tabs) is mounted after the start. Later on, after the next refresh."""
        if self._painted:
            self.call_after_refresh(callback)
        else:
            self._after_paint.append(callback)

    def on_ready(self) -> None:
        self._painted = True
        for callback in self._after_paint:
            self.call_later(callback)
        self._after_paint.clear()

    def on_unmount(self) -> None:
        if self._db_executor is not None:
            self._db_executor.shutdown(wait=False, cancel_futures=True)

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
        if target in ("runs", "reconciliation"):
            self.open_history(target)
            return
        area, _, detail = target.partition(":")
        self.action_area(area)
        if area not in self.allowed_areas():
            return

        def after() -> None:
            screen = self.screen
            if shows(screen, "mapping") and detail:
                screen.show_tab(detail)
            elif shows(screen, "logs") and detail:
                screen.show_level(detail)
            elif shows(screen, "settings") and detail:
                from textual.widgets import TabbedContent

                screen.query_one(TabbedContent).active = detail

        self.call_after_refresh(after)

    def open_history(self, which: str) -> None:
        """The Runs screen or Reconciliation, over the Dashboard (esc goes back to it)."""
        from cw_tui.screens.reconciliation import ReconciliationScreen
        from cw_tui.screens.runs import RunsScreen

        self.action_area("dashboard")
        if "dashboard" not in self.allowed_areas():
            return
        kind = RunsScreen if which == "runs" else ReconciliationScreen

        def push() -> None:
            while len(self.screen_stack) > 1 and not shows(self.screen, "dashboard"):
                self.pop_screen()  # one at a time: Runs over Reconciliation over Runs would pile up
            self.push_screen(kind())

        self.call_after_refresh(push)

    def action_help(self) -> None:
        if shows(self.screen, "help"):
            return
        from cw_tui.screens.runs import RunActionsScreen, RunsScreen
        from cw_tui.widgets.grid import SqlGrid
        from cw_tui.widgets.tiles import Tile

        groups = [("Everywhere", list(self.BINDINGS)), ("Dashboard", screen_class("dashboard").BINDINGS),
                  ("Mapping", screen_class("mapping").BINDINGS), ("System Logs", screen_class("logs").BINDINGS),
                  ("Settings", screen_class("settings").BINDINGS), ("Runs", RunsScreen.BINDINGS),
                  ("Run actions", RunActionsScreen.BINDINGS), ("Grids", SqlGrid.BINDINGS), ("Tiles", Tile.BINDINGS)]
        self.push_screen(screen_class("help")([(w, [b for b in g if isinstance(b, Binding)]) for w, g in groups], self.keymap or {}))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        # Textual's "Keys" opens its side panel; ours, below, lists every binding with its id
        yield from (command for command in super().get_system_commands(screen) if command.title != "Keys")
        for mode, name in AREA_NAMES.items():
            if mode in self.allowed_areas():
                yield SystemCommand(f"Go to {name}", f"Open the {name} area", lambda m=mode: self.action_area(m))
        if "mapping" in self.allowed_areas():
            for tab in ("organizations", "products", "invoices"):
                yield SystemCommand(f"Go to {tab.capitalize()}", f"Mapping → {tab.capitalize()}",
                                    lambda t=tab: self.open_target(f"mapping:{t}"))
        if "dashboard" in self.allowed_areas():
            yield SystemCommand("Sync runs", "Run history: every sync run and its writes to ConnectWise",
                                lambda: self.open_history("runs"))
            yield SystemCommand("Reconciliation", "A month's posts against what ConnectWise holds now",
                                lambda: self.open_history("reconciliation"))
        yield SystemCommand("Keys", "Every key binding", self.action_help)
        if isinstance(screen, AreaScreen):
            yield from self.screen_commands(screen)

    def screen_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The actions of the screen shown, made from the bindings its keys would run now
        (the screen's, and the focused grid's: export, search), with the keys the keymap gave
        them: a new binding is offered without more code. Bindings without an id (cursor
        keys) and the app's own (the areas, offered as "Go to") are left out."""
        seen: set[tuple[int, str]] = set()
        for node, binding, enabled, _tooltip in screen.active_bindings.values():
            if node is self or not binding.id or not enabled or (id(node), binding.action) in seen:
                continue
            seen.add((id(node), binding.action))
            yield SystemCommand(binding.description or binding.action, f"key {self.get_key_display(binding)} · {binding.id}",
                                lambda node=node, action=binding.action: self.run_action(action, node))

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

    def daily_sync(self) -> None:
        """Every period with work, through the sync core, in a thread worker: the UI loop never
        runs the engine. Each period's outcome is told as it ends."""
        from cw_tui.services.connectwise import ConnectWiseClient
        from cw_tui.sync import periods_to_sync, run_sync

        creds = credential_store.current()
        if creds is None:
            return

        def told(period: str, result) -> None:
            self.notify(f"Daily sync of {period}: {plural(result.synced_lines, 'line')} synced, "
                        f"{plural(result.errors, 'error')}", severity="error" if result.errors else "information")

        async def job() -> None:
            async with ConnectWiseClient(creds) as client:
                for period in periods_to_sync(self.store):
                    result = await run_sync(self.store, client, period, today=self.now().date())
                    self.call_from_thread(told, period, result)

        run_service(self, "Daily sync", job, category=system_log.Category.SYNC, group="daily-sync")
