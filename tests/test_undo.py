"""Issue 16: undo a sync run. The real CLI and the real sandbox over a loopback socket; what
ConnectWise holds is read Addition by Addition through its API."""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
from pathlib import Path

import pytest

from cw_tui.platform.demo_export import write_demo_data
from cw_tui.services.connectwise import ConnectWiseClient
from cw_tui.store import InvoiceLine, SubscriptionAddition, open_store
from cw_tui.sync.plan import ADDITION_FIELDS, values_in_connectwise
from tests.sandbox_helpers import sandbox_thread
from tests.sync_helpers import assert_exactly_once, cw_env, set_up_as_finance

OCT, NOV = "2026-10", "2026-11"


@pytest.fixture(scope="module")
def autumn_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("autumn")
    write_demo_data(folder, seed=11, organizations=40, months=2, end_month=NOV)
    _next_month_changes(folder, NOV)
    return folder


def _next_month_changes(folder: Path, period: str) -> None:
    """November: every monthly Cycle Fee one seat more (updates), and the recurring lines of
    every fifth subscription gone (cancels)."""
    path = folder / f"invoice_lines_{period}.csv"
    rows = list(csv.reader(io.StringIO(path.read_text(), newline="")))
    header, body = rows[0], rows[1:]
    col = {name: header.index(name) for name in ("charge_type", "quantity", "subscription_id")}
    subscriptions = sorted({r[col["subscription_id"]] for r in body if r[col["charge_type"]] == "Cycle Fee"})
    gone = set(subscriptions[::5])
    kept = []
    for row in body:
        if row[col["charge_type"]] == "Cycle Fee":
            if row[col["subscription_id"]] in gone:
                continue
            row[col["quantity"]] = str(int(row[col["quantity"]]) + 1)
        kept.append(row)
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *kept])
    path.write_text(buffer.getvalue())


@pytest.fixture
def world(cli, autumn_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    folder = tmp_path / "export"
    shutil.copytree(autumn_source, folder)
    monkeypatch.setenv("CW_TUI_USER", "finance.ben")
    with sandbox_thread(seed=11) as sandbox:
        for key, value in cw_env(sandbox).items():
            monkeypatch.setenv(key, value)
        db = tmp_path / "undo.sqlite3"
        set_up_as_finance(cli, db, folder, OCT)
        yield sandbox, db, folder


def held(sandbox) -> dict[int, tuple]:
    """addition id -> (agreement, marker, values) of every cw-tui Addition, through the API."""
    async def go():
        async with ConnectWiseClient(sandbox.credentials) as client:
            result = {}
            for agreement in await client.agreements():
                for a in await client.additions(agreement.id, 'serialNumber like "cwt:*"', fields=ADDITION_FIELDS):
                    result[a.id] = (agreement.id, a.serialNumber, values_in_connectwise(a))
            return result
    return asyncio.run(go())


def sync(cli, db: Path, period: str) -> dict:
    result = cli("--db", db, "sync", "--period", period, "--json")
    assert result.code == 0, result.err
    return result.json()


def test_undo_of_the_second_month_gives_back_what_connectwise_held_after_the_first(cli, world) -> None:
    sandbox, db, _ = world
    first = sync(cli, db, OCT)
    assert first["created"] > 20 and first["errors"] == 0
    after_first = held(sandbox)
    with open_store(db):
        oct_synced = {l.line_id: l.addition_id for l in InvoiceLine.select().where(InvoiceLine.sync_status == "synced")}
    assert cli("--db", db, "load-invoices", "--period", NOV).code == 0
    second = sync(cli, db, NOV)
    assert second["updated"] > 5 and second["cancelled"] > 0 and second["created"] > 0, second
    assert held(sandbox) != after_first

    plan = cli("--db", db, "undo", str(second["run_id"]), "--dry-run", "--json")
    assert plan.code == 0, plan.err
    counts = plan.json()["counts"]
    assert counts.get("delete") == second["created"] and counts.get("restore") == second["updated"] + second["cancelled"]
    assert "refused" not in counts
    text = cli("--db", db, "undo", str(second["run_id"]), "--dry-run")
    assert f"Undo plan of run {second['run_id']}" in text.out and "restore" in text.out

    undone = cli("--db", db, "undo", str(second["run_id"]), "--expect-plan", plan.json()["fingerprint"], "--json")
    assert undone.code == 0, undone.out + undone.err
    result = undone.json()
    assert result["deleted"] == second["created"] and result["restored"] == second["updated"] + second["cancelled"]
    assert result["errors"] == 0 and result["refused"] == 0
    assert held(sandbox) == after_first  # Addition by Addition: IDs, agreements, markers and values
    with open_store(db):
        assert not InvoiceLine.select().where((InvoiceLine.period == NOV) & (InvoiceLine.sync_status == "synced")).count()
        assert {l.line_id: l.addition_id for l in InvoiceLine.select().where(InvoiceLine.sync_status == "synced")} == oct_synced
    # undoing twice does nothing
    again = cli("--db", db, "undo", str(second["run_id"]), "--json")
    assert again.code == 0 and again.json()["nothing_to_undo"] is True
    assert held(sandbox) == after_first

    # the first run too: none of our markers left
    undone_first = cli("--db", db, "undo", str(first["run_id"]), "--json")
    assert undone_first.code == 0, undone_first.out + undone_first.err
    assert undone_first.json()["deleted"] == first["created"]
    assert held(sandbox) == {}
    with open_store(db):
        assert not InvoiceLine.select().where(InvoiceLine.sync_status == "synced").count()
        assert not SubscriptionAddition.select().count()

    # syncing again gives one Addition per marker
    sync(cli, db, OCT)
    sync(cli, db, NOV)
    assert_exactly_once(sandbox, db)
