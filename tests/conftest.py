from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from cw_tui.cli import main
from cw_tui.platform.demo_export import write_demo_data
from cw_tui.store import Store, open_store

DEMO_END_MONTH = "2026-10"

# Times on screen are local: tests and snapshots run in UTC, whatever the machine says.
os.environ["TZ"] = "UTC"
time.tzset()
os.environ["TEXTUAL_ANIMATIONS"] = "none"


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the user's real database or credentials."""
    monkeypatch.setenv("CW_TUI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("CW_TUI_DB", str(tmp_path / "default.sqlite3"))
    monkeypatch.setenv("HOME", str(tmp_path))  # paths shown as ~/... are the same in every run


@pytest.fixture(scope="session")
def demo_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo-source")
    write_demo_data(folder, seed=7, organizations=60, months=3, end_month=DEMO_END_MONTH)
    return folder


@pytest.fixture
def demo_folder(demo_source: Path, tmp_path: Path) -> Path:
    """A private copy of a small demo export, free to be damaged by the test."""
    folder = tmp_path / "export"
    shutil.copytree(demo_source, folder)
    return folder


@pytest.fixture
def seeded(new_db, demo_folder: Path):
    """A store as after a month of use (tests/app_helpers.seeded_store), closed afterwards."""
    from tests.app_helpers import seeded_store  # the app's modules load only for the tests that use it

    store = seeded_store(new_db("s"), demo_folder)
    yield store
    store.close()


# ---- the two backends. A module marked `both_backends` runs each test that asks for a store
# (the `backend`, `new_db`, `db_target` or `store` fixture) on SQLite and on PostgreSQL; a test
# marked `sqlite_only` there is about SQLite files themselves, one marked `postgres_only` about what
# only PostgreSQL does (claims across machines). Elsewhere stores are SQLite files.

BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    both = metafunc.definition.get_closest_marker("both_backends") is not None
    sqlite_only = metafunc.definition.get_closest_marker("sqlite_only") is not None
    if metafunc.definition.get_closest_marker("postgres_only") is not None:
        metafunc.parametrize("backend", ["postgresql"], indirect=True)
    elif both and not sqlite_only:
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "sqlite")


@pytest.fixture(scope="session")
def pg_server():
    """One PostgreSQL server per test process (per xdist worker), started on first use and
    stopped at the end, whatever the tests did (tests/pg_server.py)."""
    from tests.pg_server import remove_server, start_server

    server = start_server()
    sys.stderr.write(f"\n[{server.version} from {server.bin_dir} started in {server.startup_seconds:.2f} s]\n")
    try:
        yield server
    finally:
        remove_server(server)


@pytest.fixture(scope="session")
def pg_databases(pg_server):
    from tests.pg_server import Databases

    return Databases(pg_server)


@pytest.fixture
def new_db(backend: str, tmp_path: Path, request: pytest.FixtureRequest):
    """Makes a new store's address: a file in tmp_path, or a fresh PostgreSQL database (already
    at the current schema; `migrated=False`: empty)."""
    made: list[tuple[object, str]] = []

    def make(name: str = "store", *, migrated: bool = True) -> Path | str:
        if backend == "sqlite":
            return tmp_path / f"{name}.sqlite3"
        databases = request.getfixturevalue("pg_databases")
        url = databases.create(migrated=migrated)
        made.append((databases, url))
        return url

    yield make
    if made:
        from cw_tui.store import database

        for databases, url in made:  # a test's stores left open: their connections go first
            entry = database._OPEN.pop(url, None)
            if entry is not None and not entry[0].is_closed():
                entry[0].close()
            databases.drop(url)


@pytest.fixture
def db_target(new_db) -> Path | str:
    """Where the test's store is: a file, or a PostgreSQL URL."""
    return new_db("store")


@pytest.fixture
def store(db_target):
    s = open_store(db_target)
    yield s
    s.close()


@dataclass
class CliResult:
    code: int
    out: str
    err: str
    out_bytes: bytes = b""  # standard output exactly as written (run_process only)

    def json(self):
        return json.loads(self.out)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run the real `cw-tui` entry point in-process."""

    def run(*args: str | Path) -> CliResult:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def run_process(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 120) -> CliResult:
    """Run `cw-tui` as a separate process, as a user or cron would."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "cw_tui", *map(str, args)],
        capture_output=True, env=full_env, timeout=timeout,
    )

    def text(data: bytes) -> str:  # as text=True reads it: the locale's encoding, universal newlines
        return io.TextIOWrapper(io.BytesIO(data)).read()

    return CliResult(proc.returncode, text(proc.stdout), text(proc.stderr), proc.stdout)


def db_connect(target: Path | str):
    """A plain DB-API connection to a store's database, taking `?` placeholders on both
    backends, committing at the end of a `with` block."""
    if isinstance(target, str) and target.startswith("postgresql://"):
        import psycopg

        from cw_tui.store.psycopg_driver import QmarkCursor

        return psycopg.connect(target, cursor_factory=QmarkCursor)
    import sqlite3

    return sqlite3.connect(target)


def reopen(path: Path | str) -> Store:
    return open_store(path)


@pytest.fixture
def journaled(tmp_path: Path, demo_folder: Path):
    """The seeded store with a run's journal and a reconciliation of 2026-09 (tests/journal_helpers.py)."""
    from tests.journal_helpers import journal_store

    store = journal_store(tmp_path / "journal.sqlite3", demo_folder)
    yield store
    store.close()
