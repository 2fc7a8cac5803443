"""A seeded store with run history and a reconciliation, at fixed times (for snapshots): the
seeded store's 30 synced lines of 2026-09 as one finished run's journal, and a reconciliation of
2026-09 that finds one Addition missing and one changed in ConnectWise."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

from cw_tui.rules.additions import AdditionValues, marker
from cw_tui.rules.vocabulary import ChargeType
from cw_tui.services import reconciliation
from cw_tui.store import InvoiceLine, Organization, Store, SyncRun, journal
from cw_tui.sync.reconcile import Mismatch
from tests.app_helpers import FROZEN, seeded_store

RUN_AT = "2026-11-17T23:00:00.000000Z"


def journal_store(path: Path, demo_folder: Path) -> Store:
    store = seeded_store(path, demo_folder)
    run = SyncRun.create(kind="sync", period="2026-09", started_at=FROZEN, finished_at=FROZEN, state="finished",
                         who="finance", trigger="app", fingerprint="30a1b6ba44914255", api_calls=64, duration_s=8.6)
    SyncRun.create(kind="sync", period="2026-10", started_at=FROZEN, state="interrupted", who="cron",
                                 trigger="scheduled", note="the process was stopped")
    names = {o.platform_id: o.name for o in Organization.select()}
    groups: dict[str, list[InvoiceLine]] = {}
    for line in InvoiceLine.select().where(InvoiceLine.sync_status == "synced").order_by(InvoiceLine.line_id):
        recurring = ChargeType(line.charge_type).recurring
        groups.setdefault(marker("S", line.subscription_id) if recurring else marker("L", line.line_id), []).append(line)
    totals: dict[str, Decimal] = {}
    for n, (key, lines) in enumerate(sorted(groups.items())):
        first = lines[0]
        values = AdditionValues(1000, first.quantity, first.unit_price, first.unit_cost, date(2026, 9, 1), None,
                                first.subscription_name, first.subscription_name)
        entry = journal.begin(store, run.id, "2026-09", "create", person="finance", line_ids=[x.line_id for x in lines],
                              marker=key, agreement_id=5001, customer=names.get(first.organization_id, ""),
                              currency=first.currency, sent=values.body(key), after=values)
        if n == 2:
            journal.failed(store, entry, status=400, code="InvalidObject", message="Product P1 is inactive")
            InvoiceLine.update(sync_status="error", last_error="Product P1 is inactive").where(
                InvoiceLine.line_id.in_([x.line_id for x in lines])).execute()
        else:
            journal.done(store, entry, addition_id=70000 + n, after=values)
            totals[first.currency] = totals.get(first.currency, Decimal(0)) + values.amount
    SyncRun.update(created=len(groups) - 1, errors=1, synced_lines=29,
                   totals=json.dumps({c: str(v) for c, v in totals.items()})).where(SyncRun.id == run.id).execute()
    store.db.execute_sql("UPDATE journal SET written_at = ?, finished_at = ?", (RUN_AT, RUN_AT))
    _reconciled(store)
    return store


def _reconciled(store: Store) -> None:
    """A reconcile report of 2026-09 as sync/reconcile.py gives it: the first posted Addition
    missing in ConnectWise, the second changed there."""
    posted = journal.posted_for_month(store, "2026-09")
    per_customer: dict[tuple[str, str], dict] = {}
    mismatches = []
    for n, (key, p) in enumerate(sorted(posted.items())):
        row = per_customer.setdefault((p.customer, p.currency), {"expected_count": 0, "expected_amount": Decimal(0),
                                                                 "found_count": 0, "found_amount": Decimal(0)})
        row["expected_count"] += 1
        row["expected_amount"] += p.amount
        if n == 0:
            mismatches.append(Mismatch("missing", key, p.customer, p.currency, "no addition with this marker on agreement 5001"))
            continue
        row["found_count"] += 1
        if n == 1:
            mismatches.append(Mismatch("amount", key, p.customer, p.currency,
                                       f"expected {p.amount:.2f}, ConnectWise holds {p.amount * 2:.2f}"))
            row["found_amount"] += p.amount * 2
        else:
            row["found_amount"] += p.amount
    report = SimpleNamespace(per_customer=per_customer, mismatches=mismatches, additions_read=len(posted) - 1)
    reconciliation.keep(store, "2026-09", report, now=FROZEN, person="finance")
