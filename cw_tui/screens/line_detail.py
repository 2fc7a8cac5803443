"""The read-only detail of one invoice line (services/line_detail.py builds it; this only
renders it). Scrolls from the keyboard at 80x24; Close stays in view and has the focus."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Label, Static

from cw_tui.rules.safe_text import safe_text
from cw_tui.services.line_detail import Field, LineDetail
from cw_tui.widgets.modal import ScrollingModal

STATUS_STYLES = {"Synced": "green", "Error": "bold red", "Posting…": "cyan"}


def section_view(title: str, fields: list[Field], label_width: int = 0) -> Group:
    table = Table(box=None, show_header=False, show_edge=False, pad_edge=False, expand=True, padding=(0, 1))
    table.add_column("label", no_wrap=True, style="bold", min_width=label_width)
    table.add_column("value", ratio=1, overflow="fold")
    for item in fields:
        value = Text(safe_text(item.value))  # names from the Platform and ConnectWise: never markup
        if item.note:
            value.append(("\n" if item.value else "") + safe_text(item.note), style="dim")
        table.add_row(Text(safe_text(item.label)), value)
    return Group(Text(title, style="bold underline"), table)


class LineDetailModal(ScrollingModal):
    BINDINGS: ClassVar = [
        Binding("escape", "dismiss", "Close"),
    ]

    def __init__(self, detail: LineDetail) -> None:
        super().__init__()
        self.detail = detail

    def compose(self) -> ComposeResult:
        d = self.detail
        with Vertical():
            yield Label(Text.assemble(f"Line {safe_text(d.line_id)} · ",
                                      (d.sync_status, STATUS_STYLES.get(d.sync_status, ""))), classes="title")
            yield Static(Text(safe_text(d.title)), id="subtitle")
            width = max((len(safe_text(f.label)) for _, fields in d.sections for f in fields), default=0)
            with VerticalScroll(id="body"):
                for title, fields in d.sections:  # one label width for all: the values line up
                    yield Static(section_view(title, fields, width), id=f"section-{title.lower().replace(' ', '-')}")
            with Horizontal(classes="buttons"):
                yield Static("Read-only · ↑↓/PgDn scroll · Esc closes", classes="hint")
                yield Button("Close", id="close", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss()
