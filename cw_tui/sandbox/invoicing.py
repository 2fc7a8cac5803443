"""Agreement invoicing in the sandbox (API-NOTES §2.7a): an agreement can be invoiced through
a month, which writes one `Invoice` (type Agreement) a month to `/finance/invoices` and moves
the agreement's `nextInvoiceDate`; an Addition in a period already invoiced cannot be added,
changed or deleted.

The refusal for adding is ConnectWise's own message (reported by peers, §2.7a). The rules
for changing and deleting are not confirmed publicly; the sandbox takes the strict reading
and refuses both (`Faults.refuse_invoiced_changes`), except ending an Addition with a
`cancelledDate` after the invoiced months, which changes no invoiced period (what peers do
instead of deleting). Pure functions over the state: the sandbox stores what they return."""

from __future__ import annotations

import calendar
import random
import re
from datetime import date
from decimal import Decimal
from typing import Any

from cw_tui.sandbox.data import SandboxState

ADD_REFUSED = ("Since this period has already been invoiced there will not be an invoice generated for additional "
               "products for this period. Please prorate the agreement or update the start date to on or after the "
               "Next Invoice Date.")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def parse_month(text: str) -> tuple[int, int]:
    match = _MONTH.match(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"not a month (YYYY-MM): {text!r}")
    return int(match.group(1)), int(match.group(2))


