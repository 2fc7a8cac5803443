"""One SQL-paged grid widget for every grid: search box, sortable headers with an indicator,
per-column multi-select filters, items per page, page number, previous/next, and the summary
line. The widget shows one page; `services.grid_query` does the work in SQL."""

from __future__ import annotations

import asyncio

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Select, SelectionList, Static
from textual.widgets.selection_list import Selection

from cw_tui.services.grid_query import PAGE_SIZES, GridSource, GridState, Page, distinct_values, fetch_page

Formatter = Callable[[Any], Any]


class _ValueList(SelectionList):
    """space toggles a value, enter applies the filter (SelectionList would toggle on enter)."""

    BINDINGS = [Binding("enter", "screen.apply", "Apply")]


class GridTable(DataTable):
    """The grid's table: a row cursor, and left/right choose the column that `s` sorts and
    `f` filters (a row cursor alone has no current column)."""

    BINDINGS = [
        Binding("left", "column(-1)", "Column left", show=False),
        Binding("right", "column(1)", "Column right", show=False),
    ]

    def action_column(self, step: int) -> None:
        grid = self.parent
        if isinstance(grid, SqlGrid):
            grid.move_column(step)

    def on_click(self, event) -> None:  # noqa: ANN001 - a Click event
        grid = self.parent
        if event.y == 0 and isinstance(grid, SqlGrid):  # the header row: sort by that column
            event.stop()
            grid.header_clicked(event.x + int(self.scroll_x))


