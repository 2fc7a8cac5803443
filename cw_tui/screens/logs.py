"""System Logs (SPEC §13): tiles, level filter, search, the paged grid, one entry's details,
and a live pane of new entries (also from a sync in another process: it polls the store)."""

from __future__ import annotations

from datetime import timedelta

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, RichLog, Select, Static

from cw_tui.rules.safe_text import safe_text
from cw_tui.rules.words import plural
from cw_tui.screens.base import AreaScreen
from cw_tui.services import system_log
from cw_tui.services.system_log import Category, Level, LogQuery
from cw_tui.store import queries
from cw_tui.store.grid_sources import LOGS
from cw_tui.store.queries import LogRecord
from cw_tui.tasks import run_service
from cw_tui.widgets.grid import SqlGrid
from cw_tui.widgets.modal import Modal
from cw_tui.widgets.tiles import Tile

LEVEL_STYLE = {"INFO": "bold black on #5fafff", "WARNING": "bold black on #ffaf00", "ERROR": "bold white on #d70000"}


def level_badge(level: str, _value: object = None) -> Text:
    return Text(f" {level} ", style=LEVEL_STYLE.get(level, ""))


class LogDetail(Modal):
    BINDINGS = [Binding("escape", "dismiss", "Close"), Binding("enter", "dismiss", "Close", show=False)]

    def __init__(self, entry: LogRecord) -> None:
        super().__init__()
        self.entry = entry

    def compose(self) -> ComposeResult:
        e = self.entry
        with Vertical():
            yield Label(Text.assemble(level_badge(e.level), f"  {e.timestamp.astimezone():%Y-%m-%d %H:%M:%S}  {e.category}"))
            # summaries and details quote data (names, ConnectWise's answers): shown literally
            yield Static(Text(safe_text(e.summary), style="bold"))
            yield Static(Text(safe_text(e.details, lines=True) or "(no details)"), classes="details")
            yield Button("Close", id="close", variant="primary")

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss()


class LogsScreen(AreaScreen):
    AREA = "logs"
    AUTO_FOCUS = "GridTable"  # the log's keys (/ search, f filter, enter details) work at once
    BINDINGS = [
        # the grid's `/` works from the tiles too: they are not inside the grid, so its own
        # binding is not in their chain (same action name: one hint in the key bar). A priority
        # binding, as the grid's: the keys typed right after it go to the search box
        Binding("slash", "focus_search", "Search", id="logs.search", priority=True),
        Binding("ctrl+r", "reload", "Refresh", id="logs.refresh"),
        Binding("l", "level", "Level", id="logs.level"),
        Binding("ctrl+l", "toggle_live", "Live pane", id="logs.live"),
    ]

    def compose_area(self) -> ComposeResult:
        with Horizontal(classes="tiles"):
            yield Tile("Total Logs (30d)", id="tile-total")
            yield Tile("Errors (30d)", target="logs:ERROR", id="tile-errors")
            yield Tile("Warnings (30d)", target="logs:WARNING", id="tile-warnings")
            yield Tile("Last Update", target="logs:refresh", id="tile-updated")
        with Horizontal(classes="filters"):
            yield Label("Level")
            yield Select([("All", "ALL"), ("INFO", "INFO"), ("WARNING", "WARNING"), ("ERROR", "ERROR")], value="ALL",
                         allow_blank=False, compact=True, id="level")
            yield Button("Refresh", id="refresh", compact=True)
        yield SqlGrid(LOGS, formatters={"level": level_badge}, id="log-grid",
                      summary=lambda page: f"Showing {len(page.rows):,} of {plural(page.total, 'log entry', 'log entries')}")
        yield RichLog(id="live", max_lines=500, wrap=False, markup=False)

    def on_mount(self) -> None:
        self.last_seen = self._newest_id()
        live = self.query_one("#live", RichLog)
        live.border_title = "Live"
        live.write(Text("New entries appear here as they happen (a sync or load here or in another process).", style="dim"))
        self.set_interval(1.0, self._poll)
        self.refresh_tiles()

    def refresh_data(self) -> None:
        self.query_one(SqlGrid).reload()
        self.refresh_tiles()

    def _newest_id(self) -> int:
        return queries.newest_log_id(self.app.store) or 0  # type: ignore[attr-defined]

    def refresh_tiles(self) -> None:
        store = self.app.store  # type: ignore[attr-defined]
        since = self.app.now() - timedelta(days=30)  # type: ignore[attr-defined]

        def counts() -> dict[str, int]:
            return {
                "total": system_log.count(store, LogQuery(since=since)),
                "errors": system_log.count(store, LogQuery(level=Level.ERROR, since=since)),
                "warnings": system_log.count(store, LogQuery(level=Level.WARNING, since=since)),
            }

        run_service(self, "Counting the log entries", counts, category=Category.CONFIGURATION, done=self._show_tiles,
                    group="log-tiles")

    def _show_tiles(self, counts: dict[str, int]) -> None:
        self.query_one("#tile-total", Tile).set(f"{counts['total']:,}", "kept 30 days")
        self.query_one("#tile-errors", Tile).set(f"{counts['errors']:,}", "enter: list", "red" if counts["errors"] else "")
        self.query_one("#tile-warnings", Tile).set(f"{counts['warnings']:,}", "enter: list",
                                                     "orange" if counts["warnings"] else "")
        self.query_one("#tile-updated", Tile).set(f"{self.app.now().astimezone():%H:%M:%S}", "enter to refresh")  # type: ignore[attr-defined]

    def _poll(self) -> None:
        """New entries since the last look, from this process or another one."""
        entries = system_log.entries(self.app.store, LogQuery(after_id=self.last_seen), limit=200)  # type: ignore[attr-defined]
        if not entries:
            return
        live = self.query_one("#live", RichLog)
        for entry in reversed(entries):
            live.write(Text.assemble(f"{entry.timestamp.astimezone():%H:%M:%S} ", level_badge(entry.level),
                                     f" {entry.category:<13} {safe_text(entry.summary)}"))
        self.last_seen = max(e.id for e in entries)
        self.refresh_data()

    def show_level(self, level: str) -> None:
        self.query_one("#level", Select).value = level

    def action_focus_search(self) -> None:
        self.query_one(SqlGrid).action_focus_search()

    def action_level(self) -> None:
        self.query_one("#level", Select).focus()

    def action_reload(self) -> None:
        self.refresh_data()

    def action_toggle_live(self) -> None:
        self.query_one("#live").toggle_class("-hidden")

    @on(Select.Changed, "#level")
    def _level(self, event: Select.Changed) -> None:
        grid = self.query_one(SqlGrid)
        grid.set_filter("level", frozenset() if event.value in ("ALL", Select.NULL) else frozenset({event.value}))

    @on(Button.Pressed, "#refresh")
    def _refresh(self) -> None:
        self.refresh_data()

    @on(Tile.Opened)
    def _tile(self, event: Tile.Opened) -> None:
        target = event.tile.target or ""
        if target == "logs:refresh":
            self.refresh_data()
        elif target.startswith("logs:"):
            self.show_level(target[5:])

    @on(SqlGrid.RowChosen, "#log-grid")  # the message names its grid (control)
    def _chosen(self, event: SqlGrid.RowChosen) -> None:
        entry = queries.log_record(self.app.store, int(event.key))  # type: ignore[attr-defined]
        if entry is not None:
            self.app.push_screen(LogDetail(entry))
