"""Issue 11 part 2: a locked, damaged, read-only or full database is a message naming the
file and the cause, in the CLI and the app; reads go on while another cw-tui holds the
write lock; nothing is half-written. A real second process holds the lock."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.app_helpers import seeded_store

HOLD = """
import os, socket, sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[3] == "sync":  # as cw-tui's sync does: its run is recorded (committed) first
    con.execute("INSERT INTO sync_run (kind, period, started_at, state, owner, created, updated, cancelled, "
                "agreements_created, skipped, errors, api_calls) VALUES ('sync', '2026-10', '2026-11-18T09:30:00.000000Z', "
                "'running', ?, 0, 0, 0, 0, 0, 0, 0)", (f"{socket.gethostname()}|{os.getpid()}|1",))
con.execute("BEGIN IMMEDIATE")
con.execute("INSERT OR REPLACE INTO setting (key, value) VALUES ('held', '1')")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


class LockHolder:
    """Another process holding the database's write lock (BEGIN IMMEDIATE), as a long sync does."""

    def __init__(self, path: Path, seconds: float = 60, as_what: str = "program"):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds), as_what],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "held"

    def release(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def locked(tmp_path: Path, demo_folder: Path, monkeypatch: pytest.MonkeyPatch):
    db = tmp_path / "s.sqlite3"
    seeded_store(db, demo_folder).close()
    holder = LockHolder(db)
    yield db
    holder.release()


def test_reads_work_and_a_write_says_who_holds_the_lock(cli, locked: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_TUI_LOCK_TIMEOUT", "1")
    started = time.monotonic()
    status = cli("--db", locked, "status", "--json")
    assert status.code == 0 and status.json()["periods"]
    assert cli("--db", locked, "logs", "--json").code == 0
    assert time.monotonic() - started < 5  # no wait for the lock
    write = cli("--db", locked, "configure", "--daily-sync", "on")
    assert write.code == 2
    assert f"database {locked} is busy" in write.err and "holds its write lock" in write.err
    assert "nothing was changed" in write.err and "OperationalError" not in write.err


def test_a_write_names_the_cw_tui_run_that_holds_the_lock(cli, tmp_path: Path, demo_folder: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "s.sqlite3"
    seeded_store(db, demo_folder).close()
    holder = LockHolder(db, as_what="sync")
    try:
        monkeypatch.setenv("CW_TUI_LOCK_TIMEOUT", "1")
        write = cli("--db", db, "load-invoices", "--period", "2026-10", "--platform-dir", demo_folder)
        assert write.code == 2
        assert f"a sync of 2026-10 (process {holder.proc.pid}, started 2026-11-18 09:30 UTC)" in write.err
    finally:
        holder.release()
