"""`sync` and `reconcile`: the CLI's way into the sync core (cw_tui.sync)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from cw_tui.rules.periods import resolve_period
from cw_tui.services import settings, system_log
from cw_tui.services.connectwise import ConnectWiseClient
from cw_tui.store import (
    now_utc,
)

if TYPE_CHECKING:
    pass

from cw_tui.cli import render
from cw_tui.cli.common import (
    EXIT_OK,
    EXIT_PARTIAL,
    UsageError,
    _print_json,
    _run,
    _store,
)
from cw_tui.cli.plan_output import _plan_json, _print_plan, _print_totals


def cmd_sync(args: argparse.Namespace) -> int:
    from cw_tui import sync as sync_engine

    with _store(args) as store:
        config = settings.load_configuration(store)
        if config.agreement_type is None:
            raise UsageError("choose an Agreement Type first: `cw-tui configure --agreement-type NAME`")
        if args.scheduled:
            if not config.daily_sync:
                if not args.json:
                    print("Automated daily sync is off; nothing to do.")
                else:
                    _print_json({"scheduled": True, "enabled": False})
                return EXIT_OK
            periods = [args.period] if args.period else sync_engine.periods_to_sync(store)
        else:
            periods = [resolve_period(args.period or "previous", now_utc().date())]
        if args.dry_run:
            async def plans(client: ConnectWiseClient) -> list:
                return [await sync_engine.prepare_plan(store, client, period) for period in periods]

            built = _run(plans)
            if args.json:
                _print_json(_plan_json(built[0]) if len(built) == 1 else [_plan_json(p) for p in built])
                return EXIT_OK
            for plan in built:
                _print_plan(plan)
            return EXIT_OK
        if args.expect_plan and len(periods) != 1:
            raise UsageError("--expect-plan goes with one period: pass --period YYYY-MM")

        results = []
        for period in periods:
            try:
                with render.progress(f"Posting {period}", enabled=not args.json) as show:
                    results.append(_run(lambda client, p=period, show=show: sync_engine.run_sync(
                        store, client, p, progress=show, expect_plan=args.expect_plan,
                        trigger="scheduled" if args.scheduled else "cli")))
            except sync_engine.PlanChanged as error:
                if error.plan is not None and not args.json:
                    _print_plan(error.plan)
                raise UsageError(str(error)) from None
    if args.json:
        _print_json(results[0].as_json() if len(results) == 1 else [r.as_json() for r in results])
    else:
        for r in results:
            print(f"{r.period}: {r.created} created, {r.updated} updated, {r.cancelled} cancelled, {r.unchanged} unchanged, "
                  f"{r.adopted} already in ConnectWise, {r.agreements_created} agreements created; {r.synced_lines} lines "
                  f"synced, {r.skipped} skipped, {r.errors} errors ({r.api_calls} API calls, {r.duration_s:.1f} s)")
            _print_totals(sync_engine.totals_json(r.totals))
        if any(r.errors for r in results):
            print("Some lines failed: `cw-tui logs --level error` says why. The next sync retries them.")
    return EXIT_PARTIAL if any(r.errors for r in results) else EXIT_OK


def cmd_reconcile(args: argparse.Namespace) -> int:
    from cw_tui import sync as sync_engine

    period = resolve_period(args.period, now_utc().date())
    with _store(args) as store:
        with render.progress(f"Reading {period}'s additions from ConnectWise", enabled=not args.json):
            report = _run(lambda client: sync_engine.reconcile(store, client, period))
        system_log.write(store, system_log.Level.WARNING if report.mismatches else system_log.Level.INFO,
                         system_log.Category.SYNC, f"Reconciled {period}: {len(report.mismatches)} mismatches",
                         f"{report.additions_read} additions read; "
                         + "; ".join(f"{m.reason}: {m.marker}" for m in report.mismatches[:50]))
    if args.json:
        _print_json(report.as_json())
        return EXIT_PARTIAL if report.mismatches else EXIT_OK
    print(f"Reconciliation of {period}: {report.additions_read} cw-tui additions read from ConnectWise.")
    if report.mismatches:
        render.table([("Reason", "left"), ("Marker", "left"), ("Customer", "left"), ("Cur", "left"), ("Detail", "left")],
                     [(m.reason, m.marker, m.customer, m.currency, m.detail) for m in report.mismatches])
    rows = report.customers_json()
    print(f"{len(rows)} customer/currency groups; {len(report.mismatches)} mismatches.")
    for currency, total in sync_engine.totals_by_currency(report.per_customer).items():
        print(f"  {currency}: expected {total['expected']:,.2f}, found {total['found']:,.2f} "
              f"(invoiced {total['invoiced']:,.2f}, not posted {total['not_posted']:,.2f})")
    groups = report.not_posted_by_reason()
    if groups:
        by_reason: dict[str, list[int]] = {}
        for g in groups:
            by_reason.setdefault(g["reason"], [0])[0] += g["lines"]
        print("Lines not posted: " + ", ".join(f"{n[0]:,} {reason}" for reason, n in sorted(by_reason.items())))
    return EXIT_PARTIAL if report.mismatches else EXIT_OK
