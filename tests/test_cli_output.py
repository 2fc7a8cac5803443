"""Issue 13: the CLI renders with Rich for people and keeps --json exact. `cw-tui sync` runs
as its own process with stderr on a pseudo-terminal (as at a shell) and stdout on a pipe."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sandbox_helpers import sandbox_thread
from tests.sync_helpers import cw_env
from tests.test_sync_against_connectwise import P1, set_up


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch):
    with sandbox_thread(seed=7, latency_ms=5) as running:
        for key, value in cw_env(running).items():
            monkeypatch.setenv(key, value)
        yield running


def run_with_terminal_stderr(*args: str | Path) -> tuple[int, bytes, bytes]:
    """stdout on a pipe, stderr on a pseudo-terminal of 80 columns."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "80", "LINES": "24", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "cw_tui", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=follower, env=env)
    os.close(follower)
    terminal = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the process closed its end
                break
            if not chunk:
                break
            terminal += chunk
        elif proc.poll() is not None:
            break
    out = proc.stdout.read()
    proc.wait(timeout=120)
    os.close(leader)
    return proc.returncode, out, terminal


def test_sync_at_a_terminal_shows_a_progress_bar_and_json_stays_only_json(cli, sandbox, demo_folder: Path,
                                                                           tmp_path: Path) -> None:
    db = tmp_path / "finance.sqlite3"
    set_up(cli, db, demo_folder, P1)
    code, out, terminal = run_with_terminal_stderr("--db", db, "sync", "--period", P1)
    assert code == 0, terminal.decode(errors="replace")
    assert b"Posting " + P1.encode() in terminal  # the bar's description, drawn on the terminal
    assert b"\x1b[" in terminal  # ... as a live display (cursor moves), not plain lines
    assert b"\r" not in out and b"\x1b" not in out  # standard output stays plain text
    assert b"created" in out

    # a second period with --json: the bar is off and stdout is exactly one JSON document
    set_up(cli, db, demo_folder, "2026-10")
    code, out, terminal = run_with_terminal_stderr("--db", db, "sync", "--period", "2026-10", "--json")
    assert code == 0, terminal.decode(errors="replace")
    summary = json.loads(out)
    assert summary["period"] == "2026-10" and summary["errors"] == 0
    assert b"Posting" not in terminal


def test_tables_fit_no_line_is_cut_into_a_pipe(cli, tmp_path: Path, demo_folder: Path) -> None:
    db = tmp_path / "s.sqlite3"
    assert cli("--db", db, "configure", "--platform-dir", demo_folder).code == 0
    assert cli("--db", db, "load-invoices", "--period", P1).code == 0
    text = cli("--db", db, "status").out
    header = next(line for line in text.splitlines() if line.startswith("Period"))
    assert header.split() == ["Period", "Lines", "Mapped", "Unmapped", "Excluded", "Not", "synced", "Synced", "Error"]
    row = next(line for line in text.splitlines() if line.startswith(P1))
    lines = cli("--db", db, "status", "--json").json()["periods"][0]["lines"]
    assert f"{lines:,}" in row.split()


def test_version() -> None:
    proc = subprocess.run([sys.executable, "-m", "cw_tui", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("cw-tui ")
