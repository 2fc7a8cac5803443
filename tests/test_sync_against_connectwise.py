"""Issue 10: exactly once against ConnectWise itself, not only against the local store; open
months never cancel; the plan confirmed is the plan run; a month's reconciliation stays put.
The real CLI and the real sandbox over a loopback socket; every test counts the Additions in
ConnectWise through the API. On SQLite and on PostgreSQL (a restored backup is SQLite's file copy)."""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
from datetime import date
from pathlib import Path

import pytest

from cw_tui.platform.demo_export import write_demo_data
from cw_tui.rules.additions import marker
from cw_tui.rules.periods import period_of, shift_period
from cw_tui.services.connectwise import ConnectWiseClient
from cw_tui.store import Agreement, InvoiceLine, Organization, SubscriptionAddition, open_store
from tests.sandbox_helpers import sandbox_thread
from tests.sync_helpers import assert_exactly_once, cw_env, cw_markers

pytestmark = pytest.mark.both_backends

P1, P2 = "2026-09", "2026-10"
SETUP = ("connect",), ("sync-organizations",), ("automap", "--include")


def set_up(cli, db: Path | str, folder: Path, *periods: str) -> None:
    """A finance user's setup of a database against the ConnectWise already in use."""
    steps = [("connect",), ("configure", "--platform-dir", folder, "--agreement-type", "Cloud Services"),
             ("sync-organizations",), *(("load-invoices", "--period", p) for p in periods), ("automap", "--include")]
    for args in steps:
        result = cli("--db", db, *args)
        assert result.code == 0, (args, result.err)


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch):
    with sandbox_thread(seed=7) as running:
        for key, value in cw_env(running).items():
            monkeypatch.setenv(key, value)
        yield running


def synced_additions(db: Path | str) -> dict[str, int]:
    with open_store(db):
        return {l.line_id: l.addition_id for l in InvoiceLine.select().where(InvoiceLine.sync_status == "synced")}


def test_a_second_database_adopts_what_the_first_posted(cli, sandbox, demo_folder: Path, new_db) -> None:
    first, second = new_db("a"), new_db("b")
    set_up(cli, first, demo_folder, P1)
    posted = cli("--db", first, "sync", "--period", P1, "--json").json()
    assert posted["created"] > 50 and posted["agreements_created"] > 0 and posted["errors"] == 0
    counts = assert_exactly_once(sandbox, first)

    set_up(cli, second, demo_folder, P1)
    plan = cli("--db", second, "sync", "--period", P1, "--dry-run", "--json").json()
    assert plan["creates"] == [] and plan["new_agreements"] == []
    assert len(plan["already_in_connectwise"]) + sum(u["adopted"] for u in plan["updates"]) == len(counts)
    text = cli("--db", second, "sync", "--period", P1, "--dry-run").out
    assert f"already in ConnectWise: {len(counts)}" in text

    result = cli("--db", second, "sync", "--period", P1, "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["created"] == 0 and summary["agreements_created"] == 0 and summary["adopted"] == len(counts)
    assert cw_markers(sandbox) == counts  # one Addition per marker, still
    assert synced_additions(second) == synced_additions(first)  # Synced with the existing Additions' IDs
    assert_exactly_once(sandbox, second)


@pytest.mark.sqlite_only
def test_a_restored_backup_posts_nothing_twice(cli, sandbox, demo_folder: Path, tmp_path: Path) -> None:
    db = tmp_path / "finance.sqlite3"
    set_up(cli, db, demo_folder, P1)
    backup = tmp_path / "backup.sqlite3"
    with open_store(db) as store:
        store.db.execute_sql(f"VACUUM INTO '{backup}'")
    assert cli("--db", db, "sync", "--period", P1).code == 0
    counts = cw_markers(sandbox)
    before = synced_additions(db)
    for side in db.parent.glob(db.name + "*"):
        side.unlink()
    shutil.copy(backup, db)  # the backup knows nothing of that sync
    assert synced_additions(db) == {}
    again = cli("--db", db, "sync", "--period", P1, "--json").json()
    assert again["created"] == 0 and again["adopted"] == len(counts)
    assert cw_markers(sandbox) == counts
    assert synced_additions(db) == before


def _lines_of(path: Path) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(path.read_text(), newline="")))
    return rows[0], rows[1:]


