"""One SQL-paged grid widget for every grid: search box, sortable headers with an indicator,
per-column multi-select filters, items per page, page number, previous/next, and the summary
line. The widget shows one page; `store/grid.py` does the work in SQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, SelectionList, Static
from textual.widgets.selection_list import Selection

from cw_tui.rules.safe_text import safe_text
from cw_tui.rules.words import plural
from cw_tui.store.errors import DATABASE_ERRORS
from cw_tui.store.grid import PAGE_SIZES, Column, GridCache, GridSource, GridState, Page, distinct_values, fetch_page
from cw_tui.store.grid import Selection as RowSelection
from cw_tui.widgets.grid_table import GridTable
from cw_tui.widgets.toggles import ToggleList

# Styles a cell: gets the column's display text (rules/display.py) and the stored value,
# returns a rich Text (or a str). The text is what the CSV export holds too.
Formatter = Callable[[str, Any], Any]


class _ValueList(ToggleList):
    """space toggles a value, enter applies the filter (SelectionList would toggle on enter)."""

    BINDINGS = [Binding("enter", "screen.apply", "Apply")]


class FilterModal(ModalScreen[frozenset | None]):
    """The multi-select list of a column's values. One is kept per grid and filled anew each
    time it opens (`show_values`): an installed screen is not removed when it closes, and its
    removal cost the grid's screen a layout and a second full repaint a frame after the first."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]
    DEFAULT_CSS = """
    FilterModal { align: center middle; }
    FilterModal > Vertical { width: 60; max-width: 95%; height: auto; max-height: 80%; border: thick $accent; background: $surface; padding: 0 1; }
    FilterModal SelectionList { height: auto; max-height: 16; }
    FilterModal Horizontal { height: auto; align-horizontal: right; }
    """

    def __init__(self, title: str = "", values: list[tuple[Any, int]] | None = None, selected: frozenset = frozenset(),
                 on_apply: Callable[[frozenset, Callable[[], None]], None] | None = None, label: Callable[[Any], str] = str) -> None:
        super().__init__()
        self._composed = False
        self.show_values(title, values or [], selected, on_apply, label)

    def show_values(self, title: str, values: list[tuple[Any, int]], selected: frozenset,
                    on_apply: Callable[[frozenset, Callable[[], None]], None] | None = None, label: Callable[[Any], str] = str) -> None:
        """The column and values to offer the next time the modal opens."""
        self.title_text = title
        self.values = values
        self.label = label  # a value as the grid shows it
        self.selected = selected
        # on_apply(values, close): the grid queries, and calls close() once its page is shown
        self.on_apply = on_apply
        self._closing = False
        if self._composed:
            self._fill()

    def _done(self, selected: frozenset) -> None:
        if self._closing:  # applied already: it closes with the grid's new page
            return
        if self.on_apply is None:
            self.dismiss(selected)
            return
        # the modal stays up until the grid has its filtered page (or a moment at most), then
        # goes in the same repaint as the page comes in: one frame, not two
        self._closing = True
        self.on_apply(selected, lambda: self._close(selected))
        self.set_timer(self.CLOSE_WAIT, lambda: self._close(selected))

    CLOSE_WAIT = 0.3  # seconds the modal waits for the grid's page before it closes anyway

    def _close(self, selected: frozenset) -> None:
        if self._closing and self.app.screen is self:
            self._closing = False
            self.dismiss(selected)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("", classes="filter-title")
            yield _ValueList()
            with Horizontal():
                yield Button("Clear", id="clear")
                yield Button("Apply", id="apply", variant="primary")

    def on_mount(self) -> None:
        self._composed = True
        self._fill()

    def _fill(self) -> None:
        self.query_one(".filter-title", Label).update(
            Text(f"Filter: {self.title_text}  (space toggles, enter applies)"))
        values = self.query_one(_ValueList)
        values.clear_options()
        values.add_options([  # values are data: shown literally
            Selection(Text(f"{'(empty)' if v is None else safe_text(self.label(v))}  ({n:,})"), v, v in self.selected)
            for v, n in self.values
        ])
        if values.option_count:
            values.highlighted = 0
        values.scroll_home(animate=False)
        self.set_focus(values)

    def action_apply(self) -> None:
        self._done(frozenset(self.query_one(SelectionList).selected))

    @on(Button.Pressed, "#apply")
    def _apply(self) -> None:
        self.action_apply()

    @on(Button.Pressed, "#clear")
    def _clear(self) -> None:
        self._done(frozenset())


