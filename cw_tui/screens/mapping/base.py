"""What every tab of the Mapping page shares: showing a tab, the busy mark, the client, the
row under the cursor, the Platform folder and its errors."""

from __future__ import annotations

from textual.widgets import Button, Select, Static, TabbedContent, TabPane

from cw_tui.rules.display import exact_money_text, group_thousands, quantity_text
from cw_tui.screens.base import AreaScreen
from cw_tui.store import queries
from cw_tui.widgets.grid import SqlGrid


class PeriodSelect(Select):
    """"Show invoices": the loaded months, newest first. With none loaded it is hidden (the bar
    says so) and holds no choice; once a month is loaded there is no blank choice to pick."""

    def set_periods(self, periods: list[str]) -> None:
        self._allow_blank = not periods  # Textual 8.2 reads it in set_options; only an empty list needs a blank
        self.set_options([(p, p) for p in periods])
        self.display = bool(periods)


class _Busy:
    """Disables a button and shows what runs while a long operation goes on (SPEC §5)."""

    def __init__(self, screen: AreaScreen, button_id: str, label_id: str, text: str) -> None:
        self.screen, self.button_id, self.label_id, self.text = screen, button_id, label_id, text

    def __enter__(self) -> None:
        self.screen.app.call_from_thread(self._set, True)

    def __exit__(self, *exc: object) -> None:
        self.screen.app.call_from_thread(self._set, False)

    def _set(self, busy: bool) -> None:
        self.screen.query_one(f"#{self.button_id}", Button).disabled = busy
        self.screen.query_one(f"#{self.label_id}", Static).update(self.text if busy else "")


class MappingBase(AreaScreen):
    """The Mapping page's operations; the long ones run in thread workers (the UI never waits)."""

    TAB_ACTIONS: dict[str, str] = {}

    def _to_tab(self, action: str) -> None:
        """Every action works from any tab: it first shows the tab it belongs to."""
        tab = self.TAB_ACTIONS.get(action)
        if tab:
            self.show_tab(tab)

    def show_tab(self, tab: str) -> None:
        """Show a tab, and give its grid the keys unless the focus is already on that tab.
        The focus moves at once: the tab is then drawn once, not again for the focus."""
        content = self.query_one(TabbedContent)
        content.active = tab
        self._focus_shown_grid(tab)

    def _focus_shown_grid(self, tab: str) -> None:
        focused = self.focused
        if focused is None or not any(isinstance(node, TabPane) and node.id == tab for node in focused.ancestors):
            self.query_one(f"#grid-{tab}", SqlGrid).table.focus()

    def _client(self):
        from cw_tui.services import credentials as credential_store
        from cw_tui.services.connectwise import ConnectWiseClient

        return ConnectWiseClient(credential_store.current())

    def _folder_or_warn(self):
        from pathlib import Path

        from cw_tui.services import settings

        config = settings.load_configuration(self.app.store)
        if not config.platform_dir:
            self.app.notify("Set the Platform export folder first (Settings → Configuration).", severity="warning")
            return None
        return Path(config.platform_dir).expanduser()

    def _platform_error(self, what: str, error) -> None:
        from cw_tui.services import system_log

        system_log.write(self.app.store, system_log.Level.ERROR, system_log.Category.INVOICES,
                         f"{what} rejected: {error.total} problem(s); nothing was changed", str(error))
        first = "\n".join(error.errors[:4])
        message = f"{what}: nothing was changed. {error.total} problem(s):\n{first}\n(all of them in System Logs)"
        self.app.notify(message, severity="error", timeout=20)

    def _grid(self) -> SqlGrid:
        return self.query_one(f"#grid-{self.query_one(TabbedContent).active}", SqlGrid)

    def _current_row(self) -> tuple[SqlGrid, str, str] | None:
        """The active tab's grid, the key of the row under the cursor, and the tab."""
        grid = self._grid()
        key = grid.current_key()
        return None if key is None else (grid, key, self.query_one(TabbedContent).active)

    def _line(self, line_id: str) -> dict | None:
        from cw_tui.services.mapping import agreement_gone

        line = queries.line_for_edit(self.app.store, line_id)
        if line is None:
            return None
        line["agreement_gone"] = agreement_gone(line["agreement_id"], own=line["own_agreement_id"] is not None)
        line["quantity"] = group_thousands(quantity_text(line["quantity"]))
        line["unit_price"] = group_thousands(exact_money_text(line["unit_price"]))
        return line