class FilterModal(ModalScreen[frozenset | None]):
    """The multi-select list of a column's values."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]
    DEFAULT_CSS = """
    FilterModal { align: center middle; }
    FilterModal > Vertical { width: 60; max-width: 95%; height: auto; max-height: 80%; border: thick $accent; background: $surface; padding: 0 1; }
    FilterModal SelectionList { height: auto; max-height: 16; }
    FilterModal Horizontal { height: auto; align-horizontal: right; }
    """

    def __init__(self, title: str, values: list[tuple[Any, int]], selected: frozenset) -> None:
        super().__init__()
        self.title_text = title
        self.values = values
        self.selected = selected

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Filter: {self.title_text}  (space toggles, enter applies)")
            yield _ValueList(*[
                Selection(f"{'(empty)' if v is None else v}  ({n:,})", v, v in self.selected) for v, n in self.values
            ])
            with Horizontal():
                yield Button("Clear", id="clear")
                yield Button("Apply", id="apply", variant="primary")

    def on_mount(self) -> None:
        self.query_one(SelectionList).focus()

    def action_apply(self) -> None:
        self.dismiss(frozenset(self.query_one(SelectionList).selected))

    @on(Button.Pressed, "#apply")
    def _apply(self) -> None:
        self.action_apply()

    @on(Button.Pressed, "#clear")
    def _clear(self) -> None:
        self.dismiss(frozenset())


class SqlGrid(Vertical):
    """A grid over a GridSource. Post `SqlGrid.RowChosen` on enter."""

    class RowChosen(Message):
        def __init__(self, grid: "SqlGrid", key: str) -> None:
            super().__init__()
            self.grid = grid
            self.key = key

    class Loaded(Message):
        def __init__(self, grid: "SqlGrid", page: Page) -> None:
            super().__init__()
            self.grid = grid
            self.page = page

    BINDINGS = [
        Binding("slash", "focus_search", "Search", id="grid.search"),
        Binding("s", "sort", "Sort", id="grid.sort"),
        Binding("f", "filter", "Filter", id="grid.filter"),
        Binding("space", "mark", "Mark", id="grid.mark"),
        Binding("ctrl+a", "mark_all", "Mark all matching", id="grid.mark_all", show=False),
        Binding("U", "clear_marks", "Clear marks", id="grid.clear_marks", show=False),
        Binding("ctrl+e", "export", "Export CSV", id="grid.export", show=False),
        Binding("greater_than_sign", "page(1)", "Next page", id="grid.next_page", show=False),
        Binding("less_than_sign", "page(-1)", "Prev page", id="grid.prev_page", show=False),
    ]
    DEFAULT_CSS = """
    SqlGrid { height: 1fr; }
    SqlGrid .grid-bar { height: 1; }
    SqlGrid .grid-bar Input { width: 1fr; height: 1; border: none; padding: 0 1; }
    SqlGrid .grid-bar Select { width: 14; }
    SqlGrid .grid-bar .range { width: auto; padding: 0 1; }
    SqlGrid DataTable { height: 1fr; }
    SqlGrid .grid-pager { height: 1; }
    SqlGrid .grid-pager Button { min-width: 0; width: auto; height: 1; border: none; padding: 0 1; }
    SqlGrid .grid-pager Input { width: 8; height: 1; border: none; padding: 0 1; }
    SqlGrid .summary { height: 1; padding: 0 1; color: $text-muted; width: 1fr; }
    """

    def __init__(self, source: GridSource, *, formatters: dict[str, Formatter] | None = None,
                 summary: Callable[[Page], str] | None = None, page_size: int = 20, id: str | None = None) -> None:
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

    def compose(self) -> ComposeResult:
        with Horizontal(classes="grid-bar"):
            yield Input(placeholder=f"/ Search {self.source.name}…", classes="search", compact=True)
            yield Select([(f"{n} / page", n) for n in PAGE_SIZES], value=self.state.page_size, allow_blank=False,
                         compact=True, classes="page-size")
        yield GridTable(cursor_type="row", zebra_stripes=True)
        with Horizontal(classes="grid-pager"):
            yield Button("‹ Prev", classes="prev", compact=True)
            yield Input(value="1", classes="page-number", compact=True, restrict=r"\d*")
            yield Button("Next ›", classes="next", compact=True)
            yield Label("", classes="range")
            yield Static("", classes="summary")

    @property
    def table(self) -> DataTable:
        return self.query_one(DataTable)

    def on_mount(self) -> None:
        self.reload()

    def set_source(self, source: GridSource) -> None:
        self.source = source
        self.state = replace(self.state, page=1, filters=())
        self.marked.clear()
        self.all_matching = False
        self.reload()

    # --------------------------------------------------------------- data

    def reload(self) -> None:
        self._fetch(self.source, self.state)

    @work(exclusive=True, group="grid-fetch", exit_on_error=False)
    async def _fetch(self, source: GridSource, state: GridState) -> None:
        # One long-lived database thread for all grids: its SQLite connection and page cache
        # stay warm (a new thread per query would open a new, cold connection every time).
        loop = asyncio.get_running_loop()
        page = await loop.run_in_executor(self.app.db_executor, fetch_page, self.app.store, source, state)  # type: ignore[attr-defined]
        self._show(page)

    def _header(self, column) -> Text:  # noqa: ANN001 - a Column
        direction = dict(self.state.sort).get(column.key)
        mark = "" if direction is None else (" ▼" if direction else " ▲")
        funnel = " ⚲" if self.state.filter_values(column.key) else ""
        current = self.current_column()
        style = "bold reverse" if current is not None and current.key == column.key else "bold"
        return Text(column.title + mark + funnel, style=style)

    def _visible(self) -> list:
        return [c for c in self.source.columns if c.width != 0]

    def _header_text(self) -> Text:
        """All column titles in one header cell, laid out like the rows."""
        text = Text(" ● ", style="bold")
        for column in self._visible():
            text.append_text(self._fit(self._header(column), column.width or 10, False))
        return text

    @staticmethod
    def _fit(cell: Text, width: int, right: bool) -> Text:
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

    def _row_text(self, key: str, row: tuple) -> Text:
        # One cell per row: the stock DataTable renders each cell through Rich on every
        # repaint, and 20 rows x 20 columns cost far more than 20 composed lines.
        text = Text.assemble(" ", self._mark_cell(key), " ")
        for column in self._visible():
            value = row[self.source.columns.index(column)]
            formatter = self.formatters.get(column.key)
            cell = formatter(value) if formatter else ("" if value is None else str(value))
            if isinstance(cell, str):
                cell = Text(cell)
            text.append_text(self._fit(cell, column.width or 10, column.numeric))
        return text

    def _show(self, page: Page) -> None:
        self.page = page
        self.state = replace(self.state, page=page.page)
        self._rows = dict(zip(page.keys, page.rows))
        table = self.table
        keep_row = table.cursor_row if table.row_count else 0
        header = self._header_text()
        if [k.value for k in table.columns] == ["row"]:
            table.clear()
            table.columns["row"].label = header  # type: ignore[index]
        else:
            table.clear(columns=True)
            table.add_column(header, key="row", width=header.cell_len)
        for key, row in zip(page.keys, page.rows):
            table.add_row(self._row_text(key, row), key=key)
        if table.row_count:
            wanted = {"first": 0, "last": table.row_count - 1}.get(self._cursor_after_load or "", keep_row)
            table.move_cursor(row=min(wanted, table.row_count - 1))
        self._cursor_after_load = None
        self.query_one(".range", Label).update(f"{page.range_text()}  page {page.page}/{page.pages}")
        self.query_one(".page-number", Input).value = str(page.page)
        self._update_summary()
        self.post_message(self.Loaded(self, page))

    # --------------------------------------------------------------- actions

    def current_key(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def current_column(self):  # noqa: ANN201 - a Column
        visible = [c for c in self.source.columns if c.width != 0]
        return visible[min(self.column_index, len(visible) - 1)] if visible else None

    def move_column(self, step: int) -> None:
        visible = self._visible()
        if not visible:
            return
        self.column_index = max(0, min(len(visible) - 1, self.column_index + step))
        table = self.table
        if [k.value for k in table.columns] == ["row"]:
            table.columns["row"].label = self._header_text()  # type: ignore[index]
        # keep the chosen column in view
        x = 3 + sum((c.width or 10) + 2 for c in visible[: self.column_index])
        width = (visible[self.column_index].width or 10) + 2
        if x < table.scroll_x:
            table.scroll_to(x=x, animate=False)
        elif x + width > table.scroll_x + table.size.width:
            table.scroll_to(x=x + width - table.size.width, animate=False)
        table.refresh()

    def column_at(self, x: int):  # noqa: ANN201 - a Column or None
        """The column under a click on the header (x in content coordinates)."""
        position = 3
        for column in self._visible():
            position += (column.width or 10) + 2
            if x < position:
                return column
        return None

    # --------------------------------------------------------------- marks

    def _mark_cell(self, key: str) -> Text:
        return Text("●", style="bold yellow") if self.all_matching or key in self.marked else Text(" ")

    def marked_count(self) -> int:
        if self.all_matching:
            return self.page.total if self.page else 0
        return len(self.marked)

    def marked_keys_sql(self) -> tuple[str, list]:
        """A subquery of the marked keys: the grid's own predicate for "all matching"."""
        from cw_tui.services.grid_query import matching_keys

        if self.all_matching:
            return matching_keys(self.source, self.state)
        keys = sorted(self.marked)
        column = self.source.key_sql.split(".")[-1]
        table = self.source.from_sql.split()[0]
        return f"SELECT {column} FROM {table} WHERE {column} IN ({','.join('?' * len(keys))})", keys

    def action_mark(self) -> None:
        key = self.current_key()
        if key is None:
            return
        if self.all_matching:  # leave "all matching" for explicit marks of what is on the page
            self.all_matching = False
            self.marked = set(self.page.keys) if self.page else set()
        self.marked.symmetric_difference_update({key})
        self.table.update_cell(key, "row", self._row_text(key, self._rows[key]))
        self.table.move_cursor(row=min(self.table.cursor_row + 1, self.table.row_count - 1))
        self._update_summary()

    def action_mark_all(self) -> None:
        self.all_matching = True
        self.marked.clear()
        self.app.notify(f"All {self.page.total if self.page else 0:,} matching rows are marked.")
        self.reload()

    def action_clear_marks(self) -> None:
        self.all_matching = False
        self.marked.clear()
        self.reload()

    def _update_summary(self) -> None:
        if self.page is not None:  # noqa: SIM102
            base = self.summary_text(self.page) if self.summary_text else f"Showing {len(self.page.rows):,} of {self.page.total:,} {self.source.name}"
            marks = self.marked_count()
            self.query_one(".summary", Static).update((f"{marks:,} marked · " if marks else "") + base)

    def action_export(self) -> None:
        from datetime import datetime
        from pathlib import Path

        from cw_tui.services.grid_query import export_csv

        path = Path.home() / f"cw-tui-{self.source.name.replace(' ', '-')}-{datetime.now():%Y%m%d-%H%M%S}.csv"
        try:
            count = export_csv(self.app.store, self.source, self.state, path)  # type: ignore[attr-defined]
        except OSError as error:
            self.app.notify(f"Export failed: {error.strerror} ({path})", severity="error")
            return
        self.app.notify(f"Exported {count:,} {self.source.name} to {path}")

    def action_focus_search(self) -> None:
        self.query_one(".search", Input).focus()

    def action_sort(self) -> None:
        column = self.current_column()
        if column is not None and column.sortable:
            self.state = self.state.toggled_sort(column.key)
            self.reload()

    def action_filter(self, key: str | None = None) -> None:
        column = self.source.column(key) if key else self.current_column()
        if column is None or not column.filterable:
            filterable = [c for c in self.source.columns if c.filterable]
            if not filterable:
                self.app.notify("No column of this grid can be filtered.")
                return
            column = filterable[0]
        values = distinct_values(self.app.store, self.source, column.key, self.state)  # type: ignore[attr-defined]

        def apply(selected: frozenset | None) -> None:
            if selected is not None:
                self.all_matching = False
                self.state = self.state.with_filter(column.key, selected)
                self.reload()

        self.app.push_screen(FilterModal(column.title, values, self.state.filter_values(column.key)), apply)

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

    @on(Input.Submitted, ".search")
    def _search_done(self) -> None:
        self.table.focus()

    @on(Input.Submitted, ".page-number")
    def _page_typed(self, event: Input.Submitted) -> None:
        if event.value.isdigit():
            self.state = replace(self.state, page=max(1, int(event.value)))
            self.reload()
        self.table.focus()

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
        column = self.column_at(x)
        if column is not None and column.sortable:
            self.column_index = self._visible().index(column)
            self.state = self.state.toggled_sort(column.key)
            self.reload()

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.post_message(self.RowChosen(self, str(event.row_key.value)))

    def on_key(self, event) -> None:  # noqa: ANN001 - a Key event
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
