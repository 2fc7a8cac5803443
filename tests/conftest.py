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
def seeded(tmp_path: Path, demo_folder: Path):
    """A store as after a month of use (tests/app_helpers.seeded_store), closed afterwards."""
    from tests.app_helpers import seeded_store  # the app's modules load only for the tests that use it

    store = seeded_store(tmp_path / "s.sqlite3", demo_folder)
    yield store
    store.close()


@pytest.fixture
def store(tmp_path: Path):
    s = open_store(tmp_path / "store.sqlite3")
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


def reopen(path: Path) -> Store:
    return open_store(path)


@pytest.fixture
def journaled(tmp_path: Path, demo_folder: Path):
    """The seeded store with a run's journal and a reconciliation of 2026-09 (tests/journal_helpers.py)."""
    from tests.journal_helpers import journal_store

    store = journal_store(tmp_path / "journal.sqlite3", demo_folder)
    yield store
    store.close()
