"""Issue 15: the journal of every write to ConnectWise, run history (`cw-tui runs`) and
reconciliation from the journal. The real CLI and the real sandbox over a loopback socket;
what ConnectWise holds is read through its API. The runs' tests run on SQLite and on PostgreSQL
(issue 17)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from cw_tui.platform.demo_export import write_demo_data
from cw_tui.rules.additions import marker
from cw_tui.services.connectwise import ConnectWiseClient
from cw_tui.store import InvoiceLine, JournalEntry, SubscriptionAddition, SyncRun, journal, open_store
from cw_tui.store.grid import GridCache, GridState, fetch_page
from cw_tui.store.journal_reads import run_actions_source
from cw_tui.sync.plan import ADDITION_FIELDS, values_in_connectwise
from tests.conftest import run_process
from tests.sandbox_helpers import sandbox_thread
from tests.sync_helpers import assert_exactly_once, cw_env, mapped_not_synced, set_up_as_finance

NOV, DEC = "2026-11", "2026-12"
pytestmark = pytest.mark.both_backends


@pytest.fixture(scope="module")
def winter_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("winter")
    write_demo_data(folder, seed=7, organizations=60, months=2, end_month=DEC)
    return folder


@pytest.fixture
def world(cli, winter_source: Path, tmp_path: Path, new_db, monkeypatch: pytest.MonkeyPatch):
    """A sandbox, and a store with November and December loaded and automapped."""
    import shutil

    folder = tmp_path / "export"
    shutil.copytree(winter_source, folder)
    monkeypatch.setenv("CW_TUI_USER", "finance.anna")
    with sandbox_thread(seed=7) as sandbox:
        for key, value in cw_env(sandbox).items():
            monkeypatch.setenv(key, value)
        db = new_db("journal")
        set_up_as_finance(cli, db, folder, NOV)
        yield sandbox, db, folder


def held_in_connectwise(sandbox) -> dict[int, tuple[str, object]]:
    """addition id -> (marker, values) of every cw-tui Addition, read through the API."""
    async def go():
        async with ConnectWiseClient(sandbox.credentials) as client:
            result = {}
            for agreement in await client.agreements():
                for a in await client.additions(agreement.id, 'serialNumber like "cwt:*"', fields=ADDITION_FIELDS):
                    result[a.id] = (a.serialNumber, values_in_connectwise(a))
            return result
    return asyncio.run(go())


def entries(db: Path | str) -> list[journal.JournalAction]:
    with open_store(db) as store:
        ids = [r[0] for r in JournalEntry.select(JournalEntry.id).order_by(JournalEntry.id).tuples()]
        return [journal.entry(store, i) for i in ids]


def assert_journal_matches_connectwise(sandbox, db: Path | str) -> dict[int, tuple[str, object]]:
    """Every Addition has exactly one entry that created or adopted it, and the newest done
    entry of each Addition holds what ConnectWise holds."""
    held = held_in_connectwise(sandbox)
    rows = entries(db)
    assert not [r for r in rows if r.outcome == "pending"]
    creators = Counter(r.addition_id for r in rows if r.outcome == "done" and r.action in ("create", "adopt"))
    assert {a: n for a, n in creators.items() if n != 1} == {}
    assert set(creators) == set(held)
    newest: dict[int, journal.JournalAction] = {}
    for r in rows:
        if r.outcome == "done" and r.addition_id is not None:
            newest[r.addition_id] = r
    for addition_id, (serial, values) in held.items():
        row = newest[addition_id]
        assert row.marker == serial
        assert journal.values_from_json(row.after) == values, (addition_id, row.action)
    return held


def test_a_sync_under_faults_journals_each_addition_once_and_as_connectwise_holds_it(cli, world) -> None:
    sandbox, db, _ = world
    faults = sandbox.sandbox.faults
    faults.drop_after_commit_rate, faults.fail_rate = 0.2, 0.05
    codes = []
    for _ in range(6):
        codes.append(cli("--db", db, "sync", "--period", NOV).code)
        if mapped_not_synced(cli, db, NOV) == 0:
            break
    assert mapped_not_synced(cli, db, NOV) == 0, codes
    assert sandbox.sandbox.injected["drop"] > 0 and sandbox.sandbox.injected["500"] > 0
    faults.drop_after_commit_rate = faults.fail_rate = 0
    assert_exactly_once(sandbox, db)
    held = assert_journal_matches_connectwise(sandbox, db)
    rows = entries(db)
    # the lost answers were resolved: found (done) or never posted (error), none left unknown
    assert any(r.resolution for r in rows)
    assert not [r for r in rows if r.outcome == "unknown" and r.action == "create"]
    # every synced line is covered by the entry of its Addition
    with open_store(db):
        synced = {l.line_id: l.addition_id for l in InvoiceLine.select().where(InvoiceLine.sync_status == "synced")}
    covered = {lid: r.addition_id for r in rows if r.outcome == "done" and r.action in ("create", "adopt")
               for lid in r.line_ids}
    assert covered == synced
    assert set(synced.values()) == set(held)
    # new agreements: one done entry per agreement created
    agreements = Counter(r.agreement_id for r in rows if r.action == "new_agreement" and r.outcome == "done")
    assert agreements and all(n == 1 for n in agreements.values())
    assert all(r.who == "finance.anna" for r in rows)


def _change_quantities(folder: Path, period: str) -> None:
    path = folder / f"invoice_lines_{period}.csv"
    rows = list(csv.reader(io.StringIO(path.read_text(), newline="")))
    header = rows[0]
    for row in rows[1:]:
        if row[header.index("charge_type")] == "Cycle Fee":
            row[header.index("quantity")] = str(int(row[header.index("quantity")]) + 1)
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    path.write_text(buffer.getvalue())


def test_reconcile_of_a_month_is_the_same_after_the_next_month_updates_its_additions(cli, world) -> None:
    sandbox, db, folder = world
    assert cli("--db", db, "sync", "--period", NOV).code == 0
    before = cli("--db", db, "reconcile", "--period", NOV, "--json")
    assert before.code == 0, before.out
    assert before.json()["mismatches"] == [] and before.json()["customers"]
    _change_quantities(folder, DEC)
    assert cli("--db", db, "load-invoices", "--period", DEC).code == 0
    synced = cli("--db", db, "sync", "--period", DEC, "--json").json()
    assert synced["updated"] > 10 and synced["errors"] == 0
    assert_journal_matches_connectwise(sandbox, db)
    after = cli("--db", db, "reconcile", "--period", NOV, "--json")
    assert after.code == 0
    assert after.json() == before.json()
    assert cli("--db", db, "reconcile", "--period", DEC, "--json").json()["mismatches"] == []


def test_an_updates_values_held_before_are_read_from_connectwise(cli, world) -> None:
    """A person changes a persistent Addition's unit cost in ConnectWise; the next month's
    update records it as held before (not the store's copy), and reconciliation still names
    the change: cw-tui never meant that unit cost."""
    sandbox, db, folder = world
    assert cli("--db", db, "sync", "--period", NOV).code == 0
    with open_store(db):
        touched = SubscriptionAddition.select().where(SubscriptionAddition.state == "active").order_by(
            SubscriptionAddition.subscription_id).first()

    async def edit() -> None:
        async with ConnectWiseClient(sandbox.credentials) as client:
            await client.patch_addition(touched.agreement_id, touched.addition_id, {"unitCost": Decimal("1.25")})
    asyncio.run(edit())
    _change_quantities(folder, DEC)
    assert cli("--db", db, "load-invoices", "--period", DEC).code == 0
    held_before = held_in_connectwise(sandbox)
    synced = cli("--db", db, "sync", "--period", DEC, "--json").json()
    assert synced["updated"] > 10 and synced["errors"] == 0
    updates = [r for r in entries(db) if r.action == "update" and r.period == DEC]
    assert len(updates) == synced["updated"]
    for row in updates:
        assert row.outcome == "done" and row.before is not None
        assert journal.values_from_json(row.before) == held_before[row.addition_id][1]
        assert set(row.sent) <= {"quantity", "unitPrice", "unitCost", "effectiveDate", "cancelledDate", "product",
                                 "description", "invoiceDescription"}
    [mine] = [r for r in updates if r.addition_id == touched.addition_id]
    assert Decimal(mine.before["unit_cost"]) == Decimal("1.25") and "unitCost" not in mine.sent
    report = cli("--db", db, "reconcile", "--period", DEC, "--json")
    assert report.code == 1
    [changed] = report.json()["mismatches"]
    assert changed["marker"] == marker("S", touched.subscription_id) and changed["fields"] == ["unit cost"]
    assert "ConnectWise holds 1.25" in changed["detail"]


def test_reconcile_names_an_addition_changed_and_one_deleted_in_connectwise(cli, world) -> None:
    sandbox, db, _ = world
    assert cli("--db", db, "sync", "--period", NOV).code == 0
    with open_store(db):
        sub = SubscriptionAddition.select().where(SubscriptionAddition.state == "active").order_by(
            SubscriptionAddition.subscription_id).first()
        gone = InvoiceLine.select().where((InvoiceLine.sync_status == "synced") & (InvoiceLine.charge_type == "Usage Fee")
                                          ).order_by(InvoiceLine.line_id).first()

    async def edit() -> None:
        async with ConnectWiseClient(sandbox.credentials) as client:
            await client.patch_addition(sub.agreement_id, sub.addition_id, {"quantity": 999})
            await client.delete_addition(gone.posted_agreement_id, gone.addition_id)
    asyncio.run(edit())
    result = run_process("--db", db, "reconcile", "--period", NOV, "--json", env=cw_env(sandbox))
    assert result.code == 1, result.err
    report = result.json()
    by_marker = {m["marker"]: m for m in report["mismatches"]}
    assert set(by_marker) == {marker("S", sub.subscription_id), marker("L", gone.line_id)}
    changed, missing = by_marker[marker("S", sub.subscription_id)], by_marker[marker("L", gone.line_id)]
    assert changed["kind"] == "changed" and changed["fields"] == ["quantity"]
    assert "quantity: cw-tui posted" in changed["detail"] and "ConnectWise holds 999" in changed["detail"]
    assert changed["reason"] == "changed in ConnectWise since cw-tui posted it"
    assert missing["kind"] == "missing" and missing["reason"] == "missing in ConnectWise"
    assert missing["line_ids"] == [gone.line_id]
    # the lines not posted say why (the demo leaves some organizations unmapped or excluded)
    assert {g["reason"] for g in report["not_posted"]} & {"unmapped", "excluded"}
    text = run_process("--db", db, "reconcile", "--period", NOV, env=cw_env(sandbox))
    assert text.code == 1
    assert "changed in ConnectWise since cw-tui posted it" in text.out and "missing in ConnectWise" in text.out
    assert "Lines not posted:" in text.out


def test_a_killed_run_shows_interrupted_until_a_later_run_resolves_it(cli, world) -> None:
    sandbox, db, _ = world
    sandbox.sandbox.faults.latency_ms = 80
    env = {**os.environ, **cw_env(sandbox)}
    proc = subprocess.Popen([sys.executable, "-m", "cw_tui", "--db", str(db), "sync", "--period", NOV, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    with open_store(db):
        while InvoiceLine.select().where(InvoiceLine.sync_status == "synced").count() < 10:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    sandbox.sandbox.faults.latency_ms = 0
    [killed] = cli("--db", db, "runs", "--json").json()
    assert killed["state"] == "interrupted" and killed["resolved_run_id"] is None and killed["who"] == "finance.anna"
    assert killed["trigger"] == "cli" and killed["period"] == NOV
    assert "interrupted" in cli("--db", db, "runs").out
    assert killed["actions"].get("pending", 0) > 0  # requests in flight when it died

    again = cli("--db", db, "sync", "--period", NOV, "--json")
    assert again.code == 0, again.err
    latest, earlier = cli("--db", db, "runs", "--period", NOV, "--json").json()
    assert earlier["id"] == killed["id"] and earlier["state"] == "interrupted"
    assert earlier["resolved_run_id"] == latest["id"] and latest["state"] == "finished"
    assert "pending" not in earlier["actions"]
    assert f"interrupted (resolved by run {latest['id']})" in cli("--db", db, "runs").out
    assert_exactly_once(sandbox, db)
    assert_journal_matches_connectwise(sandbox, db)
    shown = cli("--db", db, "runs", "show", str(latest["id"]), "--json").json()
    assert shown["run"]["id"] == latest["id"]
    assert all(a["resolved_run_id"] == latest["id"] for a in shown["resolved"])


def test_runs_lists_each_run_and_runs_show_every_action(cli, world, tmp_path: Path) -> None:
    sandbox, db, _ = world
    plan = cli("--db", db, "sync", "--period", NOV, "--dry-run", "--json").json()
    result = cli("--db", db, "sync", "--period", NOV, "--json").json()
    [run] = cli("--db", db, "runs", "--json").json()
    assert run["id"] == result["run_id"] and run["fingerprint"] == plan["fingerprint"] == result["fingerprint"]
    assert run["state"] == "finished" and run["who"] == "finance.anna" and run["trigger"] == "cli"
    assert (run["created"], run["agreements_created"], run["api_calls"]) == \
        (result["created"], result["agreements_created"], result["api_calls"])
    assert set(run["totals"]) == {row["currency"] for row in result["totals"]}
    assert run["duration_s"] > 0 and run["actions"] == {"done": result["created"] + result["agreements_created"]}
    assert cli("--db", db, "runs", "--period", DEC, "--json").json() == []

    text = cli("--db", db, "runs")
    assert text.code == 0 and f"{run['id']}" in text.out and "finance.anna" in text.out and plan["fingerprint"] in text.out
    shown = cli("--db", db, "runs", "show", str(run["id"]), "--json").json()
    actions = shown["actions"]
    assert Counter(a["action"] for a in actions) == {"create": result["created"],
                                                      "new_agreement": result["agreements_created"]}
    per_currency: dict[str, Decimal] = {}
    for a in actions:
        if a["action"] == "create":
            per_currency[a["currency"]] = per_currency.get(a["currency"], Decimal(0)) + Decimal(a["amount"])
    assert {c: Decimal(a) for c, a in run["totals"].items()} == per_currency  # exact, never rounded per customer
    create = next(a for a in actions if a["action"] == "create")
    assert create["sent"]["serialNumber"] == create["marker"] and create["line_ids"]
    assert Decimal(create["after"]["quantity"]) * Decimal(create["after"]["unit_price"]) == Decimal(create["amount"])

    as_csv = cli("--db", db, "runs", "show", str(run["id"]), "--csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.out)))
    assert len(rows) == len(actions) and {r["marker"] for r in rows if r["action"] == "create"} == \
        {a["marker"] for a in actions if a["action"] == "create"}
    human = cli("--db", db, "runs", "show", str(run["id"]))
    assert human.code == 0 and f"Run {run['id']} of {NOV}: finished" in human.out and create["marker"] in human.out
    assert cli("--db", db, "runs", "show", "999").code == 2

    # the store API the screens read: a line's entries, and the run's actions in the shared grid
    line_id = create["line_ids"][0]
    with open_store(db) as store:
        [touched] = journal.journal_for_line(store, line_id)
        assert touched.id == create["id"] and touched.outcome == "done"
        source = run_actions_source(run["id"])
        page = fetch_page(store, source, GridState(page_size=500), GridCache())
        assert page.total == len(actions)
        errors_only = GridState().with_filter("outcome", frozenset({"error"}))
        assert fetch_page(store, source, errors_only, GridCache()).total == 0
        found = fetch_page(store, source, GridState(search=create["marker"]), GridCache())
        assert found.total == 1
        detail = journal.run_detail(store, run["id"])
        assert detail is not None and len(detail.actions) == len(actions)
        assert json.loads(json.dumps(detail.as_json()))["run"]["id"] == run["id"]


def test_the_journal_outlives_the_log_purge_and_an_old_store_gains_it(tmp_path: Path) -> None:
    """Schema 4 files are upgraded: their sync runs get run history's states."""
    import sqlite3
    from datetime import timedelta

    from cw_tui.services import system_log
    from cw_tui.store import APP_ID, migrations, now_utc

    old = tmp_path / "v4.sqlite3"  # a file of the previous release: the first four steps
    con = sqlite3.connect(old)
    db_steps = migrations.MIGRATIONS[:4]

    class Raw:
        def execute_sql(self, sql, params=()):
            return con.execute(sql, params)

    for step in db_steps:
        step(Raw())
    con.execute("INSERT INTO sync_run (kind, period, started_at, state, created, updated, cancelled, agreements_created, "
                "skipped, errors, api_calls) VALUES ('sync', '2026-09', '2026-10-01T00:00:00.000000Z', 'partial', 1, 0, 0, "
                "0, 0, 1, 5)")
    con.execute(f"PRAGMA application_id = {APP_ID}")
    con.execute("PRAGMA user_version = 4")
    con.commit()
    con.close()
    with open_store(old) as store:
        assert store.schema_version() == migrations.SCHEMA_VERSION
        [run] = journal.list_runs(store)
        assert run.state == "finished" and run.errors == 1
        assert SyncRun.get_by_id(run.id).state == "finished"
        journal.begin(store, run.id, "2026-09", "create", person="x", marker="cwt:L:1", line_ids=["1"], outcome="done")
        system_log.write(store, system_log.Level.INFO, system_log.Category.SYNC, "old", "")
        system_log.purge(store, now=now_utc() + timedelta(days=400))
        assert JournalEntry.select().count() == 1
        assert [a.line_ids for a in journal.journal_for_line(store, "1")] == [("1",)]


_REFUSE_JOURNAL = {  # a journal insert fails as a failing disk would make it fail
    "sqlite": ["CREATE TRIGGER no_journal BEFORE INSERT ON journal BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"],
    "postgresql": ["CREATE FUNCTION no_journal() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                   "RAISE EXCEPTION 'disk I/O error'; END $$",
                   "CREATE TRIGGER no_journal BEFORE INSERT ON journal FOR EACH ROW EXECUTE FUNCTION no_journal()"],
}


def test_a_journal_that_cannot_be_written_stops_the_run_before_anything_is_sent(cli, world, backend: str) -> None:
    from tests.conftest import db_connect
    from tests.sync_helpers import cw_markers

    sandbox, db, _ = world
    additions, agreements = len(sandbox.sandbox.state.additions), len(sandbox.sandbox.state.agreements)
    con = db_connect(db)
    for statement in _REFUSE_JOURNAL[backend]:
        con.execute(statement)
    con.commit()
    result = cli("--db", db, "sync", "--period", NOV)
    assert result.code == 2 and "disk" in result.err, result.err
    assert (len(sandbox.sandbox.state.additions), len(sandbox.sandbox.state.agreements)) == (additions, agreements)
    assert cw_markers(sandbox) == Counter()
    with open_store(db):
        assert InvoiceLine.select().where(InvoiceLine.sync_status.in_(("claimed", "synced"))).count() == 0
    [stopped] = cli("--db", db, "runs", "--json").json()
    assert stopped["state"] == "failed" and "disk" in stopped["note"]
    con.execute("DROP TRIGGER no_journal" + (" ON journal" if backend == "postgresql" else ""))
    con.commit()
    con.close()
    assert cli("--db", db, "sync", "--period", NOV).code == 0
    assert_exactly_once(sandbox, db)
    assert_journal_matches_connectwise(sandbox, db)


def test_a_second_database_journals_an_adoption_for_each_addition_the_first_posted(cli, world, new_db) -> None:
    sandbox, first, folder = world
    assert cli("--db", first, "sync", "--period", NOV).code == 0
    second = new_db("second")
    set_up_as_finance(cli, second, folder, NOV)
    result = cli("--db", second, "sync", "--period", NOV, "--json").json()
    assert result["created"] == 0 and result["agreements_created"] == 0 and result["adopted"] > 10
    held = assert_journal_matches_connectwise(sandbox, second)
    rows = entries(second)
    assert {r.action for r in rows} <= {"adopt", "update"}  # an update: found holding other values
    assert len([r for r in rows if r.action == "adopt"]) == len(held)
    assert cli("--db", second, "reconcile", "--period", NOV, "--json").json()["mismatches"] == []