def _months(first: tuple[int, int], last: tuple[int, int]) -> list[tuple[int, int]]:
    months, (year, month) = [], first
    while (year, month) <= last:
        months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _next(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def month_of(datetime_text: str | None) -> tuple[int, int] | None:
    if not isinstance(datetime_text, str) or len(datetime_text) < 7:
        return None
    try:
        return parse_month(datetime_text[:7])
    except ValueError:
        return None


def invoiced_through(state: SandboxState, agreement_id: int) -> tuple[int, int] | None:
    row = state.invoiced.get(agreement_id)
    return parse_month(row["through"]) if row else None


def _active_in(addition: dict, year: int, month: int) -> bool:
    first, last = date(year, month, 1).isoformat(), date(year, month, calendar.monthrange(year, month)[1]).isoformat()
    starts = str(addition.get("effectiveDate") or "")[:10]
    ends = str(addition.get("cancelledDate") or "")[:10]
    return bool(starts) and starts <= last and (not ends or ends >= first)


def _amount(value: Decimal) -> float | int:
    return int(value) if value == value.to_integral_value() else float(value)


def invoice(state: SandboxState, agreement: dict, year: int, month: int, base_amount: Decimal = Decimal(0)) -> dict:
    """The Invoice an agreement's billing run writes for a month (API-NOTES §2.7a's reading:
    type Agreement, the agreement set, applyToType Agreement, dated the first of the month)."""
    products = sum((Decimal(str(a.get("extPrice") or 0)) for a in state.additions.values()
                    if a["agreementId"] == agreement["id"] and a.get("billCustomer") == "Billable"
                    and _active_in(a, year, month)), Decimal(0))
    invoice_id = state.new_id("invoice")
    due_year, due_month = _next(year, month)
    total = products + base_amount
    return {
        "id": invoice_id,
        "invoiceNumber": f"{invoice_id}",
        "type": "Agreement",
        "status": {"id": 1, "name": "Sent", "isClosed": False},
        "company": dict(agreement["company"]),
        "billToCompany": dict(agreement["company"]),
        "applyToType": "Agreement",
        "applyToId": agreement["id"],
        "agreement": {"id": agreement["id"], "name": agreement["name"]},
        "date": f"{year:04d}-{month:02d}-01T00:00:00Z",
        "dueDate": f"{due_year:04d}-{due_month:02d}-01T00:00:00Z",
        "agreementAmount": _amount(base_amount),
        "productTotal": _amount(products),
        "subtotal": _amount(total),
        "salesTax": 0,
        "total": _amount(total),
        "payments": 0,
        "credits": 0,
        "balance": _amount(total),
        "_info": {"lastUpdated": f"{year:04d}-{month:02d}-01T00:00:00Z", "updatedBy": "sandbox"},
    }


def invoice_through(state: SandboxState, through: str, agreement_ids: list[int] | None = None,
                    amounts: random.Random | None = None) -> list[tuple[str, dict]]:
    """Invoice each agreement (every active one by default) for each month not yet invoiced,
    from its start, through `through`. Returns the rows to store: ("invoices", invoice),
    ("invoiced", {"id": agreement id, "through": "YYYY-MM"}), ("agreements", agreement)."""
    last = parse_month(through)
    rows: list[tuple[str, dict]] = []
    chosen = [state.agreements[i] for i in agreement_ids] if agreement_ids else [
        a for a in state.agreements.values() if a.get("agreementStatus") == "Active"]
    for agreement in chosen:
        done = invoiced_through(state, agreement["id"])
        first = _next(*done) if done else (month_of(agreement.get("startDate")) or last)
        months = _months(first, last)
        if not months:
            continue
        base = Decimal(amounts.randrange(5, 200) * 10) if amounts else Decimal(0)
        for year, month in months:
            made = invoice(state, agreement, year, month, base)
            state.invoices[made["id"]] = made
            rows.append(("invoices", made))
        next_year, next_month = _next(*last)
        marked = {"id": agreement["id"], "through": f"{last[0]:04d}-{last[1]:02d}"}
        state.invoiced[agreement["id"]] = marked
        updated = {**agreement, "nextInvoiceDate": f"{next_year:04d}-{next_month:02d}-01T00:00:00Z"}
        state.agreements[agreement["id"]] = updated
        rows += [("invoiced", marked), ("agreements", updated)]
    return rows


def _shown(month: tuple[int, int]) -> str:
    return f"{calendar.month_name[month[1]]} {month[0]}"


def refusal(state: SandboxState, agreement_id: int, action: str, old: dict | None,
            new: dict | None) -> tuple[str, str, str] | None:
    """Why this change to an Addition touches an invoiced period, as one ConnectWise-shaped
    error (code, field, message), or None. `action` is add, change or delete."""
    through = invoiced_through(state, agreement_id)
    if through is None:
        return None
    if action == "add":
        start = month_of((new or {}).get("effectiveDate"))
        return ("InvalidObject", "effectiveDate", ADD_REFUSED) if start is not None and start <= through else None
    old_start = month_of((old or {}).get("effectiveDate"))
    new_start = month_of((new or {}).get("effectiveDate"))
    if action == "change" and new_start is not None and new_start <= through and new_start != old_start:
        return ("InvalidObject", "effectiveDate", ADD_REFUSED)
    if old_start is None or old_start > through:
        return None
    if action == "change" and old is not None and new is not None:
        changed = {k for k in set(old) | set(new) if k != "_info" and old.get(k) != new.get(k)}
        ends = month_of(new.get("cancelledDate"))
        if changed <= {"cancelledDate"} and ends is not None and ends > through:
            return None  # ended after the invoiced months: no invoiced period changes
        field = min(changed - {"cancelledDate"} or changed or {"effectiveDate"})
        return ("InvalidObject", field,
                (f"This addition is in a period that has already been invoiced (through {_shown(through)}) and cannot "
                 f"be changed. End it with a cancelled date after {_shown(through)} and add a new addition from the "
                 "Next Invoice Date instead."))
    return ("InvalidObject", "effectiveDate",
            (f"This addition is in a period that has already been invoiced (through {_shown(through)}) and cannot be "
             f"deleted. End it with a cancelled date after {_shown(through)} instead."))


def seed_history(state: SandboxState, seed: int, through: str = "2024-12") -> None:
    """Seeded agreements have some history: every active one invoiced monthly from its start
    through `through` (before any month the demo data or the tests sync)."""
    invoice_through(state, through, amounts=random.Random(f"cw-tui-sandbox-invoices-{seed}"))


def describe(rows: list[tuple[str, dict]]) -> dict[str, Any]:
    return {"invoices": sum(1 for table, _ in rows if table == "invoices"),
            "agreements": sum(1 for table, _ in rows if table == "invoiced")}
