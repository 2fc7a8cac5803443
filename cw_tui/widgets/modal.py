"""The one modal frame: centred, bordered, its title at the top and its buttons at the bottom
always in view, the body between them scrolling when the terminal is small (80x24). Every
modal of the app is a Modal; a subclass sets only its own size and parts."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding
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


class ScrollingModal(Modal):
    """A modal whose body (#body) scrolls from the keyboard while the focus stays on its
    buttons: the arrows, the page keys, home and end."""

    BINDINGS: ClassVar = [
        Binding("down", "scroll('down')", "Scroll", show=False),
        Binding("up", "scroll('up')", "Scroll", show=False),
        Binding("pagedown", "scroll('page_down')", "Page down", show=False),
        Binding("pageup", "scroll('page_up')", "Page up", show=False),
        Binding("home", "scroll('home')", "Top", show=False),
        Binding("end", "scroll('end')", "End", show=False),
    ]

    def action_scroll(self, how: str) -> None:
        body = self.query_one("#body", VerticalScroll)
        {"down": body.scroll_down, "up": body.scroll_up, "page_down": body.scroll_page_down,
         "page_up": body.scroll_page_up, "home": body.scroll_home, "end": body.scroll_end}[how](animate=False)
