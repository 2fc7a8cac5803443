"""Reconciliation (SPEC §15): what cw-tui posted for a month against what ConnectWise holds."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cw_tui.rules.additions import MARKER_PREFIX, marker
from cw_tui.services.connectwise import (
    ConnectWiseClient,
)
from cw_tui.services.connectwise.conditions import condition
from cw_tui.services.connectwise.models import Addition
from cw_tui.store import (
    Store,
    SubscriptionAddition,
    sync_reads,
)


@dataclass
class Mismatch:
    kind: str  # missing | duplicate | amount | foreign
    marker: str
    customer: str
    currency: str
    detail: str


@dataclass
class ReconcileReport:
    period: str
    per_customer: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)
    additions_read: int = 0


async def reconcile(store: Store, client: ConnectWiseClient, period: str) -> ReconcileReport:
    """Compare what cw-tui posted for the period with what ConnectWise holds now, per
    customer and currency (SPEC §15). A persistent Addition that a later month updated counts
    here at the values posted for this month, as long as ConnectWise still holds what cw-tui
    posted last; so a month's figures do not change when a later month is synced."""
    report = ReconcileReport(period)
    expected = sync_reads.posted_for_period(store, period)
    subscriptions = {s.subscription_id: s for s in SubscriptionAddition.select()}
    agreement_ids = set()
    for exp in expected.values():
        sub = subscriptions.get(exp["subscription"]) if exp["subscription"] else None
        if sub is not None and sub.agreement_id:
            exp["agreement"] = sub.agreement_id
        if exp["agreement"]:
            agreement_ids.add(exp["agreement"])
    found: dict[str, list[Addition]] = defaultdict(list)
    for agreement_id in sorted(agreement_ids):
        for addition in await client.additions(agreement_id, condition("serialNumber", "like", f"{MARKER_PREFIX}*")):
            found[addition.serialNumber or ""].append(addition)
            report.additions_read += 1
    known_lines = sync_reads.synced_line_ids(store)
    known = {marker("L", lid) for lid in known_lines} | {marker("S", s) for s in subscriptions}

    def tally(customer: str, currency: str) -> dict[str, Any]:
        return report.per_customer.setdefault((customer, currency), {"expected_count": 0, "expected_amount": Decimal(0),
                                                                     "found_count": 0, "found_amount": Decimal(0)})

    for key, exp in sorted(expected.items()):
        row = tally(exp["customer"], exp["currency"])
        row["expected_count"] += 1
        row["expected_amount"] += exp["amount"]
        additions = found.get(key, [])
        if not additions:
            report.mismatches.append(Mismatch("missing", key, exp["customer"], exp["currency"],
                                              f"no addition with this marker on agreement {exp['agreement']}"))
            continue
        if len(additions) > 1:
            report.mismatches.append(Mismatch("duplicate", key, exp["customer"], exp["currency"],
                                              f"{len(additions)} additions: {', '.join(str(a.id) for a in additions)}"))
        holds = sum(((a.quantity or 0) * (a.unitPrice or 0) for a in additions), Decimal(0))
        sub = subscriptions.get(exp["subscription"]) if exp["subscription"] else None
        superseded = sub is not None and sub.last_period is not None and sub.last_period > period
        # what cw-tui last left on this Addition: this month's values, or a later month's
        last_posted = (sub.quantity or 0) * (sub.unit_price or 0) if superseded else exp["amount"]
        row["found_count"] += len(additions)
        if len(additions) == 1 and abs(holds - last_posted) <= Decimal("0.005"):
            row["found_amount"] += exp["amount"]
            continue
        row["found_amount"] += holds  # a difference: what ConnectWise really holds
        if len(additions) == 1:
            later = f" (cw-tui last posted {last_posted:.2f} with {sub.last_period})" if superseded and sub else ""
            report.mismatches.append(Mismatch("amount", key, exp["customer"], exp["currency"],
                                              f"expected {last_posted:.2f}{later}, ConnectWise holds {holds:.2f}"))
    for key, additions in sorted(found.items()):
        if key not in expected and key not in known:
            for a in additions:
                report.mismatches.append(Mismatch("foreign", key, "", "",
                                                  f"addition {a.id} on agreement {a.agreementId} has a cw-tui marker "
                                                  "that matches no synced line or subscription"))
    return report


def totals_by_currency(per_customer: dict[tuple[str, str], dict[str, Any]]) -> dict[str, dict[str, Decimal]]:
    """Reconciliation totals per currency: amounts of different currencies are never added."""
    result: dict[str, dict[str, Decimal]] = {}
    for (_, currency), row in sorted(per_customer.items()):
        total = result.setdefault(currency, {"expected": Decimal(0), "found": Decimal(0)})
        total["expected"] += row["expected_amount"]
        total["found"] += row["found_amount"]
    return result