def test_an_open_month_cancels_nothing_and_its_late_invoices_update(cli, sandbox, tmp_path: Path, new_db) -> None:
    """On the first days of a month: last month is synced; this month's invoices are partly
    still New. Its plan cancels nothing; once the invoices are Verified the subscriptions on
    them are updated in place: one Addition per marker, none cancelled, no gap."""
    today = date.today()
    current, previous = period_of(today), shift_period(period_of(today), -1)
    folder = tmp_path / "export"
    write_demo_data(folder, seed=7, organizations=60, months=2, today=today)
    month_file = folder / f"invoice_lines_{current}.csv"
    header, rows = _lines_of(month_file)
    status = header.index("invoice_status")
    assert sum(r[status] == "New" for r in rows) > 10
    db = new_db("finance")
    set_up(cli, db, folder, previous, current)
    assert cli("--db", db, "sync", "--period", previous).code == 0
    with open_store(db):
        live = {s.subscription_id for s in SubscriptionAddition.select().where(SubscriptionAddition.state == "active")}

    plan = cli("--db", db, "sync", "--period", current, "--dry-run", "--json").json()
    assert plan["open"] is True and plan["cancels"] == [] and plan["new_lines_skipped"] > 10
    assert "month ends" in plan["open_reason"] and "New" in plan["open_reason"]
    text = cli("--db", db, "sync", "--period", current, "--dry-run").out
    assert f"{current} is OPEN" in text and "none is sent now" in text
    result = cli("--db", db, "sync", "--period", current, "--json").json()
    assert result["cancelled"] == 0 and result["errors"] == 0

    for row in rows:
        if row[status] == "New":
            row[status] = "Verified"
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    month_file.write_text(buffer.getvalue())
    assert cli("--db", db, "load-invoices", "--period", current).code == 0
    late = cli("--db", db, "sync", "--period", current, "--json").json()
    assert late["errors"] == 0 and late["cancelled"] == 0 and late["synced_lines"] > 10
    counts = assert_exactly_once(sandbox, db)
    with open_store(db):
        states = {s.subscription_id: s for s in SubscriptionAddition.select()}
    assert not [s for s in states.values() if s.state == "cancelled"]
    assert all(states[s].state == "active" for s in live)

    async def cancelled_dates() -> dict[str, str | None]:
        async with ConnectWiseClient(sandbox.credentials) as client:
            result = {}
            for agreement_id in sorted({s.agreement_id for s in states.values()}):
                for addition in await client.additions(agreement_id, 'serialNumber like "cwt:S*"'):
                    result[addition.serialNumber] = addition.cancelledDate
            return result
    held = asyncio.run(cancelled_dates())
    # every subscription billed in the previous month is still live in ConnectWise: no gap
    assert all(held[marker("S", s)] is None for s in live if marker("S", s) in counts)


def test_the_plan_confirmed_is_the_plan_run(cli, sandbox, demo_folder: Path, new_db) -> None:
    db = new_db("finance")
    set_up(cli, db, demo_folder, P1)
    shown = cli("--db", db, "sync", "--period", P1, "--dry-run", "--json").json()
    assert len(shown["fingerprint"]) == 16
    assert cli("--db", db, "sync", "--period", P1, "--dry-run", "--json").json()["fingerprint"] == shown["fingerprint"]
    # someone excludes an organization meanwhile: the plan differs
    with open_store(db):
        # the first by its ID (PostgreSQL keeps no row order without ORDER BY): one with lines this month
        included = Organization.select().where(Organization.excluded == False, Organization.company_id.is_null(False)).order_by(  # noqa: E712
            Organization.platform_id).first()
        Organization.update(excluded=True).where(Organization.platform_id == included.platform_id).execute()
    refused = cli("--db", db, "sync", "--period", P1, "--expect-plan", shown["fingerprint"])
    assert refused.code == 2 and "nothing was sent" in refused.err and "changed" in refused.err
    assert "Plan fingerprint:" in refused.out  # the new plan is shown
    assert cw_markers(sandbox) == {} and synced_additions(db) == {}
    fresh = cli("--db", db, "sync", "--period", P1, "--dry-run", "--json").json()["fingerprint"]
    done = cli("--db", db, "sync", "--period", P1, "--expect-plan", fresh, "--json")
    assert done.code == 0 and done.json()["fingerprint"] == fresh and done.json()["created"] > 50
    assert_exactly_once(sandbox, db)


def _change_quantities(folder: Path, period: str) -> None:
    """Every monthly Cycle Fee of the month bills one more seat."""
    path = folder / f"invoice_lines_{period}.csv"
    header, rows = _lines_of(path)
    for row in rows:
        if row[header.index("charge_type")] == "Cycle Fee":
            row[header.index("quantity")] = str(int(row[header.index("quantity")]) + 1)
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    path.write_text(buffer.getvalue())


