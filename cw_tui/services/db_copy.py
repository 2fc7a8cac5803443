"""Moving in (issue 17): copy the current store into another database, SQLite or PostgreSQL.

The target is checked before anything is written to it: a target that holds any row is
refused untouched (even its schema is not upgraded). An empty one gets the current schema
through the same migrations as any open (open_store), then every row in one transaction
(store/copy.py). ConnectWise credentials are not in the database (services/credentials.py:
a file of the user's, or CW_* variables), so nothing secret is copied or printed; each
machine connects with its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cw_tui.store import DATABASE_ERRORS, MODELS, Store, StoreError, describe_error, open_store
from cw_tui.store.copy import TableCount, TargetNotEmpty, copy_rows, first_filled
from cw_tui.store.postgres import is_url, redact

__all__ = ["CopyResult", "TargetNotEmpty", "copy_store", "same_database"]


@dataclass(frozen=True)
class CopyResult:
    source: str  # named without a password
    target: str
    tables: list[TableCount]
    duration_s: float

    @property
    def rows(self) -> int:
        return sum(t.target for t in self.tables)

    def to_json(self) -> dict:
        return {"source": self.source, "target": self.target, "rows": self.rows, "duration_s": round(self.duration_s, 3),
                "tables": [{"table": t.table, "source": t.source, "copied": t.copied, "target": t.target}
                           for t in self.tables]}


def label(where: Path | str) -> str:
    return redact(where) if is_url(where) else str(where)


def same_database(a: Path | str, b: Path | str) -> bool:
    if is_url(a) or is_url(b):
        return is_url(a) and is_url(b) and redact(str(a)).rstrip("/") == redact(str(b)).rstrip("/")
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _check_empty(target: Path | str) -> None:
    """Refuse a target with rows before its schema is touched (no upgrade, no new tables)."""
    probe = open_store(target, migrate=False, create_folder=False)
    try:
        filled = first_filled(probe)
    finally:
        probe.close()
    if filled is not None:
        raise TargetNotEmpty(label(target), filled)


def copy_store(source: Store, target: Path | str,
               progress: Callable[[str, int, int], None] | None = None) -> CopyResult:
    """Copy the open store `source` into the database at `target` (a file or a postgresql://
    URL). Raises TargetNotEmpty (nothing written), or StoreError (the target stays empty)."""
    if same_database(source.path, target):
        raise StoreError(f"the target {label(target)} is the database being copied: give another one with --to")
    began = time.perf_counter()
    _check_empty(target)
    into = open_store(target, create_folder=False)
    try:
        tables = copy_rows(source, into, progress)
    except DATABASE_ERRORS as error:
        raise StoreError(f"nothing was copied: {describe_error(into.path, error)}") from None
    finally:
        into.close()
        source.db.bind(MODELS, bind_refs=False, bind_backrefs=False)  # opening the target bound them there
    return CopyResult(label(str(source.path)), label(target), tables, time.perf_counter() - began)
