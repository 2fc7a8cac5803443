"""Who changed a row by hand, and when (team mode, issue 17): the stamp every mapping change,
bulk update and auto-match writes on the rows it changes, and the check that refuses a save
when someone else saved the same row since its editor read it (an optimistic check: nothing is
locked while a person looks at a form).

    Stamp(by, at): who (journal.who()) and when (UTC); Stamp(None, None) for a row nobody
        has changed by hand yet.
    stamp_of(store, kind, key) -> Stamp | None     (None: no such row)
    stamped() -> {"changed_by": ..., "changed_at": ...}   the fields a change writes
    changed_since(store, kind, key, read) -> Stamp | None
        Inside the save's write transaction: the row's stamp when it is no longer `read` (the
        save must then be refused), else None. The row stays locked until the transaction
        ends (PostgreSQL: FOR UPDATE; SQLite's write transaction holds the whole file).

`kind` is organization | offer | contract | line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cw_tui.store.database import Store
from cw_tui.store.fields import now_utc
from cw_tui.store.journal import who
from cw_tui.store.models import Contract, InvoiceLine, Offer, Organization

_MODELS = {"organization": Organization, "offer": Offer, "contract": Contract, "line": InvoiceLine}


@dataclass(frozen=True)
class Stamp:
    by: str | None = None
    at: datetime | None = None

    def text(self) -> str:
        """"finance.ben at 2026-12-02 10:40:12 UTC" (or "" when nobody changed it)."""
        if self.at is None:
            return ""
        return f"{self.by or 'someone'} at {self.at:%Y-%m-%d %H:%M:%S} UTC"


def stamped() -> dict[str, Any]:
    return {"changed_by": who(), "changed_at": now_utc()}


def _row(store: Store, kind: str, key: str, *, lock: bool = False):
    model = _MODELS[kind]
    query = model.select(model.changed_by, model.changed_at).where(model._meta.primary_key == key)
    if lock and store.is_postgres:
        query = query.for_update()
    return query.first()


def stamp_of(store: Store, kind: str, key: str) -> Stamp | None:
    row = _row(store, kind, key)
    return None if row is None else Stamp(row.changed_by, row.changed_at)


def changed_since(store: Store, kind: str, key: str, read: Stamp) -> Stamp | None:
    row = _row(store, kind, key, lock=True)
    if row is None:
        return None
    now = Stamp(row.changed_by, row.changed_at)
    return None if (now.by, now.at) == (read.by, read.at) else now
