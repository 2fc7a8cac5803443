"""A long write recorded while it runs (a load, a cache refresh): another cw-tui that finds
the database busy can then say what holds it (store.lock_holder). The row is committed
before the work takes the write lock, so readers see it."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from cw_tui.store import DATABASE_ERRORS, Store, SyncRun, journal, now_utc


def owner_tag() -> str:
    return f"{socket.gethostname()}|{os.getpid()}|0"


@contextmanager
def recorded(store: Store, kind: str, period: str | None = None) -> Iterator[SyncRun]:
    """`kind` is one of SyncRun's: invoices, products, organizations."""
    with store.atomic():
        run = SyncRun.create(kind=kind, period=period, started_at=now_utc(), state="running", owner=owner_tag(),
                             who=journal.who())  # who loaded it (team mode: the line detail says it)
        alive = store.hold_run(run.id)  # on PostgreSQL: a busy message names it only while it holds this
    try:
        try:
            yield run
        except BaseException:
            _finish(store, run, "failed")
            raise
        _finish(store, run, "ok")
    finally:
        alive.release()


def _finish(store: Store, run: SyncRun, state: str) -> None:
    try:
        with store.atomic():
            SyncRun.update(state=state, finished_at=now_utc()).where(SyncRun.id == run.id).execute()
    except DATABASE_ERRORS:
        pass  # the work's own error says what happened; a row left running is skipped once its process is gone
