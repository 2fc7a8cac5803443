"""The row of the four areas at the top of every screen; disabled areas are visibly so."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Static

AREAS = (("dashboard", "1 Dashboard"), ("mapping", "2 Mapping"), ("logs", "3 System Logs"), ("settings", "4 Settings"))


class AreaBar(Horizontal):
    DEFAULT_CSS = """
    AreaBar { height: 1; background: $panel; }
    AreaBar .app-title { width: auto; padding: 0 1; color: $text-accent; text-style: bold; }
    AreaBar Button { height: 1; min-width: 0; width: auto; border: none; padding: 0 1; margin: 0; background: $panel; }
    AreaBar Button.-current { background: $accent; color: $text; text-style: bold; }
    AreaBar Button:disabled { color: $text-disabled; text-style: strike; }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        yield Static("cw-tui", classes="app-title")
        for mode, label in AREAS:
            button = Button(label, id=f"area-{mode}", compact=True)
            # reached by 1-4 and the mouse: out of the Tab order, which would pass them on every screen
            button.can_focus = False
            if mode == self.current:
                button.add_class("-current")
            yield button

    def on_mount(self) -> None:
        self.refresh_gating()

    def refresh_gating(self) -> None:
        allowed = self.app.allowed_areas()  # type: ignore[attr-defined]
        for mode, _ in AREAS:
            self.query_one(f"#area-{mode}", Button).disabled = mode not in allowed

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id and event.button.id.startswith("area-"):
            event.stop()
            self.app.action_area(event.button.id[5:])  # type: ignore[attr-defined]
