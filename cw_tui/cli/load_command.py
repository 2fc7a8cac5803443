"""`cw-tui load-invoices` (SPEC §11), on its own: the command imports only what a load uses
(no HTTP client, no ConnectWise models, no Textual), which is most of its start-up time."""

from __future__ import annotations

import argparse
import sys

from cw_tui.cli import render
from cw_tui.cli.common import EXIT_OK, EXIT_USAGE, UsageError, _platform_dir, _print_json, _store
from cw_tui.platform.files import PlatformDataError
from cw_tui.platform.importer import RemovalsNeedConsent, load_invoices
from cw_tui.rules.periods import resolve_period
from cw_tui.rules.safe_text import safe_text
from cw_tui.services import settings, system_log
from cw_tui.store import now_utc

SHOWN_REMOVALS = 20


def cmd_load_invoices(args: argparse.Namespace) -> int:
    today = now_utc().date()
    try:
        periods = [resolve_period(p, today) for p in (args.period or ["current"])]
    except ValueError as error:
        raise UsageError(f"--period: {error}; use current, previous or YYYY-MM") from None
    with _store(args) as store:
        folder = _platform_dir(store, args)
        config = settings.load_configuration(store)
        try:
            with render.progress(f"Loading invoice lines of {', '.join(periods)}", enabled=not args.json):
                report = load_invoices(store, folder, periods, config.rules, allow_removals=args.allow_removals)
        except PlatformDataError as error:
            system_log.write(store, system_log.Level.ERROR, system_log.Category.INVOICES,
                             f"Invoice load rejected: {error.total} problem(s) in {folder}", str(error))
            raise
        except RemovalsNeedConsent as need:
            _removals_need_consent(need, args)
            return EXIT_USAGE
        if args.json:
            _print_json({"periods": [vars(p) for p in report.periods], "organizations_added": report.organizations_added,
                         "offers_added": report.offers_added, "contracts_added": report.contracts_added})
            return EXIT_OK
        for p in report.periods:
            print(f"{p.period}: {p.lines} lines loaded ({p.summary()}; refreshed {p.refreshed}, kept {p.kept_synced} synced)")
            for line_id, changed in p.changed_lines.items():
                print(f"  changed {safe_text(line_id)}: {', '.join(changed)}")
            if p.changed > len(p.changed_lines):
                print(f"  ... and {p.changed - len(p.changed_lines)} more changed lines")
        print(f"New: {report.organizations_added} organizations, {report.offers_added} offers, {report.contracts_added} contracts.")
    return EXIT_OK


def _removals_need_consent(need: RemovalsNeedConsent, args: argparse.Namespace) -> None:
    """Say which lines a load would remove, and how to consent to exactly those."""
    if args.json:
        _print_json({"removals_need_consent": {"count": need.count, "line_ids": need.line_ids,
                                               "allow_removals": need.consent}})
    shown = [line_id for ids in need.line_ids.values() for line_id in ids][:SHOWN_REMOVALS]
    more = need.count - len(shown)
    periods = ", ".join(f"{period}: {len(ids)}" for period, ids in need.line_ids.items())
    lines = [
        f"cw-tui: nothing was loaded: the load would remove {need.count} unsynced line(s) that are no longer "
        f"in the Platform export ({periods}):",
        *(f"  {line_id}" for line_id in shown),
        *([f"  ... and {more} more (`--json` lists them all)"] if more > 0 else []),
    ]
    if args.allow_removals:
        lines.append(f"--allow-removals {args.allow_removals} was consent for other lines: the lines to remove have changed.")
    lines.append(f"To remove exactly these lines, run the same command with --allow-removals {need.consent}")
    print("\n".join(lines), file=sys.stderr)

