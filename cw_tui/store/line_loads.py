"""The writes of a Platform load (platform/importer.py decides what is loaded; this module
holds the SQL): bulk inserts on the driver's cursor, so 100,000 lines are one executemany,
and the reads that tell a load what the store already holds."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from cw_tui.store.database import Store

CHUNK = 500  # IDs per IN list: far below SQLite's limit of bound parameters


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _marks(count: int) -> str:
    return ",".join("?" * count)


def upsert(store: Store, table: str, columns: list[str], rows: list[tuple], refreshed: list[str]) -> None:
    """Insert rows keyed by their first column; on an existing key refresh only the
    `refreshed` columns (the mappings a person made are kept)."""
    if not rows:
        return
    quoted = ", ".join(f'"{c}"' for c in columns)
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in refreshed)
    store.db.cursor().executemany(
        f'INSERT INTO "{table}" ({quoted}) VALUES ({_marks(len(columns))}) '
        f'ON CONFLICT("{columns[0]}") DO UPDATE SET {updates}', rows)


def existing_ids(store: Store, table: str, ids: set[str]) -> set[str]:
    """Which of these Platform IDs the table holds."""
    cursor = store.db.cursor()
    found: set[str] = set()
    for chunk in _chunks(list(ids)):
        found.update(r[0] for r in cursor.execute(
            f'SELECT platform_id FROM "{table}" WHERE platform_id IN ({_marks(len(chunk))})', chunk))
    return found


def stored_lines(store: Store, columns: list[str], periods: list[str], line_ids: list[str]) -> Iterator[tuple]:
    """`columns` (the line ID first) of the stored lines of these periods, then of the stored
    lines of any period with these IDs (a line may appear twice)."""
    cursor = store.db.cursor()
    select = f"SELECT {', '.join(columns)} FROM invoice_line"
    yield from cursor.execute(f"{select} WHERE period IN ({_marks(len(periods))})", periods)
    for chunk in _chunks(line_ids):
        yield from cursor.execute(f"{select} WHERE line_id IN ({_marks(len(chunk))})", chunk)


def replace_lines(store: Store, to_delete: list[str], columns: list[str], rows: Iterable[tuple]) -> None:
    """Delete these lines, then insert `rows` (streamed: no second copy of every line in memory)."""
    cursor = store.db.cursor()
    for chunk in _chunks(to_delete):
        cursor.execute(f"DELETE FROM invoice_line WHERE line_id IN ({_marks(len(chunk))})", chunk)
    cursor.executemany(f"INSERT INTO invoice_line ({', '.join(columns)}) VALUES ({_marks(len(columns))})", rows)
