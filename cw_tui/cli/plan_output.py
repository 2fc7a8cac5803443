"""How a sync plan and a run's totals are printed: text for a person, JSON exact."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from cw_tui.cli import render
from cw_tui.rules.safe_text import safe_text

if TYPE_CHECKING:
    pass



def _plan_json(plan) -> dict[str, Any]:  # noqa: ANN001 - a sync plan
    from cw_tui.sync import totals_json

    def target(agreement: Any) -> Any:
        return agreement if isinstance(agreement, int) else f"new: {agreement.name}"

    def cancel(c: Any) -> dict[str, Any]:
        return {"marker": c.marker, "addition_id": c.addition_id, "agreement": c.agreement_id,
                "cancelled_date": c.cancelled_date.isoformat(), "customer": c.customer, "currency": c.currency}

    state = plan.state
    return {
        "period": plan.period,
        "fingerprint": plan.fingerprint,
        "open": plan.open,
        "open_reason": state.reason() if state else "",
        "new_lines_skipped": plan.new_lines_skipped,
        "creates": [{"marker": c.marker, "lines": list(c.line_ids), "agreement": target(c.agreement), "customer": c.customer,
                     "currency": c.currency, "quantity": str(c.values.quantity), "unit_price": str(c.values.unit_price),
                     "amount": str(c.values.amount)} for c in plan.creates],
        "updates": [{"marker": u.marker, "lines": list(u.line_ids), "addition_id": u.addition_id, "customer": u.customer,
                     "currency": u.currency, "changes": sorted(u.changes), "amount": str(u.values.amount),
                     "adopted": u.adopted} for u in plan.updates],
        "cancels": [cancel(c) for c in plan.cancels],
        "cancels_when_closed": [cancel(c) for c in plan.deferred_cancels],
        "already_in_connectwise": [{"marker": a.marker, "lines": list(a.line_ids), "addition_id": a.addition_id,
                                    "agreement": a.agreement_id, "customer": a.customer, "currency": a.currency}
                                   for a in plan.adoptions],
        "new_agreements": [{"contract": a.contract_id, "company_id": a.company_id, "name": a.name} for a in plan.new_agreements],
        "unchanged": len(plan.unchanged),
        "skipped": len(plan.skips),
        "skips": [{"line": s.line_id, "reason": s.reason} for s in plan.skips],
        "totals": totals_json(plan.totals()),
    }


def _print_plan(plan) -> None:  # noqa: ANN001 - a sync plan
    from cw_tui.sync import totals_json

    print(f"Plan for {plan.period} (nothing is sent):")
    if plan.open:
        print(f"  {plan.period} is OPEN: {plan.state.reason()}.")
        print(f"  {len(plan.deferred_cancels)} cancellations wait until the month closes; none is sent now.")
    if plan.new_lines_skipped:
        print(f"  {plan.new_lines_skipped:,} lines of invoices in status New were not loaded (they are posted once Verified).")
    for agreement in plan.new_agreements:
        print(f"  new agreement   {safe_text(agreement.name)} (company #{agreement.company_id})")
    print(f"  {len(plan.creates)} additions to create, {len(plan.updates)} to update, {len(plan.cancels)} to cancel, "
          f"{len(plan.unchanged)} unchanged; {len(plan.skips)} lines skipped (not mapped, excluded or a wrong agreement)")
    if plan.already_in_connectwise:
        print(f"  already in ConnectWise: {plan.already_in_connectwise} (adopted: their lines become Synced, "
              "nothing is posted again)")
    reasons: dict[str, int] = {}
    for skip in plan.skips:
        reasons[skip.reason] = reasons.get(skip.reason, 0) + 1
    for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1])[:5]:
        print(f"    {count:>6} skipped: {safe_text(reason)}")
    _print_totals(totals_json(plan.totals()))
    print(f"Plan fingerprint: {plan.fingerprint}  (post exactly this plan: cw-tui sync --period {plan.period} "
          f"--expect-plan {plan.fingerprint})")


def _print_totals(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    print()
    render.table([("Customer", "left"), ("Currency", "left"), ("Creates", "right"), ("Updates", "right"),
                  ("Cancels", "right"), ("Lines", "right"), ("Amount", "right")],
                 [(row["customer"], row["currency"], row["creates"], row["updates"], row["cancels"], row["lines"],
                   f"{Decimal(row['amount']):,.2f}") for row in rows])
    by_currency: dict[str, Decimal] = {}
    for row in rows:
        by_currency[row["currency"]] = by_currency.get(row["currency"], Decimal(0)) + Decimal(row["amount"])
    print("Total: " + ", ".join(f"{currency} {amount:,.2f}" for currency, amount in sorted(by_currency.items())))
