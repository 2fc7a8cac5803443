"""Reconciliation (SPEC §15): per customer and currency, what the Platform invoiced for a
month, what cw-tui posted for it (the journal) and what ConnectWise holds now; every
mismatch with its reason, and the lines not posted with why.

A month's figures come from the journal entries of that month's runs (and, for a persistent
Addition a month left unchanged, the earlier entries that set it), so they do not change when
a later month updates or cancels a persistent Addition. ConnectWise is compared with what
cw-tui last left on each Addition: a difference there is a change made in ConnectWise.
`ReconcileReport.as_json()` is the report as plain data (the CLI's --json, the app's screen).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from cw_tui.rules.additions import MARKER_PREFIX, VALUE_FIELDS, AdditionValues, marker
from cw_tui.services.connectwise import (
    ConnectWiseClient,
)
from cw_tui.services.connectwise.conditions import condition
from cw_tui.services.connectwise.models import Addition
from cw_tui.store import (
    Store,
    SubscriptionAddition,
    journal,
    sync_reads,
)
from cw_tui.sync.plan import ADDITION_FIELDS, values_in_connectwise

CENT = Decimal("0.01")
REASONS = {
    "missing": "missing in ConnectWise",
    "duplicate": "duplicate in ConnectWise",
    "changed": "changed in ConnectWise since cw-tui posted it",
    "foreign": "a cw-tui marker cw-tui has no record of",
}
FIELD_NAMES = {"product_id": "product", "quantity": "quantity", "unit_price": "unit price", "unit_cost": "unit cost",
               "effective_date": "start", "cancelled_date": "end", "description": "description",
               "invoice_description": "invoice description"}
_EXACT = Decimal("0.000001")  # ConnectWise keeps amounts as doubles


@dataclass
class Mismatch:
    kind: str  # missing | duplicate | changed | foreign (REASONS)
    marker: str
    customer: str
    currency: str
    detail: str
    reason: str = ""
    fields: list[str] = field(default_factory=list)  # changed: the fields ConnectWise holds otherwise
    agreement_id: int | None = None
    addition_ids: list[int] = field(default_factory=list)
    line_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reason = self.reason or REASONS.get(self.kind, self.kind)


@dataclass
class ReconcileReport:
    period: str
    per_customer: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)
    not_posted: list[journal.NotPosted] = field(default_factory=list)
    additions_read: int = 0  # the period's Additions (and strangers) found in ConnectWise

    def not_posted_by_reason(self) -> list[dict[str, Any]]:
        """(customer, currency, reason) -> lines and amount, for the lines not posted."""
        groups: dict[tuple[str, str, str], list[Any]] = {}
        for line in self.not_posted:
            entry = groups.setdefault((line.customer, line.currency, line.reason), [0, Decimal(0)])
            entry[0] += 1
            entry[1] += line.amount
        return [{"customer": c, "currency": cur, "reason": r, "lines": n, "amount": str(a.quantize(CENT))}
                for (c, cur, r), (n, a) in sorted(groups.items())]

    def customers_json(self) -> list[dict[str, Any]]:
        return [{"customer": c, "currency": cur, **{k: str(v.quantize(CENT)) if isinstance(v, Decimal) else v
                                                    for k, v in t.items()}}
                for (c, cur), t in sorted(self.per_customer.items())]

    def as_json(self) -> dict[str, Any]:
        return {"period": self.period, "additions_read": self.additions_read, "customers": self.customers_json(),
                "mismatches": [vars(m) for m in self.mismatches],
                "not_posted": self.not_posted_by_reason(),
                "totals": {c: {k: str(v.quantize(CENT)) for k, v in t.items()}
                           for c, t in totals_by_currency(self.per_customer).items()}}


@dataclass
class _Expected:
    marker: str
    customer: str
    currency: str
    agreement_id: int | None
    amount: Decimal  # what was posted for the month
    line_ids: list[str]
    reference: AdditionValues | None  # what cw-tui last left on it (None: known by amount only)
    reference_amount: Decimal


def _expected(store: Store, period: str) -> dict[str, _Expected]:
    posted = journal.posted_for_month(store, period)
    markers = list(posted)
    last = journal.last_posted(store, markers)
    result = {}
    for key, p in posted.items():
        latest = last.get(key, p)
        result[key] = _Expected(key, p.customer, p.currency, latest.agreement_id or p.agreement_id, p.amount,
                                list(p.line_ids), latest.values, latest.amount)
    # lines synced before the journal existed: their own values (the store keeps no request)
    older = journal.unjournaled_markers(store, period)
    if older:
        subscriptions = {s.subscription_id: s for s in SubscriptionAddition.select()}
        for key, exp in sync_reads.posted_for_period(store, period).items():
            if key not in older:
                continue
            sub = subscriptions.get(exp["subscription"]) if exp["subscription"] else None
            superseded = sub is not None and sub.last_period is not None and sub.last_period > period
            last_amount = (sub.quantity or 0) * (sub.unit_price or 0) if superseded and sub else exp["amount"]
            agreement = sub.agreement_id if sub is not None and sub.agreement_id else exp["agreement"]
            result[key] = _Expected(key, exp["customer"], exp["currency"], agreement, exp["amount"], older[key], None,
                                    last_amount)
    return result


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return abs(a - b) > _EXACT
    return a != b


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value.normalize():f}" if value == value.to_integral() else f"{value:f}"
    text = str(value)
    return text if len(text) <= 40 else text[:39] + "…"


def changed_fields(posted: AdditionValues, held: AdditionValues | None) -> list[str]:
    if held is None:
        return ["product"]
    return [name for name in VALUE_FIELDS if _differs(getattr(posted, name), getattr(held, name))]


async def reconcile(store: Store, client: ConnectWiseClient, period: str) -> ReconcileReport:
    """The report of `period` (see the module's docstring). Reads ConnectWise: one paged read
    of cw-tui's markers per agreement that holds the period's Additions."""
    report = ReconcileReport(period)
    expected = _expected(store, period)
    agreement_ids = sorted({e.agreement_id for e in expected.values() if e.agreement_id})
    found: dict[str, list[Addition]] = defaultdict(list)
    for agreement_id in agreement_ids:
        for addition in await client.additions(agreement_id, condition("serialNumber", "like", f"{MARKER_PREFIX}*"),
                                               fields=ADDITION_FIELDS):
            found[addition.serialNumber or ""].append(addition)
    known = journal.journal_markers(store) | {marker("L", lid) for lid in sync_reads.synced_line_ids(store)} \
        | {marker("S", s) for (s,) in SubscriptionAddition.select(SubscriptionAddition.subscription_id).tuples()}

    def tally(customer: str, currency: str) -> dict[str, Any]:
        return report.per_customer.setdefault((customer, currency), {
            "invoiced_lines": 0, "invoiced_amount": Decimal(0), "expected_count": 0, "expected_amount": Decimal(0),
            "found_count": 0, "found_amount": Decimal(0), "mismatches": 0, "not_posted_lines": 0,
            "not_posted_amount": Decimal(0)})

    for (customer, currency), (lines, amount) in sorted(journal.invoiced(store, period).items()):
        row = tally(customer, currency)
        row["invoiced_lines"], row["invoiced_amount"] = lines, amount

    def mismatch(exp: _Expected, kind: str, detail: str, additions: list[Addition], fields: list[str] | None = None) -> None:
        report.mismatches.append(Mismatch(kind, exp.marker, exp.customer, exp.currency, detail, fields=fields or [],
                                          agreement_id=exp.agreement_id, addition_ids=[a.id for a in additions],
                                          line_ids=exp.line_ids))
        tally(exp.customer, exp.currency)["mismatches"] += 1

    for key, exp in sorted(expected.items()):
        row = tally(exp.customer, exp.currency)
        row["expected_count"] += 1
        row["expected_amount"] += exp.amount
        additions = found.get(key, [])
        report.additions_read += len(additions)
        if not additions:
            mismatch(exp, "missing", f"no addition with this marker on agreement {exp.agreement_id}", [])
            continue
        holds = sum(((a.quantity or 0) * (a.unitPrice or 0) for a in additions), Decimal(0))
        row["found_count"] += len(additions)
        if len(additions) > 1:
            row["found_amount"] += holds
            mismatch(exp, "duplicate", f"{len(additions)} additions: {', '.join(str(a.id) for a in additions)}", additions)
            continue
        [addition] = additions
        if exp.reference is not None:
            held = values_in_connectwise(addition)
            fields = changed_fields(exp.reference, held)
        else:
            held = None
            fields = ["amount"] if abs(holds - exp.reference_amount) > Decimal("0.005") else []
        if not fields:
            row["found_amount"] += exp.amount  # ConnectWise holds what cw-tui left: the month's posting stands
            continue
        row["found_amount"] += holds  # a difference: what ConnectWise really holds
        if exp.reference is not None:
            detail = "; ".join(f"{FIELD_NAMES[f]}: cw-tui posted {_shown(getattr(exp.reference, f))}, ConnectWise holds "
                               f"{_shown(getattr(held, f)) if held is not None else '?'}" for f in fields)
            names = [FIELD_NAMES[f] for f in fields]
        else:
            detail = f"amount: cw-tui posted {exp.reference_amount:.2f}, ConnectWise holds {holds:.2f}"
            names = ["amount"]
        mismatch(exp, "changed", f"addition {addition.id}: {detail}", additions, names)
    for key, additions in sorted(found.items()):
        if key in expected or key in known:
            continue
        for a in additions:
            report.additions_read += 1
            report.mismatches.append(Mismatch("foreign", key, "", "",
                                              f"addition {a.id} on agreement {a.agreementId} has a cw-tui marker that "
                                              "matches no journal entry, synced line or subscription",
                                              agreement_id=a.agreementId, addition_ids=[a.id]))
    report.not_posted = journal.lines_not_posted(store, period)
    for line in report.not_posted:
        row = tally(line.customer, line.currency)
        row["not_posted_lines"] += 1
        row["not_posted_amount"] += line.amount
    return report


def totals_by_currency(per_customer: dict[tuple[str, str], dict[str, Any]]) -> dict[str, dict[str, Decimal]]:
    """Reconciliation totals per currency: amounts of different currencies are never added."""
    result: dict[str, dict[str, Decimal]] = {}
    for (_, currency), row in sorted(per_customer.items()):
        total = result.setdefault(currency, {"invoiced": Decimal(0), "expected": Decimal(0), "found": Decimal(0),
                                             "not_posted": Decimal(0)})
        total["invoiced"] += row.get("invoiced_amount", Decimal(0))
        total["expected"] += row["expected_amount"]
        total["found"] += row["found_amount"]
        total["not_posted"] += row.get("not_posted_amount", Decimal(0))
    return result
