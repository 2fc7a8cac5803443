"""Output for people, through Rich: tables that fit the terminal, colour only on a terminal
and never under NO_COLOR (Rich reads it), and a progress bar on stderr for long work.
Data text is never markup: cells are Text objects of safe_text (control characters made
visible). `--json` output does not come here: it is printed exactly, by common._print_json."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from cw_tui.rules.safe_text import safe_text


def _console(stderr: bool = False) -> Console:
    # Made per call: tests and pipes swap sys.stdout, and Rich must write where print would.
    # A terminal gets tables that fit its width; a pipe or file gets whole lines (for grep).
    out = sys.stderr if stderr else sys.stdout
    width = None if out.isatty() else 10_000
    return Console(file=out, width=width, markup=False, highlight=False, emoji=False, soft_wrap=False)


def cell(value: Any) -> Text:
    return Text(safe_text(str(value)))


def table(columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> None:
    """A table of `rows`; `columns` are (header, "left"|"right"). Wide text columns fold
    instead of being cut, so a long customer name stays whole on narrow terminals."""
    grid = Table(title=title, title_justify="left", box=None, pad_edge=False, show_edge=False, header_style="bold")
    for header, justify in columns:
        grid.add_column(header, justify=justify, overflow="fold", no_wrap=justify == "right")  # type: ignore[arg-type]
    for row in rows:
        grid.add_row(*(cell(v) for v in row))
    _console().print(grid)


@contextmanager
def progress(description: str, *, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr while the block runs, when stderr is a terminal and `enabled`
    (not with --json). Yields `update(done, total)`; total 0 shows a spinner only."""
    if not enabled or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=_console(stderr=True), transient=True)
    task = bar.add_task(description, total=None)
    with bar:
        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        yield update
