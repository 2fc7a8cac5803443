"""The one modal frame: centred, bordered, its title at the top and its buttons at the bottom
always in view, the body between them scrolling when the terminal is small (80x24). Every
modal of the app is a Modal; a subclass sets only its own size and parts."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.screen import ModalScreen


class ModalBody(VerticalScroll):
    """The part of a modal between its title and its buttons; it scrolls when the terminal is
    small, and is a stop for Tab only when there is something to scroll."""

    def allow_focus(self) -> bool:
        return self.max_scroll_y > 0


class Modal(ModalScreen):
    """In a frame (classes="frame") the title is docked at the top, the buttons at the bottom,
    and the body between them scrolls."""

    DEFAULT_CSS = """
    Modal { align: center middle; }
    Modal > Vertical { width: 76; max-width: 96%; height: auto; max-height: 92%; border: thick $accent; background: $surface; padding: 0 1; }
    Modal .frame > .title { dock: top; }
    Modal .frame > .buttons { dock: bottom; }
    Modal .frame > .body { height: auto; max-height: 100%; }
    Modal .frame .hint { color: $text-muted; }
    """

    def on_mount(self) -> None:
        # a table in the body scrolls its cursor row into view, and the body with it: start at the top
        self.call_after_refresh(self._body_to_top)

    def _body_to_top(self) -> None:
        for body in self.query(ModalBody):
            body.scroll_home(animate=False)
