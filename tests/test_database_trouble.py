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


def _busy_note(app) -> bool:
    return any("is busy" in str(n.message) for n in app._notifications)


def test_the_app_reads_while_locked_and_a_refused_change_is_a_message(locked: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from cw_tui.screens.mapping import MappingScreen
    from cw_tui.store import Organization, open_store
    from tests.app_helpers import make_app, run, wait_for

    monkeypatch.setattr("cw_tui.store.database.BUSY_TIMEOUT_MS", 300)
    store = open_store(locked)

    async def scenario() -> None:
        app = make_app(store)
        async with app.run_test(size=(100, 30), notifications=True) as pilot:
            await pilot.pause()
            assert app.screen.query("Tile")  # the Dashboard shows its figures
            await pilot.press("2")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            grid = app.screen.query_one("#grid-organizations")
            await wait_for(pilot, lambda: grid.current_key() is not None)
            key = grid.current_key()
            before = Organization.get_by_id(key).excluded
            await pilot.press("x")
            await wait_for(pilot, lambda: _busy_note(app), timeout=15)
            assert Organization.get_by_id(key).excluded == before
            app.clear_notifications()
            await pilot.press("x")  # the screen still answers its keys
            await wait_for(pilot, lambda: _busy_note(app), timeout=15)
            assert app.is_running

    run(scenario())
    store.close()


def test_a_damaged_file_is_named_in_the_cli_and_the_app(cli, tmp_path: Path, demo_folder: Path) -> None:
    from cw_tui.store import open_store

    db = tmp_path / "s.sqlite3"
    seeded_store(db, demo_folder).close()
    with open_store(db) as store:
        store.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    size = db.stat().st_size
    with db.open("r+b") as handle:  # a disk error: every page but the first (the schema) is garbage
        handle.seek(4096)
        handle.write(b"\xff" * (size - 4096))
    status = cli("--db", db, "status")
    assert status.code == 2 and f"database {db} is damaged" in status.err and "backup" in status.err
    assert "Traceback" not in status.err + status.out

    # `cw-tui` (the app) on that file: the message, exit 2, no traceback
    app_run = cli("--db", db)
    assert app_run.code == 2 and f"database {db} is damaged" in app_run.err


def test_damage_the_app_meets_later_is_named_and_ends_the_app(tmp_path: Path, demo_folder: Path) -> None:
    """Damage in pages that only a screen reads (the file opens): the app ends with the
    message instead of a blank screen or a traceback."""
    from cw_tui.store import open_store
    from tests.app_helpers import make_app, run

    db = tmp_path / "s.sqlite3"
    seeded_store(db, demo_folder).close()
    with open_store(db) as store:
        store.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        # the pages of the invoice lines' table, as SQLite numbers them (page 1 is the schema)
        root = store.db.execute_sql("SELECT rootpage FROM sqlite_master WHERE name = 'invoice_line'").fetchone()[0]
    with db.open("r+b") as handle:
        handle.seek((root - 1) * 4096)
        handle.write(b"\xff" * 4096)
    store = open_store(db)

    async def scenario() -> None:
        app = make_app(store)
        async with app.run_test(size=(100, 30), notifications=True) as pilot:
            await pilot.pause(0.5)
            for key in ("2", "3"):  # whichever screen meets the damage first
                if app.is_running:
                    await pilot.press(key)
                    await pilot.pause(0.5)
            said = " ".join(str(n.message) for n in app._notifications)
        # a grid says it and keeps the screen; a screen that cannot draw ends the app saying it
        said += " ".join(str(r) for r in app._exit_renderables)
        assert f"database {db} is damaged" in said
        assert app.return_code in (None, 2)

    run(scenario())
    store.close()


def _immutable(path: Path) -> bool:
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
    return done.returncode == 0


def test_a_read_only_file_is_read_and_a_change_says_why(cli, tmp_path: Path, demo_folder: Path) -> None:
    db = tmp_path / "s.sqlite3"
    seeded_store(db, demo_folder).close()
    for side in tmp_path.glob("s.sqlite3-*"):
        side.unlink()
    if not _immutable(db):
        pytest.skip("chattr +i is not allowed here (a read-only file cannot be made for root otherwise)")
    try:
        before = db.read_bytes()
        status = cli("--db", db, "status", "--json")
        assert status.code == 0 and status.json()["periods"]
        write = cli("--db", db, "configure", "--daily-sync", "on")
        assert write.code == 2 and f"cannot write database {db}: it is read-only" in write.err
        assert "nothing was changed" in write.err and db.read_bytes() == before
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount: Path, leave: int) -> None:
    import shutil

    free = shutil.disk_usage(mount).free
    if free > leave:
        (mount / "filler").write_bytes(b"\0" * (free - leave))


