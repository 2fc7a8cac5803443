"""The table of a SqlGrid: one page of rows drawn through Textual's line API.

Textual's stock DataTable renders every cell through Rich on every repaint, which cost about
100 ms per repaint for a 20-row page of 20 columns. Here each row is rendered to a Strip
once, when the page arrives; a repaint only crops and styles the strips on screen. The
header line stays put while the rows scroll under it."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip


class GridTable(ScrollView, can_focus=True):
    """Rows with a key each, a row cursor, zebra stripes, a sticky header line."""

    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page_cursor(-1)", "Page up", show=False),
        Binding("pagedown", "page_cursor(1)", "Page down", show=False),
        Binding("home", "cursor_to(0)", "First row", show=False),
        Binding("end", "cursor_to(-1)", "Last row", show=False),
        Binding("enter", "select", "Open", show=False),
        Binding("left", "column(-1)", "Column left", show=False),
        Binding("right", "column(1)", "Column right", show=False),
    ]
    COMPONENT_CLASSES = {
        "grid-table--header",
        "grid-table--cursor",
        "grid-table--even-row",
    }
    DEFAULT_CSS = """
    GridTable {
        /* no horizontal bar: the header shows ◀ ▶ when columns are out of view, and a
           bar's own repaint after every layout cost a frame (~30 ms) after each modal */
        scrollbar-size-horizontal: 0;
        background: $surface;
        color: $foreground;
        & > .grid-table--header { text-style: bold; background: $panel; color: $foreground; }
        & > .grid-table--even-row { background: $surface-lighten-1 50%; }
        & > .grid-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus {
            /* no background-tint here: it blends every cell of every line on each repaint */
            & > .grid-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
        }
        &:dark > .grid-table--even-row { background: $surface-darken-1 40%; }
    }
    """

    class RowSelected(Message):
        """enter (or a click on the cursor row) on a row."""

        def __init__(self, table: GridTable, key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> GridTable:
            return self.table

    class ColumnStep(Message):
        """left/right: the grid chooses the column that `s` sorts and `f` filters."""

        def __init__(self, step: int) -> None:
            super().__init__()
            self.step = step

    class HeaderClicked(Message):
        def __init__(self, x: int) -> None:
            super().__init__()
            self.x = x  # in content coordinates (the horizontal scroll added)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._header: list[Strip] = [Strip([])]  # one line, or two where a title wraps
        self._sticky: tuple[int, int] | None = None  # (x, cells) of the row's name column
        self._keys: list[str] = []
        self._strips: list[Strip] = []
        self._index: dict[str, int] = {}
        self.cursor_row = 0
        self._styles: dict[str, Style] = {}

    # --------------------------------------------------------------- data

    @property
    def row_count(self) -> int:
        return len(self._keys)

    @property
    def cursor_key(self) -> str | None:
        return self._keys[self.cursor_row] if self._keys else None

    def _strip(self, text: Text) -> Strip:
        return Strip(text.render(self.app.console), text.cell_len)

    @property
    def header_height(self) -> int:
        return len(self._header)

    def set_header(self, header: list[Text]) -> None:
        self._header = [self._strip(line) for line in header] or [Strip([])]
        self._resize()
        self.refresh()

    def set_rows(self, header: list[Text], rows: list[tuple[str, Strip]], cursor_row: int = 0,
                 sticky: tuple[int, int] | None = None, bounds: list[tuple[int, int, bool]] | None = None) -> None:
        """The page's rows, each already rendered to one line. `sticky`: the cells (x, width)
        of the row's name column, kept in view after the mark when the columns scroll.
        `bounds`: each column's (x, width, numeric), so that a column the view cuts is not
        shown as if whole (see _window)."""
        self._header = [self._strip(line) for line in header] or [Strip([])]
        self._sticky = sticky
        self._bounds = bounds or []
        self._keys = [key for key, _ in rows]
        self._index = {key: n for n, key in enumerate(self._keys)}
        self._strips = [strip for _, strip in rows]
        self._resize()
        self.move_cursor(row=cursor_row)
        self.refresh()

    def update_row(self, key: str, strip: Strip) -> None:
        index = self._index.get(key)
        if index is not None:
            self._strips[index] = strip
            self.refresh()

    def _resize(self) -> None:
        width = max([*(h.cell_length for h in self._header), *(s.cell_length for s in self._strips)])
        size = Size(width, len(self._strips) + self.header_height)
        if size.height == self.virtual_size.height and size.width != self.virtual_size.width:
            # the columns are laid out per page: a new width needs no layout pass of the screen
            # (virtual_size is a layout reactive; there is no horizontal bar to show or hide)
            self.set_reactive(ScrollView.virtual_size, size)
            self._scroll_update(size)
            self.scroll_x = min(self.scroll_x, self.max_scroll_x)
        else:
            self.virtual_size = size

    # --------------------------------------------------------------- cursor

    def move_cursor(self, *, row: int | None = None, column: int | None = None) -> None:
        if not self._keys:
            self.cursor_row = 0
            return
        if row is None:  # a column alone: the row cursor stays (columns are the grid's business)
            return
        self.cursor_row = max(0, min(row, len(self._keys) - 1))
        self._scroll_cursor_into_view()
        self.refresh()

    def _scroll_cursor_into_view(self) -> None:
        visible = max(1, self.scrollable_content_region.height - self.header_height)  # less the header
        top = int(self.scroll_y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + visible:
            self.scroll_to(y=self.cursor_row - visible + 1, animate=False, immediate=True)

    def action_cursor(self, step: int) -> None:
        self.move_cursor(row=self.cursor_row + step)

    def action_page_cursor(self, step: int) -> None:
        self.move_cursor(row=self.cursor_row + step * max(1, self.scrollable_content_region.height - self.header_height))

    def action_cursor_to(self, row: int) -> None:
        self.move_cursor(row=row if row >= 0 else len(self._keys) - 1)

    def action_select(self) -> None:
        if self._keys:
            self.post_message(self.RowSelected(self, self._keys[self.cursor_row]))

    def action_column(self, step: int) -> None:
        self.post_message(self.ColumnStep(step))

    def on_click(self, event: Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        event.stop()
        if offset.y < self.header_height:
            self.post_message(self.HeaderClicked(self.row_x(offset.x)))
            return
        row = int(self.scroll_y) + offset.y - self.header_height
        if 0 <= row < len(self._keys):
            if row == self.cursor_row:
                self.action_select()
            self.move_cursor(row=row)

    def on_resize(self) -> None:
        self._scroll_cursor_into_view()

    # --------------------------------------------------------------- the columns that stay

    MARK = 3  # the mark column: always in view
    _bounds: list[tuple[int, int, bool]] = []  # replaced by set_rows, never changed in place

    def _stuck(self, scroll_x: int) -> bool:
        """Has the name column reached the mark, and so stays there while the rest scrolls?"""
        return self._sticky is not None and scroll_x > 0 and self._sticky[0] - scroll_x < self.MARK

    def row_x(self, x: int) -> int:
        """Where a point of the view (x from its left edge) lies in a row."""
        scroll_x = int(self.scroll_x)
        if scroll_x == 0 or x < self.MARK:
            return x
        if self._stuck(scroll_x):
            start, width = self._sticky  # type: ignore[misc]
            if x < self.MARK + width:
                return start + x - self.MARK
        return scroll_x + x

    def _window(self, strip: Strip, scroll_x: int, width: int) -> Strip:
        """What a line shows at this scroll: the mark and, once it gets there, the name column
        stay at the left; the other columns scroll under them."""
        if scroll_x == 0 or width <= self.MARK:
            return self._blank_cut(strip.crop_extend(scroll_x, scroll_x + width, None), scroll_x, scroll_x + width)
        parts = [strip.crop_extend(0, self.MARK, None)]
        used = self.MARK
        if self._stuck(scroll_x):
            start, cells = self._sticky  # type: ignore[misc]
            cells = min(cells, width - used)
            parts.append(strip.crop_extend(start, start + cells, None))
            used += cells
        if width > used:
            parts.append(self._blank_cut(strip.crop_extend(scroll_x + used, scroll_x + width, None),
                                         scroll_x + used, scroll_x + width))
        return Strip.join(parts)

    def _blank_cut(self, segment: Strip, left: int, right: int) -> Strip:
        """A column cut at the left edge of the scrolled part shows nothing rather than its
        end: "440.00" from 1,440.00, or 120.00 from -120.00, would read as another amount. A
        number cut at the right edge is blanked too (1,440 from 1,440.00); cut text keeps its
        start, which still says what it is."""
        lead = trail = 0
        for x, cells, numeric in self._bounds:
            end = x + cells
            if x < left < end:
                lead = min(end - left, right - left)
            if numeric and x < right < end:
                trail = right - max(x, left)
        if not lead and not trail:
            return segment
        length = segment.cell_length
        trail = min(trail, length - lead)
        middle = segment.crop(lead, length - trail)
        return Strip.join([Strip.blank(lead), middle, Strip.blank(trail)])

    # --------------------------------------------------------------- drawing

    def watch_has_focus(self, has_focus: bool) -> None:
        super().watch_has_focus(has_focus)
        # the scrollbars' colours follow the focus, and each bar posted its repaint from its own
        # idle, after the screen's next frame: a second frame (~20 ms) for a bar 0 cells high.
        # Posted now, it goes in the frame of the focus change.
        for bar in (self._horizontal_scrollbar, self._vertical_scrollbar):
            if bar is not None:
                bar._check_refresh()

    def notify_style_update(self) -> None:
        self._styles.clear()
        super().notify_style_update()

    def _style(self, part: str) -> Style:
        """The widget's style with a component's on top; looked up once per style change."""
        style = self._styles.get(part)
        if style is None:
            base = self.rich_style
            style = self._styles[part] = base + self.get_component_rich_style(part) if part else base
        return style

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        if y < self.header_height:
            style = self._style("grid-table--header")
            return self._header_line(y, scroll_x, width, style) if width else Strip([])
        else:
            row = scroll_y + y - self.header_height
            if row >= len(self._strips):
                return Strip([Segment(" " * width, self._style(""))], width)
            part = "grid-table--cursor" if row == self.cursor_row else "grid-table--even-row" if row % 2 else ""
            style, strip = self._style(part), self._strips[row]
        return self._window(strip, scroll_x, width).apply_style(style) if width else Strip([])

    def _header_line(self, y: int, scroll_x: int, width: int, style: Style) -> Strip:
        """A line of the header; the first with ◀ and ▶ where columns are out of view to the left
        or right."""
        strip = self._window(self._header[y], scroll_x, width)
        more_left = scroll_x > 0
        more_right = scroll_x + width < self.virtual_size.width
        if y == 0 and (more_left or more_right) and width > 2:
            arrow = self._style("grid-table--header") + Style(bold=True)
            middle = strip.crop(1 if more_left else 0, width - 1 if more_right else width)
            strip = Strip.join([
                Strip([Segment("◀", arrow)], 1) if more_left else Strip([]),
                middle,
                Strip([Segment("▶", arrow)], 1) if more_right else Strip([]),
            ])
        return strip.apply_style(style)