class SearchBox(Input):
    """A grid's search box: tells the grid of a change as it happens, before any repaint."""

    def __init__(self, changed: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._changed = changed

    def watch_value(self) -> None:
        self._changed()


def focus_now(widget: Widget) -> None:
    """Give the widget the keys before the next key is handled (`Widget.focus()` only queues
    the change, behind the keys already typed)."""
    widget.screen.set_focus(widget)


MARK_WIDTH = 3  # " ● " before every row
SPACE = Segment(" ")
MAX_COLUMN_WIDTH = 60  # a cell longer than this is cut even where there is room
PREFILL_AFTER_S = 1.0  # a page shown this long: its kept columns are made (see SqlGrid._fetch)


def title_width(title: str) -> int:
    """The narrowest width at which a title takes at most two lines, cut between words."""
    words = title.split()
    best = cell_len(title)
    for n in range(1, len(words)):
        best = min(best, max(cell_len(" ".join(words[:n])), cell_len(" ".join(words[n:]))))
    return best


def wrap_title(title: Text, width: int) -> list[Text]:
    """A styled title on as few lines as `width` allows (two at most), cut between words."""
    if title.cell_len <= width:
        return [title]
    plain = title.plain
    cut = max((n for n, ch in enumerate(plain) if ch == " " and cell_len(plain[:n]) <= width), default=-1)
    if cut < 0:
        return [title]
    first, second = title[:cut], title[cut + 1:]
    return [first, second]


class SqlGrid(Vertical):
    """A grid over a GridSource. Post `SqlGrid.RowChosen` on enter."""

    # the cache whose prefill runs on the one database thread now (see _fetch), if any
    _prefilling: ClassVar[GridCache | None] = None

    class RowChosen(Message):
        """Enter on a row. `control` is the grid, so `@on(SqlGrid.RowChosen, "#grid-invoices")` works."""

        def __init__(self, grid: SqlGrid, key: str) -> None:
            super().__init__()
            self.grid = grid
            self.key = key

        @property
        def control(self) -> SqlGrid:
            return self.grid

    class Loaded(Message):
        """A page arrived; `control` is the grid."""

        def __init__(self, grid: SqlGrid, page: Page) -> None:
            super().__init__()
            self.grid = grid
            self.page = page

        @property
        def control(self) -> SqlGrid:
            return self.grid

    # `/`, escape and enter move the keys between the rows and the boxes. They are priority
    # bindings: the app runs them as each key arrives, so the keys typed after them go where
    # they now belong. (A plain binding runs only after the focused widget has declined the
    # key; by then the keys typed quickly after `/` were already handed to the table, and the
    # search box lost them: "1414" -> a "1" switched to the Dashboard, an "s" of "skipped" sorted.)
    # Where they are not for the grid, they are the focused widget's (SkipAction): `/` typed in
    # the search is a letter. Keys typed before them may still wait in the box's queue: what
    # reads the box waits for them (call_later on the box).
    BINDINGS = [
        Binding("slash", "focus_search", "Search", id="grid.search", priority=True),
        Binding("escape", "leave_box", "Leave the search box", id="grid.leave_box", show=False, priority=True),
        Binding("enter", "leave_box(True)", "Apply, leave the box", id="grid.apply_box", show=False, priority=True),
        Binding("s", "sort", "Sort", id="grid.sort"),
        Binding("S", "sort_more", "Sort by one more column", id="grid.sort_more", show=False),
        Binding("f", "filter", "Filter", id="grid.filter"),
        Binding("space", "mark", "Mark", id="grid.mark"),
        Binding("ctrl+a", "mark_all", "Mark all matching", id="grid.mark_all", show=False),
        Binding("U", "clear_marks", "Clear marks", id="grid.clear_marks", show=False),
        Binding("ctrl+e", "export", "Export CSV", id="grid.export", show=False),
        Binding("greater_than_sign", "page(1)", "Next page", id="grid.next_page", show=False),
        Binding("less_than_sign", "page(-1)", "Prev page", id="grid.prev_page", show=False),
    ]
    MARK_STYLE = Style(bold=True, color="yellow")
    DEFAULT_CSS = """
    SqlGrid { height: 1fr; }
    SqlGrid .grid-bar { height: 1; }
    SqlGrid .grid-bar Input { width: 1fr; height: 1; border: none; padding: 0 1; }
    SqlGrid .grid-bar Select { width: 14; }
    SqlGrid .grid-pager .pages { width: 9; }
    SqlGrid .grid-pager .range { width: 28; padding: 0 1; }
    SqlGrid GridTable { height: 1fr; }
    SqlGrid .grid-pager { height: 1; }
    SqlGrid .grid-pager Button { min-width: 0; width: auto; height: 1; border: none; padding: 0 1; }
    SqlGrid .grid-pager Input { width: 8; height: 1; border: none; padding: 0 1; }
    SqlGrid .summary { height: 1; padding: 0 1; color: $text-muted; width: 1fr; }
    SqlGrid .summary-line { height: 1; padding: 0 1; color: $text-muted; display: none; }
    """

    def __init__(self, source: GridSource, *, formatters: dict[str, Formatter] | None = None,
                 summary: Callable[[Page], str | list[str]] | None = None, page_size: int = 20, id: str | None = None) -> None:
        super().__init__(id=id)
        self.source = source
        self.formatters = formatters or {}
        self.summary_text = summary
        self.state = GridState(page_size=page_size)
        self.page: Page | None = None
        self._cursor_after_load: str | None = None  # "first" or "last" after a page move
        # marks live here, not in the table: keys of marked rows, or every row that matches
        self.marked: set[str] = set()
        self.all_matching = False
        self.column_index = 0  # the current column among the visible ones (sort, filter)
        self._rows: dict[str, tuple] = {}
        self._cache = GridCache()  # counts and matching rows, reused until the database changes
        self._columns_for: GridSource | None = None
        self._format_cache: dict[tuple[str, Any], Any] = {}  # (column, value) -> its styled text
        self._styled_cache: dict[tuple[str, Any], tuple[list[Segment], int]] = {}  # ... rendered, its cells
        self._cell_cache: dict[tuple[str, Any, int], list[Segment]] = {}  # ... cut to a width
        self._columns_cache: list = []
        self._widths: dict[str, int] = {}  # column key -> width, chosen for the page shown (_layout)
        self._laid_out_width = -1  # the width _layout chose them for
        self._header_key: tuple | None = None
        self._header_cached: list[Text] = []
        self._filter_modal: FilterModal | None = None  # installed once, filled anew each time
        self._summary_shown: tuple[str, bool] | None = None  # the summary's text and whether beside the pager
        self._after_fetch: list[Callable[[], None]] = []  # run once the next fetch is done (shown or failed)

    def compose(self) -> ComposeResult:
        with Horizontal(classes="grid-bar"):
            yield SearchBox(self._search_typed, placeholder=f"/ Search {self.source.name}…", classes="search", compact=True)
            yield Select([(f"{n} / page", n) for n in PAGE_SIZES], value=self.state.page_size, allow_blank=False,
                         compact=True, classes="page-size")
        yield GridTable()
        with Horizontal(classes="grid-pager"):
            yield Button("‹ Prev", classes="prev", compact=True)
            yield Input(value="1", classes="page-number", compact=True, restrict=r"\d*")
            yield Label("of 1", classes="pages")
            yield Button("Next ›", classes="next", compact=True)
            yield Label("", classes="range")
            yield Static("", classes="summary")
        # the summary's own line, shown when it does not fit beside the pager (80 columns)
        yield Static("", classes="summary-line")

    @property
    def table(self) -> GridTable:
        return self.query_one(GridTable)

    def on_mount(self) -> None:
        self.reload()

    def set_source(self, source: GridSource) -> None:
        self.source = source
        self.state = replace(self.state, page=1, filters=())
        self.reload(clear_marks=True)

    # --------------------------------------------------------------- data

    def reload(self, *, clear_marks: bool = False) -> None:
        """Query the page again; `clear_marks` when the marked rows no longer mean anything
        (another source, or a bulk change made to them). The new page is drawn without them."""
        if clear_marks:
            self.marked.clear()
            self.all_matching = False
        self._fetch(self.source, self.state)

    @work(exclusive=True, group="grid-fetch", exit_on_error=False)
    async def _fetch(self, source: GridSource, state: GridState) -> None:
        # One long-lived database thread for all grids: its SQLite connection and page cache
        # stay warm (a new thread per query would open a new, cold connection every time).
        loop = asyncio.get_running_loop()
        self._stop_prefill()
        await self._fetch_and_show(loop, source, state)
        self._release_held()  # shown or failed (a fetch cancelled by a newer one leaves them to that one)
        # Once the page has been shown a while, the kept columns (Mapping Status) are made for
        # the first sort or filter by one; not at once: a bulk change's reload would otherwise
        # make them while the next change runs. A newer fetch cancels this and stops a fill.
        await asyncio.sleep(PREFILL_AFTER_S)
        SqlGrid._prefilling = self._cache
        try:
            await loop.run_in_executor(self.app.db_executor, self._cache.prefill, self.app.store, source)  # type: ignore[attr-defined]
        except Exception:
            pass  # only ahead of need: a sort or filter makes what it needs, and says what failed
        finally:
            if SqlGrid._prefilling is self._cache:
                SqlGrid._prefilling = None

    @staticmethod
    def _stop_prefill() -> None:
        """Stop a prefill on the one database thread (any grid's), so this grid's query does not wait for it."""
        if SqlGrid._prefilling is not None:
            SqlGrid._prefilling.interrupt()

    async def _fetch_and_show(self, loop, source: GridSource, state: GridState) -> None:
        try:
            page = await loop.run_in_executor(self.app.db_executor, fetch_page, self.app.store, source, state,  # type: ignore[attr-defined]
                                              self._cache)
            self._show(page)
        except DATABASE_ERRORS as error:  # locked or damaged: the file and the cause; what is shown stays
            self.app.database_problem(error)  # type: ignore[attr-defined]
        except Exception as error:  # a bug: say so, keep what is shown
            import traceback

            from cw_tui.services import system_log

            summary = f"Could not show the {self.source.name}: {error}"
            category = {"organizations": system_log.Category.ORGANIZATIONS, "products": system_log.Category.PRODUCTS,
                        "invoice lines": system_log.Category.INVOICES}.get(self.source.name, system_log.Category.CONFIGURATION)
            try:
                system_log.write(self.app.store, system_log.Level.ERROR, category, summary, traceback.format_exc())  # type: ignore[attr-defined]
            except Exception:
                pass
            self.app.notify(summary + " (ctrl+r retries; details in System Logs)", severity="error")

    def _header(self, column) -> Text:
        direction = dict(self.state.sort).get(column.key)
        mark = "" if direction is None else (" ▼" if direction else " ▲")
        if direction is not None and len(self.state.sort) > 1:  # which key it is: ▲1, ▼2
            mark += str([k for k, _ in self.state.sort].index(column.key) + 1)
        funnel = " ⚲" if self.state.filter_values(column.key) else ""
        current = self.current_column()
        style = "bold reverse" if current is not None and current.key == column.key else "bold"
        return Text(column.title + mark + funnel, style=style)

    def _visible(self) -> list:
        return [c for _, c in self._row_columns()]

    def width_of(self, column: Column) -> int:
        return self._widths.get(column.key) or column.width or 10

    def _header_lines(self) -> list[Text]:
        """The column titles, laid out like the rows: one line, or two where a title is wider
        than its column (a title is never cut)."""
        key = (id(self.source), self.state.sort, self.state.filters, self.column_index, tuple(self._widths.items()))
        if key != self._header_key:
            self._header_key, self._header_cached = key, self._lay_out_header()
        return self._header_cached

    def _lay_out_header(self) -> list[Text]:
        cells = [(column, wrap_title(self._header(column), self.width_of(column))) for column in self._visible()]
        height = max([1, *(len(lines) for _, lines in cells)])
        out = []
        for y in range(height):
            text = Text(" ● " if y == 0 else "   ", style="bold")
            for column, lines in cells:
                line = lines[y] if y < len(lines) else Text("", style=lines[0].style if lines else "")
                text.append_text(self._fit(line, self.width_of(column), False))
            out.append(text)
        return out

    @staticmethod
    def _fit(cell: Text, width: int, right: bool) -> Text:
        """A styled cell cut or padded to its column's width, with a space either side."""
        cell = cell.copy()
        cell.truncate(width, overflow="ellipsis")
        pad = width - cell.cell_len
        out = Text(" ")
        if right and pad > 0:
            out.append(" " * pad)
        out.append_text(cell)
        if not right and pad > 0:
            out.append(" " * pad)
        out.append(" ")
        return out

    @staticmethod
    def _fit_plain(cell: str, width: int, right: bool) -> str:
        if cell_len(cell) > width:
            cell = set_cell_size(cell, width - 1) + "…"
        pad = " " * (width - cell_len(cell))
        return f" {pad}{cell} " if right else f" {cell}{pad} "

    def _formatted(self, column: Column, value: Any) -> Any:  # a str or a Text
        # Every cell is data: its controls are made visible (safe_text) before it is measured. The
        # test that nearly every text passes is made here, inline: it runs for every cell drawn.
        formatter = self.formatters.get(column.key)
        if formatter is None and column.display is None:
            text = "" if value is None else str(value)
            return text if text.isprintable() else safe_text(text)
        # Display texts and formatters are pure functions of the value (badges, amounts, dates): remember them.
        key = (column.key, value)
        cached = self._format_cache.get(key)
        if cached is None:
            text = column.shown(value)
            if not text.isprintable():
                text = safe_text(text)
            cached = text if formatter is None else formatter(text, value)
            if len(self._format_cache) > 50_000:
                self._format_cache.clear()
            self._format_cache[key] = cached
        return cached

    def _cell(self, column, value) -> list[Segment]:
        width = self.width_of(column)
        cell = self._formatted(column, value)
        if isinstance(cell, str):
            return [Segment(self._fit_plain(cell, width, column.numeric))]
        # A styled cell is rendered once; widths change from page to page (_layout), so it is then
        # only padded, and rendered again only where it must be cut.
        key = (column.key, value)
        rendered = self._styled_cache.get(key)
        if rendered is None:
            spans = Text()
            spans.append_text(cell)  # its own style becomes a span: Text.render ignores it otherwise
            rendered = self._styled_cache[key] = (list(spans.render(self.app.console)), cell.cell_len)
            if len(self._styled_cache) > 50_000:
                self._styled_cache.clear()
        segments, length = rendered
        if length > width:
            cut = self._cell_cache.get((column.key, value, width))
            if cut is None:
                cut = self._cell_cache[(column.key, value, width)] = list(
                    self._fit(cell, width, column.numeric).render(self.app.console))
                if len(self._cell_cache) > 50_000:
                    self._cell_cache.clear()
            return cut
        pad = [Segment(" " * (width - length))] if width > length else []
        if column.numeric:
            return [SPACE, *pad, *segments, SPACE]
        return [SPACE, *segments, *pad, SPACE]

    def _row_strip(self, key: str, row: tuple) -> Strip:
        # A row is rendered once, when its page arrives; GridTable only crops and styles it.
        marked = self.all_matching or key in self.marked
        segments = [Segment(" "), Segment("●", self.MARK_STYLE) if marked else Segment(" "), Segment(" ")]
        width = MARK_WIDTH
        for index, column in self._row_columns():
            segments.extend(self._cell(column, row[index]))
            width += self.width_of(column) + 2
        return Strip(segments, width)

    def _available_width(self) -> int:
        region = self.table.scrollable_content_region.width
        return region if region > 0 else max(40, self.app.size.width - 2)

    def _layout(self) -> None:
        """Each column's width for the page shown: every title readable (on two lines at most),
        every cell whole where the width there is allows; where it does not, the columns keep
        their usual widths and the room left goes to the cut ones (names first)."""
        columns = self._row_columns()
        rows = list(self._rows.values())
        self._laid_out_width = self._available_width()
        room = self._laid_out_width - MARK_WIDTH - 2 * len(columns)
        # a wide screen gives a long name more than its usual width even when the grid scrolls
        usual = max(0, room // 5)
        lows, highs = {}, {}
        for index, column in columns:
            title = title_width(self._header(column).plain)
            content = max([0, *(cell_len(c) if isinstance(c, str) else c.cell_len
                                for c in (self._formatted(column, row[index]) for row in rows))])
            base = max(column.width or 10, usual)
            lows[column.key] = max(title, min(content, base, MAX_COLUMN_WIDTH), 3)
            highs[column.key] = max(title, min(content, MAX_COLUMN_WIDTH), 3)
        widths = dict(lows)
        spare = room - sum(widths.values())
        # the room left, shared out in proportion to what each column lacks (water filling)
        while spare > 0:
            short = {k: highs[k] - widths[k] for k in widths if highs[k] > widths[k]}
            if not short:
                break
            lacking = sum(short.values())
            given = 0
            for k, lack in short.items():
                share = min(lack, max(1, spare * lack // lacking))
                share = min(share, spare - given)
                widths[k] += share
                given += share
                if given >= spare:
                    break
            spare -= given
            if given == 0:
                break
        self._widths = widths

    def _bounds(self) -> list[tuple[int, int, bool]]:
        """Each shown column's cells in a row (x, width, numeric)."""
        bounds, x = [], MARK_WIDTH
        for column in self._visible():
            width = self.width_of(column) + 2
            bounds.append((x, width, column.numeric))
            x += width
        return bounds

    def _sticky(self) -> tuple[int, int] | None:
        """Where the row's name column lies in a row (x, cells): it stays in view when the
        columns scroll."""
        key = self.source.name_key
        x = MARK_WIDTH
        for column in self._visible():
            width = self.width_of(column) + 2
            if column.key == key:
                return x, width
            x += width
        return None

    def _row_columns(self) -> list:
        """(index in the row, Column) of the visible columns."""
        if self._columns_for is not self.source:
            self._columns_for = self.source
            self._columns_cache = [(n, c) for n, c in enumerate(self.source.columns) if c.width != 0]
            self._cell_cache.clear()
            self._styled_cache.clear()
            self._format_cache.clear()
        return self._columns_cache

    def _show(self, page: Page) -> None:
        self.page = page
        self.state = replace(self.state, page=page.page)
        self._rows = dict(zip(page.keys, page.rows, strict=False))
        wanted = {"first": 0, "last": len(page.keys) - 1}.get(self._cursor_after_load or "", self.table.cursor_row)
        self._layout()
        self._draw_rows(wanted)
        self._cursor_after_load = None
        # fixed widths: new text repaints the labels without a layout pass of the screen
        self.query_one(".pages", Label).update(f"of {page.pages:,}", layout=False)
        self.query_one(".range", Label).update(page.range_text(), layout=False)
        self.query_one(".page-number", Input).value = str(page.page)
        self._update_summary()
        self.post_message(self.Loaded(self, page))

    # --------------------------------------------------------------- actions

    def current_key(self) -> str | None:
        return self.table.cursor_key

    def current_values(self) -> dict[str, Any] | None:
        """The cursor row's values as read (not as shown), by column key; None on an empty page."""
        key = self.current_key()
        row = self._rows.get(key) if key is not None else None
        return None if row is None else {c.key: v for c, v in zip(self.source.columns, row, strict=False)}

    def current_column(self):
        visible = self._visible()
        return visible[min(self.column_index, len(visible) - 1)] if visible else None

    def move_column(self, step: int) -> None:
        visible = self._visible()
        if not visible:
            return
        self.column_index = max(0, min(len(visible) - 1, self.column_index + step))
        table = self.table
        table.set_header(self._header_lines())
        # keep the chosen column in view, right of the mark and of the name column that stays
        x = MARK_WIDTH + sum(self.width_of(c) + 2 for c in visible[: self.column_index])
        width = self.width_of(visible[self.column_index]) + 2
        sticky = self._sticky()
        hidden = MARK_WIDTH + (sticky[1] if sticky and x > sticky[0] else 0)
        shown = table.scrollable_content_region.width or table.size.width
        if x - table.scroll_x < hidden and not (sticky and x == sticky[0]):
            table.scroll_to(x=max(0, x - hidden), animate=False)
        elif x + width > table.scroll_x + shown:
            table.scroll_to(x=x + width - shown, animate=False)
        table.refresh()

    def column_at(self, x: int):
        """The column under a click on the header (x in a row's coordinates)."""
        position = MARK_WIDTH
        for column in self._visible():
            position += self.width_of(column) + 2
            if x < position:
                return column
        return None

    # --------------------------------------------------------------- marks

    def marked_count(self) -> int:
        if self.all_matching:
            return self.page.total if self.page else 0
        return len(self.marked)

    def marked_selection(self) -> RowSelection:
        """The marked rows: with "all matching", the grid's own search and filters."""
        if self.all_matching:
            return RowSelection.all_matching(self.source, self.state)
        return RowSelection.of_keys(self.source, self.marked)

    def action_mark(self) -> None:
        key = self.current_key()
        if key is None:
            return
        if self.all_matching:  # leave "all matching" for explicit marks of what is on the page
            self.all_matching = False
            self.marked = set(self.page.keys) if self.page else set()
        self.marked.symmetric_difference_update({key})
        self.table.update_row(key, self._row_strip(key, self._rows[key]))
        self.table.move_cursor(row=min(self.table.cursor_row + 1, self.table.row_count - 1))
        self._update_summary()

    def action_mark_all(self) -> None:
        self.all_matching = True
        self.marked.clear()
        total = self.page.total if self.page else 0
        self.app.notify("The 1 matching row is marked." if total == 1 else f"All {plural(total, 'matching row')} are marked.")
        self._show_marks()

    def action_clear_marks(self) -> None:
        self.all_matching = False
        self.marked.clear()
        self._show_marks()

    def _show_marks(self) -> None:
        """Marks live in the widget: redraw the page's rows, no query."""
        if self.page is not None:
            self._draw_rows(self.table.cursor_row)
            self._update_summary()

    def _draw_rows(self, cursor_row: int) -> None:
        self.table.set_rows(self._header_lines(), [(k, self._row_strip(k, r)) for k, r in self._rows.items()],
                            cursor_row=cursor_row, sticky=self._sticky(), bounds=self._bounds())

    def _update_summary(self) -> None:
        if self.page is not None:
            # a summary may come in shorter forms too (longest first): the longest that fits
            summary = self.summary_text(self.page) if self.summary_text else \
                f"Showing {len(self.page.rows):,} of {plural(self.page.total, self.source.singular, self.source.name)}"
            marks = self.marked_count()
            variants = [(f"{marks:,} marked · " if marks else "") + text
                        for text in ([summary] if isinstance(summary, str) else summary)]
            beside, line = self.query_one(".summary", Static), self.query_one(".summary-line", Static)
            # beside the pager where it fits whole, else on a line of its own under it (the
            # line is shown or hidden only when that changes: a layout pass of the screen)
            room = beside.content_region.width
            if not room and not self.size.width:  # not laid out yet: on_resize comes back
                text, fits = variants[0], True
            else:
                text = next((v for v in variants if cell_len(v) <= room), None)
                fits = text is not None
                if text is None:
                    text = next((v for v in variants if cell_len(v) <= self.size.width - 2), variants[-1])
            if (text, fits) == self._summary_shown:
                return  # a tab shown again: nothing to repaint
            self._summary_shown = (text, fits)
            if line.display == fits:
                line.display = not fits
            beside.update(text if fits else "", layout=False)
            line.update("" if fits else text, layout=False)

    def action_export(self) -> None:
        from pathlib import Path

        from cw_tui.services.export import export_name

        self._export(self.source, self.state, Path.home() / export_name(self.source, self.app.now()))  # type: ignore[attr-defined]

    @work(group="grid-export", exit_on_error=False)
    async def _export(self, source: GridSource, state: GridState, path) -> None:
        from cw_tui.services.export import export_csv

        # every matching row is read and written: on the database thread, the screen stays live
        loop = asyncio.get_running_loop()
        self._stop_prefill()
        try:
            count = await loop.run_in_executor(self.app.db_executor, export_csv, self.app.store, source, state, path)  # type: ignore[attr-defined]
        except OSError as error:
            self.app.notify(f"Export failed: {error.strerror or error} ({path}); no file was written", severity="error",
                            markup=False)
            return
        except Exception as error:
            self.app.notify(f"Export failed: {error}; no file was written", severity="error", markup=False)
            return
        self.app.notify(f"Exported {plural(count, source.singular, source.name)} to {path}", markup=False)

    def action_focus_search(self) -> None:
        search = self.query_one(".search", Input)
        if self.screen.focused is search:
            raise SkipAction()  # typed into the search
        focus_now(search)

    def action_leave_box(self, submit: bool = False) -> None:
        """escape or enter in the search box: back to the rows, the search kept (the rows shown
        are the ones found, ready to be marked or opened; ctrl+u in the box clears it). enter in
        the page number goes to that page, escape leaves it as it was."""
        focused = self.screen.focused
        number = self.query_one(".page-number", Input)
        if focused is not self.query_one(".search", Input) and focused is not number:
            raise SkipAction()
        if focused is number:  # read once the digits typed before this key are in the box
            if submit:  # the focus moving to the rows and the page typed: shown in one repaint
                self._hold_repaints()
            number.call_later(self._page_typed, submit)
        focus_now(self.table)

    HOLD = 0.3  # seconds at most that the screen waits for a page (see _hold_repaints)
    # ... after a change of the search: the typed text is seen this soon, whatever the search costs
    HOLD_SEARCH = 0.08

    def _search_typed(self) -> None:
        """The search box's text changed (a key, a paste, set_search): its repaint waits for the
        page found (Input.Changed, and the fetch it starts, come after). Drawn apart, the text's
        frame would make the page's wait for the next one (Textual paints at most 60 times a
        second): ~15 ms more per key."""
        if self.is_mounted:
            self._hold_repaints(self.HOLD_SEARCH)

    def _hold_repaints(self, hold: float = HOLD) -> None:
        """No repaint of the screen until this grid's next fetch is done (or `hold` seconds at
        most): a change shown now (the focus, a closed box, the search's text) and the page that
        follows it are drawn in one frame, not two. The keys still go where they belong at once."""
        app = self.app
        app._begin_batch()  # Textual's batch_update, held across the fetch
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                app._end_batch()
                app.screen.check_idle()  # its repaint timer runs again

        self._after_fetch.append(release)
        app.set_timer(hold, release)

    def _page_typed(self, submit: bool) -> None:
        number = self.query_one(".page-number", Input)
        if submit and number.value.isdigit():
            self.state = replace(self.state, page=max(1, int(number.value)))
            self.reload()
        else:
            if self.page is not None:
                number.value = str(self.page.page)
            self._release_held()

    def _release_held(self) -> None:
        """Run the callbacks that wait for a fetch when none is coming."""
        waiting, self._after_fetch = self._after_fetch, []
        for callback in waiting:
            callback()

    def action_sort(self) -> None:
        self._sort(self.current_column(), GridState.toggled_sort)

    def action_sort_more(self) -> None:
        self._sort(self.current_column(), GridState.with_sort_key)

    def _sort(self, column, change: Callable[[GridState, str], GridState]) -> None:
        if column is not None and column.sortable:
            self.column_index = self._visible().index(column)
            self.state = change(self.state, column.key)
            self.reload()

    def action_filter(self, key: str | None = None) -> None:
        column = self.source.column(key) if key else self.current_column()
        if column is None or not column.filterable:
            filterable = [c for c in self.source.columns if c.filterable]
            if not filterable:
                self.app.notify("No column of this grid can be filtered.")
                return
            column = filterable[0]
        self._open_filter(column)

    @work(exclusive=True, group="grid-filter-values", exit_on_error=False)
    async def _open_filter(self, column) -> None:
        # counting a column's values reads every matching row: on the database thread
        loop = asyncio.get_running_loop()
        self._stop_prefill()
        try:
            values = await loop.run_in_executor(self.app.db_executor, lambda: distinct_values(  # type: ignore[attr-defined]
                self.app.store, self.source, column.key, self.state, cache=self._cache))  # type: ignore[attr-defined]
        except Exception as error:
            self.app.notify(f"Could not list the values of {column.title}: {error}", severity="error")
            return

        def apply(selected: frozenset, close: Callable[[], None]) -> None:
            self.all_matching = False
            self.state = self.state.with_filter(column.key, selected)
            self._after_fetch.append(close)
            self.reload()

        if self._filter_modal is None:
            self._filter_modal = FilterModal()
            self.app.install_screen(self._filter_modal, self._filter_name)
        elif self._filter_modal in self.app.screen_stack:  # already open
            return
        self._filter_modal.show_values(column.title, values, self.state.filter_values(column.key), on_apply=apply,
                                       label=column.shown)
        self.app.push_screen(self._filter_name)

    @property
    def _filter_name(self) -> str:
        return f"grid-filter-{id(self)}"

    def on_unmount(self) -> None:
        if self._filter_modal is not None and self._filter_modal not in self.app.screen_stack:
            self.app.uninstall_screen(self._filter_modal)
            if self._filter_modal.is_attached:
                self._filter_modal.remove()

    def action_page(self, step: int) -> None:
        if self.page is None:
            return
        target = min(max(1, self.page.page + step), self.page.pages)
        if target != self.page.page:
            self.state = replace(self.state, page=target)
            self.reload()

    def set_filter(self, key: str, values: frozenset) -> None:
        self.all_matching = False
        self.state = self.state.with_filter(key, values)
        self.reload()

    def set_search(self, text: str) -> None:
        self.query_one(".search", Input).value = text
        self.state = replace(self.state, search=text, page=1)
        self.reload()

    # --------------------------------------------------------------- events

    @on(Input.Changed, ".search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.all_matching = False  # "all matching" meant the rows of the old search
        self.state = replace(self.state, search=event.value, page=1)
        self.reload()

    @on(Select.Changed, ".page-size")
    def _page_size(self, event: Select.Changed) -> None:
        if isinstance(event.value, int) and event.value != self.state.page_size:
            self.state = replace(self.state, page_size=event.value, page=1)
            self.reload()

    @on(Button.Pressed, ".prev")
    def _prev(self) -> None:
        self.action_page(-1)

    @on(Button.Pressed, ".next")
    def _next(self) -> None:
        self.action_page(1)

    def header_clicked(self, x: int) -> None:
        self._sort(self.column_at(x), GridState.toggled_sort)

    @on(GridTable.RowSelected)
    def _row_selected(self, event: GridTable.RowSelected) -> None:
        event.stop()
        self.post_message(self.RowChosen(self, event.key))

    @on(GridTable.ColumnStep)
    def _column_step(self, event: GridTable.ColumnStep) -> None:
        event.stop()
        self.move_column(event.step)

    @on(GridTable.HeaderClicked)
    def _header_clicked(self, event: GridTable.HeaderClicked) -> None:
        event.stop()
        self.header_clicked(event.x)

    def on_resize(self) -> None:
        # the width there is changed: the columns are laid out again, no query. A tab shown
        # again at the width its rows were drawn for keeps them (a redraw cost a frame).
        if self.page is not None and self._available_width() != self._laid_out_width:
            self._layout()
            self._draw_rows(self.table.cursor_row)
        if self.page is not None:
            self.call_after_refresh(self._summary_after_layout)

    def _summary_after_layout(self) -> None:
        """The room beside the pager, once laid out (not on a grid going away)."""
        if self.is_attached and not self._pruning:
            self._update_summary()

    def on_key(self, event) -> None:
        table = self.table
        if not table.has_focus or self.page is None:
            return
        # moving past the last row goes to the next page, before the first to the previous one
        if event.key == "down" and table.cursor_row == table.row_count - 1 and self.page.page < self.page.pages:
            event.stop()
            self._cursor_after_load = "first"
            self.action_page(1)
        elif event.key == "up" and table.cursor_row == 0 and self.page.page > 1:
            event.stop()
            self._cursor_after_load = "last"
            self.action_page(-1)
