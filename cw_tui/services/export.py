"""CSV export of a grid (SPEC §15): every row of the current search and filters, in the grid's
order, as the grid shows it (rules/display.py). The app's ctrl+e and `cw-tui export` write
through here. The file is streamed to a temporary file beside the target and renamed into
place, so a failed export leaves no half file."""

from __future__ import annotations

import csv
import os
import re
import secrets
from datetime import datetime
from pathlib import Path

from cw_tui.rules.periods import resolve_period
from cw_tui.store import Store, queries
from cw_tui.store.grid import GridSource, GridState, matching_rows
from cw_tui.store.grid_sources import LOGS, invoices_source, organizations_source, products_source

GRIDS = ("organizations", "products", "invoices", "logs")

# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


class ExportError(ValueError):
    """The export cannot be made as asked; the message says why."""


def csv_safe(text: str) -> str:
    """Data that a spreadsheet would run as a formula gets a leading apostrophe, which the
    spreadsheet shows as text; a number (a negative amount) stays a number."""
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def grid_source(store: Store, grid: str, period: str | None, today) -> GridSource:
    """The source of a grid by name; invoices of `period` (current, previous or YYYY-MM; by
    default the newest loaded)."""
    if grid not in GRIDS:
        raise ExportError(f"unknown grid {grid!r} (expected one of: {', '.join(GRIDS)})")
    if grid != "invoices":
        if period is not None:
            raise ExportError("--period applies to the invoices grid only")
        return {"organizations": organizations_source, "products": products_source, "logs": lambda: LOGS}[grid]()
    periods = queries.loaded_periods(store, limit=None)
    if not periods:
        raise ExportError("no invoice lines are loaded: run `cw-tui load-invoices` first")
    if period is None:
        return invoices_source(periods[0])
    try:
        wanted = resolve_period(period, today)
    except ValueError as error:
        raise ExportError(f"--period: {error}") from None
    if wanted not in periods:
        raise ExportError(f"--period: no invoice lines of {wanted} are loaded (loaded: {', '.join(periods)})")
    return invoices_source(wanted)


def export_name(source: GridSource, moment: datetime) -> str:
    """cw-tui-invoice-lines-2026-10-20261118-093000.csv: the grid, its period, the time."""
    period = "".join(f"-{p}" for p in source.params)
    return f"cw-tui-{source.name.replace(' ', '-')}{period}-{moment:%Y%m%d-%H%M%S}.csv"


def export_csv(store: Store, source: GridSource, state: GridState, path: Path) -> int:
    """Write the grid's matching rows to `path`; the number of rows. UTF-8 with a BOM, so that
    spreadsheets read names in any script. OSError when the file cannot be written, and then
    nothing is left behind."""
    path = Path(path)
    part = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    # created as open() creates a file (the umask applies), but never over an existing one
    descriptor = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    count = 0
    try:
        with open(descriptor, "w", newline="", encoding="utf-8-sig") as handle:
            writer = csv.writer(handle)
            writer.writerow([title for c in source.columns for title in c.csv_titles()])
            for row in matching_rows(store, source, state):
                writer.writerow([csv_safe(cell) for c, value in zip(source.columns, row, strict=False) for cell in c.csv_cells(value)])
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return count
