"""Issue 4: the sync engine against the real sandbox over a loopback socket, with faults,
killed processes and concurrent runs. Every test ends by counting the Additions through the
ConnectWise API: exactly one per marker, one marker per synced line or subscription. Each runs
on SQLite and on PostgreSQL (issue 17: the store is a file, or a database of the suite's server)."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from cw_tui.rules.additions import marker
from cw_tui.services.connectwise import ConnectWiseClient
from cw_tui.store import InvoiceLine, Offer, Product, SubscriptionAddition, SyncRun, open_store, owner_alive
from tests.sandbox_helpers import sandbox_thread, wait_for
from tests.sync_helpers import assert_exactly_once, cw_env, cw_markers, mapped_not_synced, set_up_as_finance

P1, P2 = "2026-09", "2026-10"
pytestmark = pytest.mark.both_backends


@pytest.fixture
def world(cli, demo_folder: Path, new_db, monkeypatch: pytest.MonkeyPatch):
    """A sandbox, and a store with P1 loaded and automapped, as a finance user would set it up."""
    with sandbox_thread(seed=7) as sandbox:
        for key, value in cw_env(sandbox).items():
            monkeypatch.setenv(key, value)
        db = new_db("sync")
        set_up_as_finance(cli, db, demo_folder, P1)
        yield sandbox, db


def test_sync_posts_every_mapped_line_exactly_once(cli, world) -> None:
    sandbox, db = world
    result = cli("--db", db, "sync", "--period", P1, "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert set(summary) >= {"run_id", "created", "updated", "cancelled", "agreements_created", "skipped", "errors",
                            "api_calls", "duration_s"}
    assert summary["created"] > 50 and summary["errors"] == 0 and summary["skipped"] > 0
    assert mapped_not_synced(cli, db, P1) == 0
    counts = assert_exactly_once(sandbox, db)
    assert len(counts) == summary["created"]
    # a second run posts nothing again
    again = cli("--db", db, "sync", "--period", P1, "--json").json()
    assert again["created"] == again["updated"] == 0 and again["errors"] == 0
    assert cw_markers(sandbox) == counts
    reconciled = cli("--db", db, "reconcile", "--period", P1, "--json")
    assert reconciled.code == 0 and reconciled.json()["mismatches"] == []
    logs = cli("--db", db, "logs", "--category", "sync", "--json").json()
    assert any(e["summary"].startswith(f"Sync of {P1} finished") for e in logs)
    assert any(e["level"] == "WARNING" and "skipped" in e["summary"] for e in logs)


def test_faults_end_exactly_once(cli, world) -> None:
    """(a) dropped connections after commit, 5xx and 429s: run until done, nothing doubled."""
    sandbox, db = world
    faults = sandbox.sandbox.faults
    faults.drop_after_commit_rate, faults.fail_rate, faults.throttle_rate = 0.2, 0.05, 0.05
    codes = []
    for _ in range(6):
        codes.append(cli("--db", db, "sync", "--period", P1).code)
        if mapped_not_synced(cli, db, P1) == 0:
            break
    assert mapped_not_synced(cli, db, P1) == 0, codes
    injected = sandbox.sandbox.injected
    assert injected["drop"] > 0 and injected["500"] > 0 and injected["429"] > 0, injected
    faults.drop_after_commit_rate = faults.fail_rate = faults.throttle_rate = 0
    assert_exactly_once(sandbox, db)
    assert cli("--db", db, "reconcile", "--period", P1, "--json").json()["mismatches"] == []


def _sync_process(db: Path | str, sandbox, period: str, **env_extra: str) -> subprocess.Popen:
    env = {**os.environ, **cw_env(sandbox), **env_extra}
    return subprocess.Popen([sys.executable, "-m", "cw_tui", "--db", str(db), "sync", "--period", period, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _kill_mid_run(proc: subprocess.Popen, db: Path | str) -> set[str]:
    """SIGKILL once 10 lines are synced; returns the owners of the claims it left behind."""
    deadline = time.monotonic() + 60
    with open_store(db):
        while InvoiceLine.select().where(InvoiceLine.sync_status == "synced").count() < 10:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() is not None else "slow"
            time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    with open_store(db):
        owners = {r.claimed_by for r in InvoiceLine.select().where(InvoiceLine.sync_status == "claimed")}
    assert owners, "the kill should have left claims behind"
    return owners


def test_a_killed_sync_is_resumed_without_doubles(cli, world) -> None:
    """(b) SIGKILL in the middle of a run, then run again."""
    sandbox, db = world
    sandbox.sandbox.faults.latency_ms = 80  # slow enough that the kill lands mid-run on a busy machine
    _kill_mid_run(_sync_process(db, sandbox, P1), db)
    sandbox.sandbox.faults.latency_ms = 0
    again = cli("--db", db, "sync", "--period", P1, "--json")
    assert again.code == 0, again.err
    assert mapped_not_synced(cli, db, P1) == 0
    assert_exactly_once(sandbox, db)


def _can_be_another_host() -> bool:
    """A process with a host name of its own (a UTS namespace: root, or a user namespace)."""
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--uts", "hostname", "finance-laptop"], capture_output=True).returncode == 0


@pytest.mark.postgres_only
def test_a_sync_killed_on_another_host_is_resumed_at_once(cli, world) -> None:
    """Issue 17: a sync on another machine (a process whose host name is finance-laptop) is
    killed mid-run. Its claims name a host whose PIDs this machine cannot see; on PostgreSQL
    the run's advisory lock went with its session, so the next run here releases them at once
    and nothing is posted twice. (SQLite trusts another host's claims for six hours.)"""
    if not _can_be_another_host():
        pytest.skip("no UTS namespace here (unshare) to play another host")
    sandbox, db = world
    sandbox.sandbox.faults.latency_ms = 80
    env = {**os.environ, **cw_env(sandbox)}
    proc = subprocess.Popen(["unshare", "--uts", "sh", "-c", 'hostname finance-laptop && exec "$0" "$@"', sys.executable,
                             "-m", "cw_tui", "--db", str(db), "sync", "--period", P1, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    with open_store(db):
        wait_for(lambda: SyncRun.select().where(SyncRun.state == "running").exists(), timeout=30)
        [running] = SyncRun.select().where(SyncRun.state == "running")
        assert running.owner.startswith("finance-laptop|") and owner_alive(running.owner)
    owners = _kill_mid_run(proc, db)
    assert all(o.startswith("finance-laptop|") for o in owners), owners
    with open_store(db):
        assert not owner_alive(running.owner)  # at once: no six hours' wait
    sandbox.sandbox.faults.latency_ms = 0
    again = cli("--db", db, "sync", "--period", P1, "--json")
    assert again.code == 0, again.err
    assert mapped_not_synced(cli, db, P1) == 0
    assert_exactly_once(sandbox, db)
    killed = next(r for r in cli("--db", db, "runs", "--json").json() if r["id"] == running.id)
    assert killed["state"] == "interrupted" and killed["resolved_run_id"] == again.json()["run_id"]


def test_two_syncs_at_once_post_each_line_once(cli, world) -> None:
    """(c) two `cw-tui sync` processes started at once on the same database, by two people."""
    sandbox, db = world
    sandbox.sandbox.faults.latency_ms = 10
    first = _sync_process(db, sandbox, P1, CW_TUI_USER="finance.anna")
    second = _sync_process(db, sandbox, P1, CW_TUI_USER="finance.ben")
    outputs = [p.communicate(timeout=120) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    assert mapped_not_synced(cli, db, P1) == 0
    counts = assert_exactly_once(sandbox, db)
    import json
    summaries = [json.loads(out) for out, _ in outputs]
    assert sum(s["created"] for s in summaries) == len(counts)
    with open_store(db):
        who = {r.id: r.who for r in SyncRun.select().where(SyncRun.kind == "sync")}
    assert {who[s["run_id"]] for s in summaries} == {"finance.anna", "finance.ben"}


def test_rejected_lines_end_error_with_connectwise_message(cli, world) -> None:
    """(d) lines whose product is inactive in ConnectWise: Error with the message; the rest Synced; exit 1."""
    sandbox, db = world
    with open_store(db):
        inactive = Product.select().where(Product.inactive == True).first()  # noqa: E712
        offer = (Offer.select().join(InvoiceLine, on=(InvoiceLine.offer_id == Offer.platform_id))
                 .where(Offer.product_id.is_null(False) & (InvoiceLine.period == P1)).first())
        Offer.update(product_id=inactive.id).where(Offer.platform_id == offer.platform_id).execute()
    result = cli("--db", db, "sync", "--period", P1, "--json")
    assert result.code == 1
    assert result.json()["errors"] > 0
    with open_store(db):
        errors = list(InvoiceLine.select().where(InvoiceLine.sync_status == "error"))
        assert errors and all(l.offer_id == offer.platform_id for l in errors)
        assert all("inactive" in l.last_error for l in errors)
        others = InvoiceLine.select().where((InvoiceLine.offer_id != offer.platform_id) & (InvoiceLine.period == P1)
                                            & (InvoiceLine.sync_status == "error")).count()
        assert others == 0
    assert mapped_not_synced(cli, db, P1) == len(errors)
    assert_exactly_once(sandbox, db)
    logs = cli("--db", db, "logs", "--level", "error", "--json").json()
    assert any("inactive" in e["summary"] or "inactive" in e["details"] for e in logs)


def _drop_subscription(folder: Path, period: str) -> str:
    """Remove one monthly subscription's lines from a month's file; returns its ID."""
    path = folder / f"invoice_lines_{period}.csv"
    rows = list(csv.reader(io.StringIO(path.read_text(), newline="")))
    h = rows[0]
    candidates = Counter(r[h.index("subscription_id")] for r in rows[1:]
                         if r[h.index("charge_type")] == "Cycle Fee" and r[h.index("billing_cycle")] == "Monthly")
    gone = sorted(candidates)[0]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([r for r in rows if r[h.index("subscription_id")] != gone])
    path.write_text(buffer.getvalue())
    return gone


def test_the_next_month_updates_and_cancels(cli, world, demo_folder: Path) -> None:
    sandbox, db = world
    assert cli("--db", db, "sync", "--period", P1).code == 0
    with open_store(db):
        subscriptions = {s.subscription_id: s.addition_id for s in SubscriptionAddition.select().where(SubscriptionAddition.state == "active")}
    gone = _drop_subscription(demo_folder, P2)
    assert gone in subscriptions
    assert cli("--db", db, "load-invoices", "--period", P2).code == 0
    before = cw_markers(sandbox)
    result = cli("--db", db, "sync", "--period", P2, "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["cancelled"] >= 1
    after = assert_exactly_once(sandbox, db)
    # persistent additions were reused: no subscription got a second marker or addition
    with open_store(db):
        rows = {s.subscription_id: s for s in SubscriptionAddition.select()}
    for subscription_id, addition_id in subscriptions.items():
        assert rows[subscription_id].addition_id == addition_id
    assert rows[gone].state == "cancelled" and rows[gone].cancelled_date.isoformat() == "2026-09-30"
    new_subscription_markers = {m for m in after if m.startswith("cwt:S:")} - {m for m in before if m.startswith("cwt:S:")}
    assert all(m[6:] not in subscriptions for m in new_subscription_markers)

    async def cancelled_date():
        async with ConnectWiseClient(sandbox.credentials) as client:
            row = rows[gone]
            [addition] = await client.additions(row.agreement_id, f'serialNumber="{marker("S", gone)}"')
            return addition.cancelledDate
    assert asyncio.run(cancelled_date()) == "2026-09-30T00:00:00Z"
    assert cli("--db", db, "reconcile", "--period", P2, "--json").json()["mismatches"] == []


def test_dry_run_sends_no_write_and_its_totals_match_the_sync(cli, world) -> None:
    sandbox, db = world
    state = sandbox.sandbox.state
    before = (len(state.additions), len(state.agreements), cw_markers(sandbox))
    plan = cli("--db", db, "sync", "--period", P1, "--dry-run", "--json")
    assert plan.code == 0, plan.err
    assert (len(state.additions), len(state.agreements), cw_markers(sandbox)) == before
    planned = plan.json()
    assert planned["creates"] and planned["totals"]
    result = cli("--db", db, "sync", "--period", P1, "--json").json()
    assert result["created"] == len(planned["creates"])
    assert result["agreements_created"] == len(planned["new_agreements"])
    assert result["totals"] == planned["totals"]


def test_scheduled_sync_runs_only_when_daily_sync_is_on(cli, world) -> None:
    sandbox, db = world
    off = cli("--db", db, "sync", "--scheduled", "--json")
    assert off.code == 0 and off.json() == {"scheduled": True, "enabled": False}
    assert cw_markers(sandbox) == Counter()
    assert cli("--db", db, "configure", "--daily-sync", "on").code == 0
    on = cli("--db", db, "sync", "--scheduled", "--json")
    assert on.code == 0, on.err
    assert on.json()["period"] == P1 and on.json()["created"] > 0
    status = cli("--db", db, "status", "--json").json()
    assert status["last_sync_to_psa"] is not None and status["daily_sync"]["enabled"] is True


def test_sync_needs_an_agreement_type(cli, demo_folder: Path, tmp_path: Path) -> None:
    db = tmp_path / "x.sqlite3"
    cli("--db", db, "configure", "--platform-dir", demo_folder)
    result = cli("--db", db, "sync", "--period", P1)
    assert result.code == 2 and "Agreement Type" in result.err