def test_a_months_reconciliation_does_not_change_when_the_next_is_synced(cli, sandbox, demo_folder: Path,
                                                                         new_db) -> None:
    db = new_db("finance")
    set_up(cli, db, demo_folder, P1)
    assert cli("--db", db, "sync", "--period", P1).code == 0
    before = cli("--db", db, "reconcile", "--period", P1, "--json")
    assert before.code == 0 and before.json()["mismatches"] == []
    _change_quantities(demo_folder, P2)
    assert cli("--db", db, "load-invoices", "--period", P2).code == 0
    synced = cli("--db", db, "sync", "--period", P2, "--json").json()
    assert synced["updated"] > 10 and synced["errors"] == 0
    after = cli("--db", db, "reconcile", "--period", P1, "--json")
    assert after.code == 0 and after.json()["mismatches"] == []
    assert after.json()["customers"] == before.json()["customers"]
    assert cli("--db", db, "reconcile", "--period", P2, "--json").json()["mismatches"] == []
    text = cli("--db", db, "reconcile", "--period", P1).out
    currencies = {c["currency"] for c in before.json()["customers"]}
    assert len(currencies) > 1  # the demo bills some customers in a second currency
    for currency in currencies:
        assert f"  {currency}: expected " in text  # one figure per currency, never one sum of all

    # a person changes an Addition in ConnectWise: the month that posted it reports it
    with open_store(db):
        # one that October bills, the first by ID (PostgreSQL keeps no row order without ORDER BY)
        sub = (SubscriptionAddition.select()
               .where((SubscriptionAddition.state == "active") & (SubscriptionAddition.last_period == P2))
               .order_by(SubscriptionAddition.subscription_id).first())

    async def bump() -> None:
        async with ConnectWiseClient(sandbox.credentials) as client:
            await client.patch_addition(sub.agreement_id, sub.addition_id, {"quantity": 999})
    asyncio.run(bump())
    changed = cli("--db", db, "reconcile", "--period", P2, "--json")
    assert changed.code == 1
    assert [m["marker"] for m in changed.json()["mismatches"]] == [marker("S", sub.subscription_id)]


def test_a_line_on_another_companys_agreement_is_never_posted(cli, sandbox, demo_folder: Path, new_db) -> None:
    db = new_db("finance")
    set_up(cli, db, demo_folder, P1)
    with open_store(db) as store:
        line_id, company_id = store.db.execute_sql(
            "SELECT l.line_id, o.company_id FROM invoice_line l JOIN organization o ON o.platform_id = l.organization_id "
            "WHERE o.company_id IS NOT NULL AND o.excluded = ? AND l.charge_type = 'Usage Fee' LIMIT 1", (False,)).fetchone()
        other = Agreement.select().where((Agreement.company_id != company_id) & (Agreement.status == "Active")).first()
        # written straight into the store, as an older cw-tui (or a hand edit) could have left it
        InvoiceLine.update(override_agreement_id=other.id).where(InvoiceLine.line_id == line_id).execute()
    plan = cli("--db", db, "sync", "--period", P1, "--dry-run", "--json").json()
    assert any(s["line"] == line_id and "another company" in s["reason"] for s in plan["skips"])
    assert cli("--db", db, "sync", "--period", P1).code == 0
    assert marker("L", line_id) not in cw_markers(sandbox)
    with open_store(db):
        assert InvoiceLine.get_by_id(line_id).sync_status == "not_synced"
    logs = cli("--db", db, "logs", "--level", "warning", "--search", line_id, "--json").json()
    assert any("another company" in e["summary"] for e in logs)


def test_a_company_without_a_default_contact_leaves_its_lines_in_error_and_the_rest_posts(cli, sandbox, demo_folder: Path,
                                                                                         new_db) -> None:
    """The core's own reason (AgreementUnavailable), not a ConnectWise error: the lines that
    need a new agreement for that company say why, and every other line is posted."""
    db = new_db("finance")
    set_up(cli, db, demo_folder, P1)
    plan = cli("--db", db, "sync", "--period", P1, "--dry-run", "--json").json()
    company_id = plan["new_agreements"][0]["company_id"]
    with open_store(db):
        from cw_tui.store import Company
        Company.update(default_contact_id=None).where(Company.id == company_id).execute()
    result = cli("--db", db, "sync", "--period", P1, "--json")
    assert result.code == 1
    summary = result.json()
    assert summary["errors"] >= 1 and summary["created"] > 0
    with open_store(db):
        errors = list(InvoiceLine.select().where(InvoiceLine.sync_status == "error"))
        assert errors and all(f"company {company_id} has no default contact" in (line.last_error or "") for line in errors)
    assert_exactly_once(sandbox, db)
