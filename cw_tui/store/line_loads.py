"""The writes of a Platform load (platform/importer.py decides what is loaded; this module
holds the SQL): the organizations, offers and contracts of a load, upserted with one
executemany each, and which of them the store already holds. The lines themselves go through
the staging table (store/line_staging.py)."""

from __future__ import annotations

from collections.abc import Iterator
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
