"""Dashboard and System Logs tiles: a title and a figure; focusable, and lead somewhere."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Static

from cw_tui.rules.safe_text import safe_text


class Tile(Static, can_focus=True):
    BINDINGS = [Binding("enter", "open", "Open", show=False)]
    DEFAULT_CSS = """
    Tile { border: round $primary 60%; padding: 0 0 0 1; height: auto; min-height: 5; width: 1fr; min-width: 16; }
    Tile:hover { background: $boost; }
    Tile.-red { border: round $error; }
    Tile.-orange { border: round $warning; }
    Tile.-green { border: round $success; }
    /* focus: a heavy border, seen without colour too (NO_COLOR), whatever the tile's tone */
    Tile:focus { border: heavy $accent; background: $boost; }
    Tile.-red:focus { border: heavy $error; }
    Tile.-orange:focus { border: heavy $warning; }
    Tile.-green:focus { border: heavy $success; }
    """

    class Opened(Message):
        def __init__(self, tile: Tile) -> None:
            super().__init__()
            self.tile = tile

    def __init__(self, title: str, *, target: str | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.title = title
        self.target = target
        self.figure = ""

    def set(self, main: str, sub: str = "", tone: str = "", note: str = "", note_style: str = "dim") -> None:
        # the title inside, not on the border, where it would be cut; a narrow tile wraps its
        # lines rather than cut them. Figures may quote data (a currency, a period), so they
        # are shown literally
        text = Text(self.title + "\n", style="dim italic")
        text.append(safe_text(main), style="bold")
        if sub:
            text.append("\n" + safe_text(sub.splitlines()[0]), style="dim")
        if note:  # one more line (the Posted vs loaded tile's last reconciliation)
            text.append("\n" + safe_text(note.splitlines()[0]), style=note_style)
        self.update(text)
        for name in ("-red", "-orange", "-green"):
            self.remove_class(name)
        if tone:
            self.add_class(f"-{tone}")
        self.figure = main

    def action_open(self) -> None:
        self.post_message(self.Opened(self))

    def on_click(self) -> None:
        self.action_open()
