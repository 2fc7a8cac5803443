"""The bottom line of key hints, drawn as one line.

Textual's Footer rebuilds one widget per key, each with its own styles, whenever the focus
moves or a screen comes back: on the Mapping page that took 100-400 ms after every modal.
This bar draws the same hints as one line and redraws only when they change. A click on a
hint presses its key."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.events import Click
from textual.screen import Screen
from textual.widget import Widget

DIM = Style(dim=True)  # a key that cannot be used now (an area not set up yet)


class KeyBar(Widget):
    ALLOW_SELECT = False
    COMPONENT_CLASSES = {"key-bar--key", "key-bar--description"}
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $footer-background;
        color: $footer-foreground;
        & > .key-bar--key { color: $footer-key-foreground; background: $footer-key-background; text-style: bold; }
        & > .key-bar--description { color: $footer-description-foreground; background: $footer-description-background; }
    }
    """

    def __init__(self) -> None:
        super().__init__()
        # (key, how it is shown, description, enabled); the last may be the command palette
        self._hints: list[tuple[str, str, str, bool]] = []
        self._palette: tuple[str, str, str, bool] | None = None
        self._spans: list[tuple[int, int, str]] = []  # (start x, end x, key) of each hint drawn

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self.call_after_refresh(self._bindings_changed, self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen) -> None:
        if not self.is_attached or screen is not self.screen:
            return
        active = screen.active_bindings
        hints: list[tuple[str, str, str, bool]] = []
        seen: set[str] = set()
        for _node, binding, enabled, _tooltip in active.values():
            if binding.show and binding.action not in seen:  # one hint per action, as Footer
                seen.add(binding.action)
                hints.append((binding.key, self.app.get_key_display(binding), binding.description, enabled))
        palette = None
        if self.app.ENABLE_COMMAND_PALETTE and self.app.COMMAND_PALETTE_BINDING in active:
            _node, binding, enabled, _tooltip = active[self.app.COMMAND_PALETTE_BINDING]
            palette = (binding.key, self.app.get_key_display(binding), binding.description, enabled)
            hints = [h for h in hints if h[0] != binding.key]
        if (hints, palette) != (self._hints, self._palette):
            self._hints, self._palette = hints, palette
            self.refresh()

    def render(self) -> Text:
        key_style = self.get_component_rich_style("key-bar--key")
        description_style = self.get_component_rich_style("key-bar--description")
        text = Text(no_wrap=True, overflow="crop")
        self._spans = []
        # the palette's hint always at the right, as Footer has it: on a narrow terminal the
        # hints that do not fit are left out whole, and the palette lists every action
        palette = None
        room = self.size.width
        if self._palette is not None:
            palette_key, shown, description, _enabled = self._palette
            palette = Text.assemble((f" {shown} ", key_style), (f"{description} ", description_style))
            room -= palette.cell_len
        for key, shown, description, enabled in self._hints:
            hint = Text.assemble((f" {shown} ", key_style if enabled else key_style + DIM),
                                 (f"{description} ", description_style if enabled else description_style + DIM), " ")
            if text.cell_len + hint.cell_len - 1 > room:  # its last space may go
                break
            self._spans.append((text.cell_len, text.cell_len + hint.cell_len, key))
            text.append_text(hint)
        if palette is not None and room > text.cell_len:
            text.append(" " * (room - text.cell_len))
            self._spans.append((room, room + palette.cell_len, palette_key))
            text.append_text(palette)
        return text

    def on_click(self, event: Click) -> None:
        for start, end, key in self._spans:
            if start <= event.x < end:
                event.stop()
                self.app.simulate_key(key)  # as Footer does: the key's binding runs
                return
