"""The WAL is copied into the database file by the store's checkpoint thread, not by the commit
that fills it (store/checkpoints.py); nothing committed is lost when a process dies before
that copy, and the thread ends with the store."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from cw_tui.store import open_store

ROWS = 3000  # ~6 MB of log: past SQLite's own 1,000-page checkpoint, which a commit would make


def _fill(store) -> None:
    with store.atomic():
        store.db.execute_sql("CREATE TABLE IF NOT EXISTS bulk_test (n INTEGER PRIMARY KEY, body TEXT)")
        store.db.execute_sql(
            "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ?) "
            "INSERT INTO bulk_test SELECT n, printf('%.2000c', 'x') FROM c", (ROWS,))


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "cw-tui WAL checkpoints"]


def test_a_commit_leaves_the_log_to_the_checkpoint_thread(tmp_path: Path) -> None:
    from cw_tui.store.database import _CHECKPOINTS

    store = open_store(tmp_path / "s.sqlite3")
    try:
        assert store.db.execute_sql("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        checkpoints = _CHECKPOINTS[str((tmp_path / "s.sqlite3").resolve())]
        _fill(store)
        # the thread copies the commit's pages a moment later (no timing is asserted: it is awaited)
        deadline = time.monotonic() + 20
        while not (checkpoints.last and checkpoints.last[1] > 1000 and checkpoints.last[2] == checkpoints.last[1]):
            assert time.monotonic() < deadline, checkpoints.last
            time.sleep(0.05)
        assert checkpoints.last[0] == 0
    finally:
        store.close()


def test_the_thread_ends_with_the_store_and_one_thread_serves_a_shared_file(tmp_path: Path) -> None:
    before = len(_checkpoint_threads())
    first = open_store(tmp_path / "s.sqlite3")
    second = open_store(tmp_path / "s.sqlite3")  # the same file, shared: one thread
    assert len(_checkpoint_threads()) == before + 1
    first.close()
    assert len(_checkpoint_threads()) == before + 1
    second.close()
    assert len(_checkpoint_threads()) == before


KILLED = """
import os, sys
from cw_tui.store import open_store
from tests.test_checkpoints import _fill
store = open_store(sys.argv[1])
_fill(store)
os._exit(0)  # at once after the commit: before the checkpoint thread's copy, and no close
"""


def test_a_process_killed_right_after_its_commit_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    open_store(db).close()
    subprocess.run([sys.executable, "-c", KILLED, str(db)], check=True, cwd=Path(__file__).parent.parent)
    store = open_store(db)
    try:
        rows, length = store.db.execute_sql("SELECT COUNT(*), MIN(length(body)) FROM bulk_test").fetchone()
        assert (rows, length) == (ROWS, 2000)
    finally:
        store.close()
