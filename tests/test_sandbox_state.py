"""Issue 14 item 6: `cw-tui sandbox --state FILE` has every acknowledged write on disk (a
SIGKILL right after a 201 loses nothing), and requests are served concurrently."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cw_tui.sandbox.app import Faults
from cw_tui.sandbox.server import SandboxThread, build_sandbox, free_port
from cw_tui.services.connectwise import ConnectWiseClient
from cw_tui.store import InvoiceLine, SubscriptionAddition, open_store
from tests.sandbox_helpers import Announced, start_sandbox_process
from tests.sync_helpers import assert_exactly_once, cw_env, mapped_not_synced


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


async def _post_additions(credentials, count: int, marker: str) -> list[int]:
    async with ConnectWiseClient(credentials, max_in_flight=16) as client:
        agreement = next(a for a in await client.agreements(status="Active"))
        product = next(p for p in await client.catalog_items() if not p.inactiveFlag)
        created = await asyncio.gather(*(
            client.create_addition(agreement.id, {
                "product": {"id": product.id}, "billCustomer": "Billable", "quantity": 1, "unitPrice": 2,
                "effectiveDate": "2026-10-01T00:00:00Z", "serialNumber": f"{marker}{n}"})
            for n in range(count)))
        return [a.id for a in created]


async def _addition_ids(credentials) -> set[int]:
    async with ConnectWiseClient(credentials) as client:
        ids: set[int] = set()
        for agreement in await client.agreements():
            ids.update(a.id for a in await client.additions(agreement.id))
        return ids


def test_a_write_acknowledged_is_on_disk_when_the_sandbox_is_killed(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.json"
    proc, announced = start_sandbox_process("--state", str(state))
    try:
        ids = asyncio.run(_post_additions(Announced(announced).credentials, 5, "kill-"))
    finally:
        _kill(proc)  # at once: no shutdown, no timer gets to save anything
    proc, announced = start_sandbox_process("--state", str(state))
    try:
        assert set(ids) <= asyncio.run(_addition_ids(Announced(announced).credentials))
    finally:
        _kill(proc)


def test_a_torn_last_line_is_ignored_and_the_rest_kept(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.json"
    with SandboxThread(build_sandbox(7, state_file=state)) as running:
        ids = asyncio.run(_post_additions(running.credentials, 3, "torn-"))
        with state.open("ab") as handle:  # a write the kill cut in half: never acknowledged
            handle.write(b'{"put":"additions","row":{"id":')
        running.sandbox.journal._file.close()  # as if killed: no compaction at shutdown
    reloaded = build_sandbox(7, state_file=state)
    assert set(ids) <= set(reloaded.state.additions)
    reloaded.close()


def test_concurrent_writes_share_fsyncs_and_are_served_at_once(tmp_path: Path) -> None:
    sandbox = build_sandbox(7, Faults(latency_ms=50), state_file=tmp_path / "sandbox.json")
    with SandboxThread(sandbox) as running:
        started = time.perf_counter()
        ids = asyncio.run(_post_additions(running.credentials, 32, "many-"))
        took = time.perf_counter() - started
    assert len(set(ids)) == 32
    assert sandbox.max_in_flight >= 8
    assert sandbox.journal.entries >= 32 and sandbox.journal.fsyncs < 32  # group commit
    assert took < 32 * 0.05  # not one after another


@pytest.fixture
def killable_world(cli, demo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    state = tmp_path / "sandbox.json"
    port = free_port()
    extra = ("--state", str(state), "--latency-ms", "60")
    proc, announced = start_sandbox_process(*extra, port=port)
    sandbox = Announced(announced)
    for key, value in cw_env(sandbox).items():
        monkeypatch.setenv(key, value)
    db = tmp_path / "sync.sqlite3"
    for args in (("connect",), ("configure", "--platform-dir", demo_folder, "--agreement-type", "Cloud Services"),
                 ("sync-organizations",), ("load-invoices", "--period", "2026-09"), ("automap", "--include")):
        result = cli("--db", db, *args)
        assert result.code == 0, (args, result.err)
    holder = {"proc": proc}

    def restart() -> None:
        holder["proc"], _ = start_sandbox_process(*extra, port=port)

    yield sandbox, db, holder, restart
    if holder["proc"].poll() is None:
        _kill(holder["proc"])


def test_sandbox_killed_mid_sync_then_restarted_loses_no_addition(cli, killable_world) -> None:
    """Must show 3: SIGKILL the sandbox (its own process, --state) in the middle of a sync,
    restart it, sync again: one Addition per marker, and every Addition ID the store holds
    exists in the sandbox."""
    sandbox, db, holder, restart = killable_world
    env = {**os.environ, **cw_env(sandbox)}
    sync = subprocess.Popen([sys.executable, "-m", "cw_tui", "--db", str(db), "sync", "--period", "2026-09", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    with open_store(db):
        while InvoiceLine.select().where(InvoiceLine.sync_status == "synced").count() < 10:
            assert sync.poll() is None and time.monotonic() < deadline, "the sync ended before the kill"
            time.sleep(0.02)
    _kill(holder["proc"])
    restart()  # at once: the run in progress retries into the restarted sandbox, or gives lines up
    sync.wait(timeout=120)
    for _ in range(4):
        cli("--db", db, "sync", "--period", "2026-09")
        if mapped_not_synced(cli, db, "2026-09") == 0:
            break
    assert mapped_not_synced(cli, db, "2026-09") == 0
    assert_exactly_once(sandbox, db)
    with open_store(db):
        held = {line.addition_id for line in InvoiceLine.select() if line.addition_id is not None}
        held |= {s.addition_id for s in SubscriptionAddition.select() if s.addition_id is not None}
    assert held and held <= asyncio.run(_addition_ids(sandbox.credentials))