def test_a_full_disk_is_told_and_nothing_is_half_written(cli, small_disk: Path, demo_folder: Path) -> None:
    db = small_disk / "s.sqlite3"
    assert cli("--db", db, "configure", "--platform-dir", demo_folder).code == 0
    _fill(small_disk, leave=24 * 1024)
    load = cli("--db", db, "load-invoices", "--period", "2026-09", "--period", "2026-10")
    assert load.code == 2
    assert f"cannot write database {db}: the disk is full" in load.err and "nothing was changed" in load.err
    assert "rollback" not in load.err
    (small_disk / "filler").unlink()  # space again: the load left nothing behind
    status = cli("--db", db, "status", "--json")
    assert status.code == 0 and status.json()["periods"] == []  # the load left nothing behind


def _note(app, text: str) -> bool:
    return any(text in str(n.message) for n in app._notifications)


def test_the_app_on_a_read_only_file_shows_it_and_a_change_says_why(tmp_path: Path, demo_folder: Path) -> None:
    from cw_tui.screens.mapping import MappingScreen
    from cw_tui.store import Organization, open_store
    from tests.app_helpers import make_app, run, wait_for

    db = tmp_path / "s.sqlite3"
    seeded_store(db, demo_folder).close()
    for side in tmp_path.glob("s.sqlite3-*"):
        side.unlink()
    if not _immutable(db):
        pytest.skip("chattr +i is not allowed here (a read-only file cannot be made for root otherwise)")
    try:
        store = open_store(db)

        async def scenario() -> None:
            app = make_app(store)
            async with app.run_test(size=(100, 30), notifications=True) as pilot:
                await pilot.pause()
                assert app.screen.query("Tile")
                await pilot.press("2")
                await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
                grid = app.screen.query_one("#grid-organizations")
                await wait_for(pilot, lambda: grid.current_key() is not None)
                key = grid.current_key()
                before = Organization.get_by_id(key).excluded
                await pilot.press("x")
                await wait_for(pilot, lambda: _note(app, f"cannot write database {db}: it is read-only"), timeout=15)
                assert Organization.get_by_id(key).excluded == before and app.is_running

        run(scenario())
        store.close()
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=False)


def test_the_app_on_a_full_disk_says_so_and_loads_nothing(small_disk: Path, demo_folder: Path, cli) -> None:

    from cw_tui.screens.mapping import MappingScreen
    from cw_tui.screens.mapping_modals import LoadInvoicesModal
    from cw_tui.store import InvoiceLine, open_store
    from tests.app_helpers import make_app, run, wait_for

    db = small_disk / "s.sqlite3"
    assert cli("--db", db, "configure", "--platform-dir", demo_folder).code == 0
    store = open_store(db)
    november = __import__("datetime").datetime(2026, 11, 18, 9, 0, tzinfo=__import__("datetime").UTC)

    async def scenario() -> None:
        from cw_tui.services import credentials as credential_store
        from tests.app_helpers import FIXED_CREDENTIALS

        credential_store.save(FIXED_CREDENTIALS)
        from cw_tui.services import settings

        config = settings.load_configuration(store)
        config.agreement_type = settings.AgreementTypeChoice(id=2, name="Cloud Services")
        settings.save_configuration(store, config)
        store.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        _fill(small_disk, leave=24 * 1024)  # the disk fills up under the load
        app = make_app(store, clock=lambda: november)
        async with app.run_test(size=(100, 30), notifications=True) as pilot:
            await pilot.press("2")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            await pilot.press("i")  # Load Invoices: the previous month (2026-10)
            await wait_for(pilot, lambda: isinstance(app.screen, LoadInvoicesModal) and app.focused is not None
                           and app.focused.id == "load")
            await pilot.press("enter")
            await wait_for(pilot, lambda: _note(app, f"cannot write database {db}: the disk is full"), timeout=30)
            assert app.is_running and InvoiceLine.select().count() == 0

    run(scenario())
    store.close()
