"""`undo RUN`: undo a sync run, with its plan first (SPEC §15; the core is cw_tui.sync.undo)."""

from __future__ import annotations

import argparse
from decimal import Decimal

from cw_tui.cli import render
from cw_tui.cli.common import EXIT_OK, EXIT_PARTIAL, UsageError, _print_json, _run, _store
from cw_tui.rules import undo_plan as rules
from cw_tui.rules.safe_text import safe_text

WHAT = {rules.DELETE: "delete", rules.RESTORE: "restore", rules.END: "end", rules.DELETE_AGREEMENT: "delete agreement",
        rules.RELEASE: "lines only", rules.KEEP: "keep", rules.REFUSED: "refused"}


def _amounts(amounts: dict[str, Decimal]) -> str:
    return ", ".join(f"{currency} {amount:,.2f}" for currency, amount in sorted(amounts.items())) or "nothing"


def print_plan(plan: rules.UndoPlan) -> None:
    counts = plan.counts()
    print(f"Undo plan of run {plan.run_id} ({plan.period or 'no period'}), fingerprint {plan.fingerprint}:")
    print(f"  {counts.get(rules.DELETE, 0)} Additions deleted ({_amounts(plan.amounts(rules.DELETE))}), "
          f"{counts.get(rules.RESTORE, 0)} restored to their values before, {counts.get(rules.END, 0)} ended, "
          f"{counts.get(rules.DELETE_AGREEMENT, 0)} agreements deleted")
    print(f"  {plan.lines:,} lines back to Not Synced; {counts.get(rules.REFUSED, 0)} refused, "
          f"{counts.get(rules.KEEP, 0)} kept" + (f"; {plan.already_undone} already undone" if plan.already_undone else ""))
    if plan.items:
        render.table([("What", "left"), ("Run did", "left"), ("Customer", "left"), ("Cur", "left"), ("Amount", "right"),
                      ("Addition", "right"), ("Agreement", "right"), ("Lines", "right"), ("Why", "left")],
                     [(WHAT[i.kind], i.action.replace("_", " "), i.customer, i.currency,
                       f"{i.amount:,.2f}" if i.amount else "", i.addition_id or "", i.agreement_id or "",
                       len(i.line_ids) or "", i.detail + (f" Instead: {i.alternative}" if i.alternative else ""))
                      for i in plan.items])
    if plan.empty and not plan.refused:
        print("Nothing to undo" + (": the run was undone already." if plan.already_undone else "."))


def cmd_undo(args: argparse.Namespace) -> int:
    from cw_tui.sync import PlanChanged
    from cw_tui.sync.undo import UndoRefused, prepare_undo, run_undo

    with _store(args) as store:
        try:
            if args.dry_run:
                plan = _run(lambda client: prepare_undo(store, client, args.run, end_invoiced=args.end_invoiced))
                if args.json:
                    _print_json(plan.as_json())
                else:
                    print_plan(plan)
                return EXIT_OK
            expect = args.expect_plan
            if expect is None:
                plan = _run(lambda client: prepare_undo(store, client, args.run, end_invoiced=args.end_invoiced))
                if plan.empty:
                    if args.json:
                        _print_json({"undoes_run_id": args.run, "nothing_to_undo": True, "plan": plan.as_json()})
                    else:
                        print_plan(plan)
                    return EXIT_OK
                expect = plan.fingerprint
            with render.progress(f"Undoing run {args.run}", enabled=not args.json) as show:
                result = _run(lambda client: run_undo(store, client, args.run, expect_plan=expect, progress=show,
                                                      end_invoiced=args.end_invoiced, trigger="cli"))
        except (UndoRefused, PlanChanged) as error:
            raise UsageError(str(error)) from None
    if args.json:
        _print_json(result.as_json())
    else:
        print(f"Undo of run {result.undoes_run_id} (undo run {result.run_id}): {result.deleted} deleted, "
              f"{result.restored} restored, {result.ended} ended, {result.agreements_deleted} agreements deleted, "
              f"{result.refused} refused, {result.errors} errors; {result.lines_not_synced:,} lines back to Not Synced "
              f"({result.api_calls} API calls, {result.duration_s:.1f} s)")
        for message in result.error_messages[:20]:
            print(f"  {safe_text(message)}")
        if result.refused:
            print(f"Refused items stay as they are: `cw-tui undo {result.undoes_run_id} --dry-run` lists them and why.")
    return EXIT_PARTIAL if result.errors or result.refused else EXIT_OK
