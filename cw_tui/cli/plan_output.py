"""How a sync plan and a run's totals are printed: text for a person, JSON exact."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from cw_tui.cli import render
from cw_tui.rules.safe_text import safe_text

if TYPE_CHECKING:
    pass



def _plan_json(plan) -> dict[str, Any]:
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
                     "amount": str(c.values.amount), "what": c.values.description} for c in plan.creates],
        "updates": [{"marker": u.marker, "lines": list(u.line_ids), "addition_id": u.addition_id, "customer": u.customer,
                     "currency": u.currency, "changes": sorted(u.changes), "amount": str(u.values.amount),
                     "adopted": u.adopted, "what": u.values.description, "change": u.change_text(),
                     "text_only": u.text_only} for u in plan.updates],
        "cancels": [cancel(c) for c in plan.cancels],
        "cancels_when_closed": [cancel(c) for c in plan.deferred_cancels],
        "already_in_connectwise": [{"marker": a.marker, "lines": list(a.line_ids), "addition_id": a.addition_id,
                                    "agreement": a.agreement_id, "customer": a.customer, "currency": a.currency}
                                   for a in plan.adoptions],
        "new_agreements": [{"contract": a.contract_id, "company_id": a.company_id, "name": a.name} for a in plan.new_agreements],
        "unchanged": len(plan.unchanged),
        "skipped": len(plan.skips),
        "skips": [{"line": s.line_id, "reason": s.reason, "customer": s.customer, "currency": s.currency,
                   "amount": str(s.amount), "what": s.what} for s in plan.skips],
        "skipped_by_reason": [{"reason": reason, "lines": count, "amounts": {c: str(a) for c, a in amounts.items()}}
                              for reason, count, amounts in plan.skipped_by_reason()],
        "text_only_updates": plan.text_only_updates,
        "totals": totals_json(plan.totals()),
    }


def _print_plan(plan) -> None:
    from cw_tui.sync import totals_json

    print(f"Plan for {plan.period} (nothing is sent):")
    if plan.open:
        print(f"  {plan.period} is OPEN: {plan.state.reason()}.")
        print(f"  {len(plan.deferred_cancels)} cancellations wait until the month closes; none is sent now.")
    if plan.new_lines_skipped:
        print(f"  {plan.new_lines_skipped:,} lines of invoices in status New were not loaded (they are posted once Verified).")
    for agreement in plan.new_agreements:
        print(f"  new agreement   {safe_text(agreement.name)} (company #{agreement.company_id})")
    text_only = f" ({plan.text_only_updates} text only)" if plan.text_only_updates else ""
    print(f"  {len(plan.creates)} additions to create, {len(plan.updates)} to update{text_only}, {len(plan.cancels)} to cancel, "
          f"{len(plan.unchanged)} unchanged; {len(plan.skips)} lines skipped")
    if plan.already_in_connectwise:
        print(f"  already in ConnectWise: {plan.already_in_connectwise} (adopted: their lines become Synced, "
              "nothing is posted again)")
    for reason, count, amounts in plan.skipped_by_reason():
        money = ", ".join(f"{c} {a:,.2f}" for c, a in amounts.items())
        print(f"    {count:>6} skipped: {safe_text(reason)} ({money})")
    _print_totals(totals_json(plan.totals()))
    _print_plan_lists(plan)
    print(f"Plan fingerprint: {plan.fingerprint}  (post exactly this plan: cw-tui sync --period {plan.period} "
          f"--expect-plan {plan.fingerprint})")


PLAN_LINES_SHOWN = 500  # per list in the text output; --json lists everything


def _print_plan_lists(plan) -> None:
    """The lines behind each total, and the skipped lines with their reason and amount."""
    from cw_tui.rules.sync_plan import number_text

    items = plan.items()
    if items:
        print("\nBy customer (what each action sends):")
        shown = None
        for item in items[:PLAN_LINES_SHOWN]:
            if (item.customer, item.currency) != shown:
                shown = (item.customer, item.currency)
                print(f"  {safe_text(item.customer)} ({item.currency})")
            lines = item.line_ids[0] if len(item.line_ids) == 1 else f"{len(item.line_ids)} lines" if item.line_ids else ""
            money = (f"{number_text(item.quantity)} x {number_text(item.unit_price, money=True)} = {item.amount:,.2f}"
                     if item.amount is not None else "")
            detail = "; ".join(x for x in (safe_text(lines), money, safe_text(item.change), safe_text(item.agreement)) if x)
            print(f"    {item.action:<12} {safe_text(item.what)}: {detail}")
        if len(items) > PLAN_LINES_SHOWN:
            print(f"  ... and {len(items) - PLAN_LINES_SHOWN} more (`--json` lists them all)")
    if plan.skips:
        print("\nSkipped lines:")
        for skip in plan.skips[:PLAN_LINES_SHOWN]:
            print(f"  {safe_text(skip.line_id)}  {safe_text(skip.customer)}  {skip.currency} {skip.amount:,.2f}: "
                  f"{safe_text(skip.reason)}")
        if len(plan.skips) > PLAN_LINES_SHOWN:
            print(f"  ... and {len(plan.skips) - PLAN_LINES_SHOWN} more (`--json` lists them all)")
    if plan.new_lines_skipped:
        print(f"  {plan.new_lines_skipped:,} lines: invoice is New (not loaded; posted once Verified)")


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
