"""`?`: every key binding, as remapped by the user's keymap."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Label

from cw_tui.keymap import describe, keymap_path


def tilde(path: Path) -> str:
    home = Path.home()
    return f"~/{path.relative_to(home)}" if path.is_relative_to(home) else str(path)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss", "Close"), Binding("question_mark", "dismiss", "Close", show=False)]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: 90; max-width: 98%; height: 90%; border: thick $accent; background: $surface; padding: 0 1; }
    HelpScreen DataTable { height: 1fr; }
    """

    def __init__(self, groups: list[tuple[str, list[Binding]]], keymap: dict[str, str]) -> None:
        super().__init__()
        self.rows = describe(groups, keymap)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Keys (remap them in {tilde(keymap_path())}; ctrl+p opens the command palette)")
            table = DataTable(cursor_type="row", zebra_stripes=True)
            table.add_columns("Where", "Keys", "What", "Binding id")
            for row in self.rows:
                table.add_row(*row)
            yield table
            yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss()
