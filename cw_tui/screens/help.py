"""`?`: every key binding, as remapped by the user's keymap, grouped by where it works."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Button, DataTable, Static

from cw_tui.keymap import describe, keymap_path
from cw_tui.widgets.modal import Modal


def tilde(path: Path) -> str:
    home = Path.home()
    return f"~/{path.relative_to(home)}" if path.is_relative_to(home) else str(path)


class HelpScreen(Modal):
    BINDINGS = [Binding("escape", "dismiss", "Close"), Binding("question_mark", "dismiss", "Close", show=False)]

    def __init__(self, groups: list[tuple[str, list[Binding]]], keymap: dict[str, str]) -> None:
        super().__init__()
        self.rows = describe(groups, keymap)

    def compose(self) -> ComposeResult:
        with Vertical():
            # wraps rather than cut: the path is as long as the user's home
            yield Static(f"Keys. Remap them by binding id in {tilde(keymap_path())}; ctrl+p opens the command "
                         "palette with the actions of the screen shown.", classes="title")
            # no "where" column: a heading row for each place keeps the binding ids in view at 80 columns
            table = DataTable(cursor_type="row", zebra_stripes=True)
            table.add_columns("Keys", "What", "Binding id")
            for where, rows in groupby(self.rows, key=lambda row: row[0]):
                table.add_row(Text(where, style="bold"), "", "")
                for _, keys, what, binding_id in rows:
                    table.add_row(keys, what, binding_id)
            yield table
            yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss()
