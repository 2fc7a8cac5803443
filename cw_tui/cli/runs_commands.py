"""`runs` and `runs show`: run history and every action of a run, from the journal (SPEC §15)."""

from __future__ import annotations

import argparse
import csv
import sys
from decimal import Decimal
from typing import Any

from cw_tui.cli import render
from cw_tui.cli.common import EXIT_OK, UsageError, _print_json, _store
from cw_tui.rules.periods import resolve_period
from cw_tui.rules.safe_text import safe_text
from cw_tui.store import journal, now_utc
from cw_tui.store.journal_reads import undo_text
from cw_tui.sync.claims import run_alive


def _alive(owner: str | None, _since: Any) -> bool:
    return run_alive(owner)


def _local(moment: Any) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment is not None else ""


def _totals(totals: dict[str, Decimal]) -> str:
    return ", ".join(f"{currency} {amount:,.2f}" for currency, amount in sorted(totals.items()))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _kind(run: journal.RunSummary) -> str:
    return f"undo of #{run.undoes_run_id}" if run.kind == "undo" else run.kind


def _did(run: journal.RunSummary) -> str:
    """A sync's totals posted; an undo's tallies in words."""
    return undo_text(run.counts) if run.kind == "undo" else _totals(run.totals)


def _state(run: journal.RunSummary) -> str:
    if run.undone_text:
        return run.undone_text
    if run.state == "interrupted" and run.resolved_run_id:
        return f"interrupted (resolved by run {run.resolved_run_id})"
    if run.state == "finished" and run.errors:
        return f"finished, {run.errors} errors"
    return run.state


def cmd_runs(args: argparse.Namespace) -> int:
    period = None
    if args.period:
        try:
            period = resolve_period(args.period, now_utc().date())
        except ValueError as error:
            raise UsageError(f"--period: {error}; use current, previous or YYYY-MM") from None
    with _store(args) as store:
        runs = journal.list_runs(store, period, alive=_alive)
    if args.json:
        _print_json([r.as_json() for r in runs])
        return EXIT_OK
    if not runs:
        print(f"No sync runs{' of ' + period if period else ''} yet.")
        return EXIT_OK

    def tally(run: journal.RunSummary, value: int) -> int | str:
        return "" if run.kind == "undo" else value

    render.table(
        [("Run", "right"), ("Kind", "left"), ("Period", "left"), ("State", "left"), ("Started", "left"), ("Who", "left"),
         ("Trigger", "left"), ("Created", "right"), ("Updated", "right"), ("Cancelled", "right"), ("Adopted", "right"),
         ("Errors", "right"), ("Totals", "left"), ("API calls", "right"), ("Took", "right"), ("Plan", "left")],
        [(r.id, _kind(r), r.period or "", _state(r), _local(r.started_at), r.who, r.trigger, tally(r, r.created),
          tally(r, r.updated), tally(r, r.cancelled), tally(r, r.adopted), r.errors, _did(r), r.api_calls,
          _duration(r.duration_s), r.fingerprint) for r in runs],
    )
    print(f"{len(runs)} runs. `cw-tui runs show RUN` lists every action of a run.")
    return EXIT_OK


CSV_COLUMNS = ("id", "run_id", "period", "action", "outcome", "customer", "currency", "amount", "marker", "agreement_id",
               "addition_id", "subscription_id", "contract_id", "line_ids", "sent", "before", "after", "error_status",
               "error_code", "error_message", "written_at", "finished_at", "resolved_at", "resolved_run_id", "resolution",
               "who")


def _csv_cell(value: Any) -> str:
    import json

    from cw_tui.services.export import csv_safe

    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return csv_safe(json.dumps(value, sort_keys=True))
    if isinstance(value, tuple):
        return csv_safe(" ".join(value))
    return csv_safe(str(value))


def _what(action: journal.JournalAction) -> str:
    if action.action == "new_agreement":
        return f"agreement for contract {action.contract_id}"
    lines = action.line_ids[0] if len(action.line_ids) == 1 else f"{len(action.line_ids)} lines" if action.line_ids else ""
    return " ".join(x for x in (action.marker or "", f"({lines})" if lines else "") if x)


def _changed(action: journal.JournalAction) -> str:
    """update / cancel: `quantity 8 -> 9`, from the values held before and those sent."""
    if not action.before or not action.after:
        return ""
    parts = [f"{name} {action.before.get(name)} -> {action.after.get(name)}"
             for name in ("product_id", "quantity", "unit_price", "unit_cost", "effective_date", "cancelled_date")
             if action.before.get(name) != action.after.get(name)]
    return ", ".join(parts)


def cmd_runs_show(args: argparse.Namespace) -> int:
    with _store(args) as store:
        detail = journal.run_detail(store, args.run, alive=_alive)
    if detail is None:
        raise UsageError(f"there is no run {args.run}: `cw-tui runs` lists them")
    if args.json:
        _print_json(detail.as_json())
        return EXIT_OK
    if args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for action in [*detail.actions, *detail.resolved]:
            writer.writerow([_csv_cell(getattr(action, column)) for column in CSV_COLUMNS])
        return EXIT_OK
    run = detail.run
    if run.kind == "undo":
        print(f"Run {run.id}, an undo of run {run.undoes_run_id} ({run.period or 'no period'}): {_state(run)}; started "
              f"{_local(run.started_at)} by {safe_text(run.who)} ({run.trigger or 'unknown'}), plan {run.fingerprint or '-'}")
        print(f"  {undo_text(run.counts)}; {run.api_calls} API calls, {_duration(run.duration_s)}")
    else:
        print(f"Run {run.id} of {run.period or ''}: {_state(run)}; started {_local(run.started_at)} by "
              f"{safe_text(run.who)} ({run.trigger or 'unknown'}), plan {run.fingerprint or '-'}")
        print(f"  {run.created} created, {run.updated} updated, {run.cancelled} cancelled, {run.adopted} adopted, "
              f"{run.unchanged} unchanged, {run.agreements_created} agreements created, {run.synced_lines} lines synced, "
              f"{run.skipped} skipped, {run.errors} errors; {run.api_calls} API calls, {_duration(run.duration_s)}")
    if run.totals:
        print(f"  posted: {_totals(run.totals)}")
    if run.note:
        print(f"  note: {safe_text(run.note)}")
    rows = [(a.id, a.action, a.outcome, a.customer, a.currency, f"{a.amount:,.2f}" if a.amount is not None else "",
             _what(a), a.agreement_id or "", a.addition_id or "", _changed(a),
             " ".join(x for x in (f"HTTP {a.error_status}" if a.error_status else "", a.error_message or "",
                                  a.resolution or "") if x))
            for a in detail.actions]
    if rows:
        print()
        render.table([("#", "right"), ("Action", "left"), ("Outcome", "left"), ("Customer", "left"), ("Cur", "left"),
                      ("Amount", "right"), ("What", "left"), ("Agreement", "right"), ("Addition", "right"),
                      ("Changed", "left"), ("Note", "left")], rows)
    print(f"{len(detail.actions)} actions" + (f"; {len(detail.resolved)} earlier outcomes resolved: "
                                             + ", ".join(f"#{a.id} {a.outcome}" for a in detail.resolved)
                                             if detail.resolved else "") + ".")
    return EXIT_OK
