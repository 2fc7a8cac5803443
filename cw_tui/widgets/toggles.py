"""Check boxes whose glyph says their state without colour: `[x]` checked, `[ ]` not (Textual's
own draw `▐X▌` either way and tell them apart by colour only, which NO_COLOR and some
terminals lose)."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.content import Content
from textual.strip import Strip
from textual.widgets import Checkbox, SelectionList

CHECKED = "[x]"
UNCHECKED = "[ ]"


def glyph(checked: bool) -> str:
    return CHECKED if checked else UNCHECKED


class Toggle(Checkbox):
    """A Checkbox drawn `[x] Label` / `[ ] Label`."""

    @property
    def _button(self) -> Content:
        return Content.assemble((glyph(self.value), "bold" if self.value else ""))


class ToggleList(SelectionList):
    """A SelectionList whose values are drawn `[x]` / `[ ]`."""

    def render_line(self, y: int) -> Strip:
        line = super().render_line(y)
        segments = list(line)
        index = self.scroll_offset.y + y
        if len(segments) < 4 or index >= self.option_count:
            return line
        option = self.get_option_at_index(index)
        checked = option.value in self._selected
        # the three cells of Textual's button, its meta kept: a click on the glyph toggles it
        meta = segments[1].style.meta if segments[1].style else {}
        base = segments[3].style or Style()
        button = Segment(glyph(checked), base + Style(bold=checked, meta=meta))
        return Strip([button, *segments[3:]], line.cell_length)
