"""The `cw-tui` command (SPEC §11). Exit codes: 0 ok, 1 partial failure, 2 usage,
configuration or input error. Every subcommand is a thin layer over cw_tui.services."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cw_tui import __version__
from cw_tui.rules.charge_dates import EndRule, StartRule
from cw_tui.rules.periods import months_back, resolve_period
from cw_tui.rules.safe_text import safe_text
from cw_tui.rules.vocabulary import BillingCycle, ChargeType, parse_enum
from cw_tui.services import credentials as credential_store
from cw_tui.services import settings, system_log
from cw_tui.services.connectwise import ConnectWiseClient, ConnectWiseError
from cw_tui.services.connectwise.errors import (
    AuthenticationFailed,
    InvalidSettings,
    NotFound,
    PermissionDenied,
    Redirected,
    TLSFailure,
)
from cw_tui.services.connectwise_data import CacheShrinkRefused
from cw_tui.services.credentials import Credentials, CredentialsError
from cw_tui.services.sync_engine import SyncNotReady
from cw_tui.services.paths import default_database_path
from cw_tui.services.platform_files import PlatformDataError
from cw_tui.services.store import DATABASE_ERRORS, Store, StoreError, describe_error, now_utc, open_store

if TYPE_CHECKING:
    from cw_tui.services.platform_import import RemovalsNeedConsent

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A configuration or usage problem; exit 2 with this message."""


class ConnectionRefusedByConnectWise(UsageError):
    """`connect` failed: nothing was saved."""

    def __init__(self, check: Any) -> None:
        # a malformed field was refused before anything was sent: ConnectWise said nothing
        source = "" if check.kind == "settings" else "ConnectWise: "
        super().__init__(f"{source}{check.message}; nothing was saved")


# ---------------------------------------------------------------- helpers


def _database_path(args: argparse.Namespace) -> tuple[Path, bool]:
    """The database, and whether it is the default location (whose folder may be created)."""
    if getattr(args, "db", None):
        return Path(args.db).expanduser(), False
    return default_database_path(), not os.environ.get("CW_TUI_DB")


def _store(args: argparse.Namespace) -> Store:
    path, default = _database_path(args)
    return open_store(path, create_folder=default)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _parse_since(text: str) -> datetime:
    match = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        delta = {"m": timedelta(minutes=amount), "h": timedelta(hours=amount), "d": timedelta(days=amount), "w": timedelta(weeks=amount)}[unit]
        return now_utc() - delta
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--since: {text!r} is neither a duration like 7d, 12h, 30m nor a date YYYY-MM-DD") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _platform_dir(store: Store, args: argparse.Namespace) -> Path:
    if getattr(args, "platform_dir", None):
        return Path(args.platform_dir)
    config = settings.load_configuration(store)
    if not config.platform_dir:
        raise UsageError("no Platform export folder is configured: run `cw-tui configure --platform-dir DIR` (or pass --platform-dir)")
    return Path(config.platform_dir)


def _assignment(text: str, keys: type, values: type, option: str) -> tuple[Any, Any]:
    if "=" not in text:
        raise UsageError(f"{option}: expected NAME=RULE, got {text!r}")
    key_text, value_text = text.split("=", 1)
    try:
        key = parse_enum(keys, key_text)
    except ValueError as error:
        raise UsageError(f"{option}: {error}") from None
    if values is str:
        return key, value_text.strip()
    try:
        return key, values(value_text.strip().lower().replace(" ", "_").replace("-", "_"))
    except ValueError:
        allowed = ", ".join(v.value for v in values)
        raise UsageError(f"{option}: unknown rule {value_text!r} (expected one of: {allowed})") from None


def _client(**options: Any) -> ConnectWiseClient:
    creds = credential_store.current()
    if creds is None or not creds.complete():
        missing = ", ".join(creds.missing()) if creds else "all"
        raise UsageError(f"no ConnectWise credentials ({missing} missing): run `cw-tui connect` first")
    return ConnectWiseClient(creds, **options)


def _run(coroutine_factory: Callable[[ConnectWiseClient], Any], **options: Any) -> Any:
    async def main() -> Any:
        async with _client(**options) as client:
            return await coroutine_factory(client)

    return asyncio.run(main())


# ---------------------------------------------------------------- commands


def cmd_demo_data(args: argparse.Namespace) -> int:
    from cw_tui.services.demo_data import write_demo_data

    if args.organizations < 1 or args.months < 1 or args.months > 120:
        raise UsageError("--organizations must be at least 1 and --months between 1 and 120")
    summary = write_demo_data(
        args.dir, seed=args.seed, organizations=args.organizations, months=args.months, end_month=args.end_month,
    )
    print(
        f"Wrote a Platform export to {summary.folder}: {summary.organizations} organizations, "
        f"{summary.offers} offers, {summary.contracts} contracts, {summary.lines} invoice lines "
        f"({summary.periods[0]} to {summary.periods[-1]})."
    )
    return EXIT_OK


def cmd_configure(args: argparse.Namespace) -> int:
    with _store(args) as store:
        config = settings.load_configuration(store)
        changes = []
        if args.platform_dir is not None:
            folder = Path(args.platform_dir).expanduser().resolve()
            if not folder.is_dir():
                raise UsageError(f"--platform-dir: {folder} is not a folder")
            config.platform_dir = str(folder)
            changes.append(f"Platform folder = {folder}")
        for text in args.end_rule or []:
            charge_type, rule = _assignment(text, ChargeType, EndRule, "--end-rule")
            config.end_rules[charge_type] = rule
            changes.append(f"end rule {charge_type.value} = {rule.label}")
        for text in args.start_rule or []:
            cycle, rule = _assignment(text, BillingCycle, StartRule, "--start-rule")
            config.start_rules[cycle] = rule
            changes.append(f"start rule {cycle.value} = {rule.label}")
        for text in args.charge_type_name or []:
            charge_type, name = _assignment(text, ChargeType, str, "--charge-type-name")
            if not name:
                raise UsageError(f"--charge-type-name: the name of {charge_type.value} cannot be empty")
            config.charge_type_names[charge_type] = name
            changes.append(f"charge type name {charge_type.value} = {name}")
        if args.agreement_type is not None:
            chosen = _agreement_type(store, args.agreement_type)
            config.agreement_type = settings.AgreementTypeChoice(id=chosen.id, name=chosen.name)
            changes.append(f"agreement type = {chosen.name} (#{chosen.id})")
        if args.daily_sync is not None:
            config.daily_sync = args.daily_sync == "on"
            changes.append(f"daily sync {args.daily_sync}")
        if changes:
            try:
                config = config.validated()
            except settings.ConfigurationError as error:
                raise UsageError(str(error)) from None
            settings.save_configuration(store, config)
            system_log.write(store, system_log.Level.INFO, system_log.Category.CONFIGURATION, "Configuration saved", "; ".join(changes))
        if args.json:
            _print_json(config.to_json())
        else:
            for change in changes:
                print(f"set {safe_text(change)}")
            _print_configuration(config)
    return EXIT_OK


def _agreement_type(store: Store, name: str):  # noqa: ANN202 - an AgreementType row
    """The active agreement type called `name` (or with that ID), fresh from ConnectWise when
    credentials exist, else from the cache."""
    from cw_tui.services.store import AgreementType

    from cw_tui.services.connection import cache_agreement_types

    creds = credential_store.current()
    if creds is not None and creds.complete():
        cache_agreement_types(store, _run(lambda client: client.agreement_types()))
    active = list(AgreementType.select().where(AgreementType.inactive == False).order_by(AgreementType.name))  # noqa: E712
    if not active:
        raise UsageError("no agreement types known: run `cw-tui connect` (or `cw-tui sync-organizations`) first")
    wanted = name.strip().casefold()
    for t in active:
        if t.name.casefold() == wanted or str(t.id) == wanted:
            return t
    raise UsageError(f"--agreement-type: no active agreement type {name!r}; choose one of: "
                     + ", ".join(t.name for t in active))


def _print_configuration(config: settings.Configuration) -> None:
    print(f"Agreement type:   {safe_text(config.agreement_type.name) if config.agreement_type else '(not chosen)'}")
    print(f"Platform folder:  {safe_text(config.platform_dir) or '(not set)'}")
    print(f"Daily sync:       {'on' if config.daily_sync else 'off'}")
    print("Charge end date rules:")
    for charge_type in ChargeType:
        print(f"  {charge_type.value:<16} {config.rules.end_rule(charge_type).label}")
    print("Charge start date rules:")
    for cycle in BillingCycle:
        print(f"  {cycle.value:<16} {config.rules.start_rule(cycle).label}")
    print("Charge type names:")
    for charge_type in ChargeType:
        print(f"  {charge_type.value:<16} {safe_text(config.charge_type_name(charge_type))}")


SHOWN_REMOVALS = 20


def cmd_load_invoices(args: argparse.Namespace) -> int:
    from cw_tui.services.platform_import import RemovalsNeedConsent, load_invoices

    today = now_utc().date()
    try:
        periods = [resolve_period(p, today) for p in (args.period or ["current"])]
    except ValueError as error:
        raise UsageError(f"--period: {error}; use current, previous or YYYY-MM") from None
    with _store(args) as store:
        folder = _platform_dir(store, args)
        config = settings.load_configuration(store)
        try:
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


def cmd_load_products(args: argparse.Namespace) -> int:
    from cw_tui.services.platform_import import load_products

    if not 1 <= args.months <= 12:
        raise UsageError("--months must be between 1 and 12")
    since = months_back(now_utc().date(), args.months)
    with _store(args) as store:
        folder = _platform_dir(store, args)
        try:
            report = load_products(store, folder, since)
        except PlatformDataError as error:
            system_log.write(store, system_log.Level.ERROR, system_log.Category.PRODUCTS,
                             f"Product load rejected: {error.total} problem(s) in {folder}", str(error))
            raise
        if args.json:
            _print_json({"since": since.isoformat(), "offers": report.offers, "offers_added": report.offers_added})
        else:
            print(f"Loaded {report.offers} offers from invoice lines since {since.isoformat()} ({report.offers_added} new).")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from cw_tui.services.status import status

    with _store(args) as store:
        result = status(store)
    if args.json:
        _print_json(result)
        return EXIT_OK
    orgs, products = result["organizations"], result["products"]
    print(f"Organizations: {orgs['total']} ({orgs['mapped']} mapped, {orgs['unmapped']} unmapped, {orgs['excluded']} excluded)")
    print(f"Products:      {products['total']} ({products['mapped']} mapped, {products['unmapped']} unmapped)")
    print(f"Last sync to PSA: {result['last_sync_to_psa'] or 'never'}   Last organizations sync: {result['last_organizations_sync'] or 'never'}")
    daily = result["daily_sync"]
    print(f"Automated daily sync: {'on, next run ' + daily['next_run'] if daily['enabled'] else 'off'}")
    if result["periods"]:
        print(f"\n{'Period':<8} {'Lines':>7} {'Mapped':>7} {'Unmapped':>9} {'Excluded':>9} {'Not synced':>11} {'Synced':>7} {'Error':>6}")
        for p in result["periods"]:
            print(f"{p['period']:<8} {p['lines']:>7} {p['mapped']:>7} {p['unmapped']:>9} {p['excluded']:>9} {p['not_synced']:>11} {p['synced']:>7} {p['error']:>6}")
    else:
        print("\nNo invoice lines loaded yet: run `cw-tui load-invoices --period previous`.")
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    query = system_log.LogQuery(
        level=system_log.Level(args.level.upper()) if args.level else None,
        category=parse_enum(system_log.Category, args.category) if args.category else None,  # type: ignore[arg-type]
        text=args.search,
        since=_parse_since(args.since) if args.since else None,
    )
    with _store(args) as store:
        rows = system_log.entries(store, query, limit=args.limit)
        total = system_log.count(store, query)
    if args.json:
        _print_json([
            {"id": r.id, "timestamp": r.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ"), "level": r.level, "category": r.category,
             "summary": r.summary, "details": r.details}
            for r in rows
        ])
        return EXIT_OK
    for r in reversed(rows):
        local = r.timestamp.astimezone().strftime("%Y-%m-%d %H:%M")
        print(f"{local}  {r.level:<7} {r.category:<14} {safe_text(r.summary)}")
        if args.details and r.details:
            for line in safe_text(r.details, lines=True).splitlines():
                print(f"{'':>41}{line}")
    if total > len(rows):
        print(f"({len(rows)} newest of {total} entries shown; use --limit)")
    elif not rows:
        print("No log entries match.")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from cw_tui.services.export import ExportError, export_csv, export_name, grid_source
    from cw_tui.services.grid_query import GridState

    with _store(args) as store:
        try:
            source = grid_source(store, args.grid, args.period, now_utc().date())
        except ExportError as error:
            raise UsageError(str(error)) from None
        out = Path(args.out) if args.out else Path.cwd() / export_name(source, now_utc())
        try:
            count = export_csv(store, source, GridState(search=args.search or ""), out)
        except OSError as error:
            raise UsageError(f"--out: cannot write {out}: {error.strerror or error}; no file was written") from None
    print(f"Exported {count} {source.name} to {safe_text(out)}")
    return EXIT_OK


def _per_minute(text: str | None) -> int:
    """`--rate-limit 1000/min` (or `1000`): requests a minute; 0 is off."""
    if not text:
        return 0
    number = text.strip().lower().removesuffix("/min").strip()
    if not number.isdigit():
        raise UsageError(f"--rate-limit must be requests a minute, e.g. 1000/min, not {text!r}")
    return int(number)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from cw_tui.sandbox.app import Faults
    from cw_tui.sandbox.server import build_sandbox, serve

    for name in ("fail_rate", "throttle_rate", "drop_after_commit_rate", "stall_rate"):
        if not 0 <= getattr(args, name) <= 1:
            raise UsageError(f"--{name.replace('_', '-')} must be between 0 and 1")
    faults = Faults(latency_ms=args.latency_ms, fail_rate=args.fail_rate, throttle_rate=args.throttle_rate,
                    drop_after_commit_rate=args.drop_after_commit_rate, rate_limit_per_min=_per_minute(args.rate_limit),
                    deny=args.deny or [], stall_rate=args.stall_rate)
    if args.invoiced_through:
        from cw_tui.sandbox.invoicing import parse_month

        try:
            parse_month(args.invoiced_through)
        except ValueError:
            raise UsageError(f"--invoiced-through must be a month, YYYY-MM, not {args.invoiced_through!r}") from None
    sandbox = build_sandbox(args.seed, faults, Path(args.state) if args.state else None, args.invoiced_through)
    if args.codebase:
        sandbox.move_codebase(args.codebase)
    try:
        serve(sandbox, args.host, args.port)
    except OSError as error:
        raise UsageError(f"cannot serve on {args.host}:{args.port}: {error.strerror}") from None
    return EXIT_OK


def cmd_connect(args: argparse.Namespace) -> int:
    given = {
        "url": args.url, "company_id": args.company_id, "public_key": args.public_key,
        "private_key": args.private_key, "client_id": args.client_id,
    }
    creds = credential_store.from_environment(Credentials())
    creds = Credentials(**{k: (v if v is not None else getattr(creds, k)) for k, v in given.items()})
    creds.register_secrets()
    missing = creds.missing()
    if missing:
        raise UsageError(f"missing {', '.join(missing)}: pass the options or set CW_URL, CW_COMPANY_ID, "
                         "CW_PUBLIC_KEY, CW_PRIVATE_KEY and CW_CLIENT_ID")

    from cw_tui.services.connection import check_connection, record_check, save_credentials

    with _store(args) as store:
        check = asyncio.run(check_connection(creds))
        record_check(store, check, saved=check.ok)
        if not check.ok:
            raise ConnectionRefusedByConnectWise(check)
        path = save_credentials(store, creds)
    if args.json:
        _print_json({"ok": True, "version": check.version, "api_base": check.api_base, "saved_to": str(path)})
    else:
        print(f"{safe_text(check.message)} at {safe_text(check.api_base)}. Credentials saved to {safe_text(path)} (mode 0600).")
    return EXIT_OK


def cmd_sync_organizations(args: argparse.Namespace) -> int:
    from cw_tui.services.connectwise_data import sync_organizations

    with _store(args) as store:
        try:
            result = _run(lambda client: sync_organizations(store, client, allow_shrink=args.allow_shrink))
        except ConnectWiseError as error:
            system_log.write(store, system_log.Level.ERROR, system_log.Category.ORGANIZATIONS,
                             "Organizations sync failed", error.details())
            raise
    if args.json:
        _print_json(vars(result))
    else:
        if result.organizations:
            print(f"{result.organizations} organizations on invoices of the last 3 months ({result.organizations_added} new).")
        print(f"Synced {result.companies} companies, {result.statuses} company statuses, {result.products} catalog "
              f"products, {result.agreement_types} agreement types and {result.agreements} agreements "
              f"({result.api_calls} API calls).")
    return EXIT_OK


def cmd_automap(args: argparse.Namespace) -> int:
    from cw_tui.services.connectwise_data import automap
    from cw_tui.services.store import Company

    with _store(args) as store:
        if Company.select().count() == 0:
            raise UsageError("no ConnectWise companies cached yet: run `cw-tui sync-organizations` first")
        result = automap(store, include=args.include, dry_run=args.dry_run)
    if args.json:
        _print_json({"dry_run": args.dry_run, "organizations": len(result.organizations), "offers": len(result.offers),
                     "included": result.included,
                     "organization_matches": [{"organization_id": o, "organization": n, "company_id": c, "company": cn}
                                              for o, n, c, cn in result.organizations],
                     "offer_matches": [{"offer_id": o, "offer": n, "product_id": p, "product": pn}
                                       for o, n, p, pn in result.offers]})
        return EXIT_OK
    verb = "Would map" if args.dry_run else "Mapped"
    for _, name, company_id, company in result.organizations:
        print(f"  organization  {safe_text(name)}  ->  {safe_text(company)} (#{company_id})")
    for _, name, product_id, product in result.offers:
        print(f"  offer         {safe_text(name)}  ->  {safe_text(product)} (#{product_id})")
    print(f"{verb} {len(result.organizations)} organizations and {len(result.offers)} offers"
          + (f"; {'would include' if args.dry_run else 'included'} {result.included} organizations in sync." if args.include else "."))
    return EXIT_OK


def _plan_json(plan) -> dict[str, Any]:  # noqa: ANN001 - a sync plan
    from cw_tui.services.sync_engine import totals_json

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


def _print_plan(plan) -> None:  # noqa: ANN001 - a sync plan
    from cw_tui.services.sync_engine import totals_json

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


def _print_plan_lists(plan) -> None:  # noqa: ANN001 - a sync plan
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
    print(f"\n{'Customer':<40} {'Cur':<4} {'Create':>6} {'Update':>6} {'Cancel':>6} {'Lines':>6} {'Amount':>14}")
    for row in rows:
        print(f"{safe_text(row['customer'])[:40]:<40} {row['currency']:<4} {row['creates']:>6} {row['updates']:>6} {row['cancels']:>6} "
              f"{row['lines']:>6} {Decimal(row['amount']):>14,.2f}")
    by_currency: dict[str, Decimal] = {}
    for row in rows:
        by_currency[row["currency"]] = by_currency.get(row["currency"], Decimal(0)) + Decimal(row["amount"])
    print("Total: " + ", ".join(f"{currency} {amount:,.2f}" for currency, amount in sorted(by_currency.items())))


def cmd_sync(args: argparse.Namespace) -> int:
    from cw_tui.services import sync_engine

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

        progress_shown = []

        def show(done: int, total: int) -> None:
            if not args.json and sys.stderr.isatty():
                progress_shown.append(True)
                print(f"\r  posting {done}/{total}", end="", file=sys.stderr, flush=True)

        results = []
        for period in periods:
            try:
                results.append(_run(lambda client, p=period: sync_engine.run_sync(store, client, p, progress=show,
                                                                                   expect_plan=args.expect_plan)))
            except sync_engine.PlanChanged as error:
                if error.plan is not None and not args.json:
                    _print_plan(error.plan)
                raise UsageError(str(error)) from None
        if progress_shown:
            print(file=sys.stderr)  # the progress line ends there: standard output gets no CR
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
    from cw_tui.services import sync_engine

    period = resolve_period(args.period, now_utc().date())
    with _store(args) as store:
        report = _run(lambda client: sync_engine.reconcile(store, client, period))
        system_log.write(store, system_log.Level.WARNING if report.mismatches else system_log.Level.INFO,
                         system_log.Category.SYNC, f"Reconciled {period}: {len(report.mismatches)} mismatches",
                         f"{report.additions_read} additions read")
    rows = [{"customer": c, "currency": cur, **{k: str(v.quantize(Decimal("0.01"))) if isinstance(v, Decimal) else v
                                                for k, v in t.items()}}
            for (c, cur), t in sorted(report.per_customer.items())]
    if args.json:
        _print_json({"period": period, "additions_read": report.additions_read, "customers": rows,
                     "mismatches": [vars(m) for m in report.mismatches]})
    else:
        print(f"Reconciliation of {period}: {report.additions_read} cw-tui additions read from ConnectWise.")
        for m in report.mismatches:
            print(f"  {m.kind:<9} {safe_text(m.marker):<40} {safe_text(m.customer)[:30]:<30} {safe_text(m.detail)}")
        print(f"{len(rows)} customer/currency groups; {len(report.mismatches)} mismatches.")
        for currency, total in sync_engine.totals_by_currency(report.per_customer).items():
            print(f"  {currency}: expected {total['expected']:,.2f}, found {total['found']:,.2f}")
    return EXIT_PARTIAL if report.mismatches else EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """The app on a throw-away database and configuration, with the sandbox running in-process
    and a generated Platform export; the sandbox credentials are typed in for you."""
    import shutil

    from cw_tui.app import CwTuiApp
    from cw_tui.sandbox.server import SandboxThread, build_sandbox, demo_faults
    from cw_tui.services.demo_data import write_demo_data

    work = Path(tempfile.mkdtemp(prefix="cw-tui-demo-"))
    os.environ["CW_TUI_CONFIG_DIR"] = str(work / "config")  # the demo never touches your real credentials
    for variable in credential_store.ENVIRONMENT.values():
        os.environ.pop(variable, None)
    try:
        folder = work / "platform-export"
        write_demo_data(folder, seed=args.seed)
        sandbox = SandboxThread(build_sandbox(args.seed, demo_faults())).start()
        try:
            with open_store(work / "demo.sqlite3") as store:
                config = settings.load_configuration(store)
                config.platform_dir = str(folder)
                settings.save_configuration(store, config)
                app = CwTuiApp(store, prefill_credentials=sandbox.credentials)
                app.run()
        finally:
            sandbox.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return app.return_code or EXIT_OK  # an app that failed does not exit 0


def cmd_app(args: argparse.Namespace) -> int:
    from cw_tui.app import CwTuiApp

    with _store(args) as store:
        app = CwTuiApp(store)
        app.run()
    return app.return_code or EXIT_OK


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS,
                        help="database file (default: $CW_TUI_DB or the user data folder)")
    parser = argparse.ArgumentParser(
        prog="cw-tui",
        description="Post cloud-marketplace invoice lines into ConnectWise Manage as Agreement Additions.",
        epilog="Exit codes: 0 ok, 1 some lines failed, 2 usage, configuration or input error.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"cw-tui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        p.set_defaults(handler=handler)
        return p

    p = command("demo", cmd_demo, "the app on throw-away data, with a local ConnectWise sandbox")
    p.add_argument("--seed", type=int, default=7)

    p = command("demo-data", cmd_demo_data, "write a deterministic demo Platform export folder")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--seed", type=int, default=7, help="same seed as the sandbox for matching names (default 7)")
    p.add_argument("--organizations", type=int, default=300, help="number of organizations (default 300)")
    p.add_argument("--months", type=int, default=15, help="months of invoice lines (default 15)")
    p.add_argument("--end-month", metavar="YYYY-MM", help="last month (default: the current month)")

    p = command("sandbox", cmd_sandbox, "run the local ConnectWise sandbox; prints its URL and credentials as JSON")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--seed", type=int, default=7, help="same seed as demo-data for matching names (default 7)")
    p.add_argument("--latency-ms", type=float, default=0.0, help="delay every API answer")
    p.add_argument("--fail-rate", type=float, default=0.0, help="share of requests answered with a 500")
    p.add_argument("--throttle-rate", type=float, default=0.0, help="share of requests answered with a 429")
    p.add_argument("--drop-after-commit-rate", type=float, default=0.0,
                   help="share of writes applied and then answered by a dropped connection")
    p.add_argument("--state", metavar="FILE", help="keep the sandbox's data in this file across restarts")
    p.add_argument("--rate-limit", metavar="N/min", help="throttle above N requests a minute, as ConnectWise does (429)")
    p.add_argument("--deny", metavar="PATH", action="append",
                   help="answer 403 (security role) for this API path glob, e.g. '/finance/*' or 'POST /finance/*'")
    p.add_argument("--stall-rate", type=float, default=0.0, help="share of requests carried out, then answered after 120 s")
    p.add_argument("--invoiced-through", metavar="YYYY-MM", help="every active agreement invoiced through this month")
    p.add_argument("--codebase", help="the only codebase served and named by companyinfo (a moved cloud tenant)")

    p = command("connect", cmd_connect, "test ConnectWise credentials, then save them (options or CW_* variables)")
    p.add_argument("--url", help="API URL, e.g. https://na.myconnectwise.net ($CW_URL)")
    p.add_argument("--company-id", help="the company ID typed at ConnectWise login ($CW_COMPANY_ID)")
    p.add_argument("--public-key", help="API member public key ($CW_PUBLIC_KEY)")
    p.add_argument("--private-key", help="API member private key ($CW_PRIVATE_KEY; safer than the option)")
    p.add_argument("--client-id", help="your clientId from developer.connectwise.com ($CW_CLIENT_ID)")
    p.add_argument("--json", action="store_true")

    p = command("sync-organizations", cmd_sync_organizations,
                "fetch ConnectWise companies, statuses, products, agreement types and agreements")
    p.add_argument("--allow-shrink", action="store_true",
                   help="accept lists that drop more than half of the cached companies, products or agreements")
    p.add_argument("--json", action="store_true")

    p = command("automap", cmd_automap, "map organizations and offers by exact normalised name or identifier where unique")
    p.add_argument("--include", action="store_true", help="also include the mapped organizations in sync")
    p.add_argument("--dry-run", action="store_true", help="show what would be mapped, change nothing")
    p.add_argument("--json", action="store_true")

    p = command("configure", cmd_configure, "show or change the configuration")
    p.add_argument("--agreement-type", metavar="NAME", help="the agreement type used when cw-tui creates agreements")
    p.add_argument("--platform-dir", metavar="DIR", help="the Platform export folder")
    p.add_argument("--end-rule", action="append", metavar="'CHARGE TYPE=RULE'",
                   help=f"charge end date rule per charge type; rules: {', '.join(r.value for r in EndRule)}")
    p.add_argument("--start-rule", action="append", metavar="'CYCLE=RULE'",
                   help=f"charge start date rule per billing cycle; rules: {', '.join(r.value for r in StartRule)}")
    p.add_argument("--charge-type-name", action="append", metavar="'CHARGE TYPE=NAME'",
                   help="the name ConnectWise shows for a charge type")
    p.add_argument("--daily-sync", choices=["on", "off"], help="automated daily invoice line sync at 00:00 UTC")
    p.add_argument("--json", action="store_true", help="print the configuration as JSON")

    p = command("load-invoices", cmd_load_invoices, "load invoice lines of a period from the Platform export folder")
    p.add_argument("--period", action="append", metavar="current|previous|YYYY-MM", help="repeatable (default: current)")
    p.add_argument("--platform-dir", metavar="DIR", help="read this folder instead of the configured one")
    p.add_argument("--allow-removals", metavar="CODE",
                   help="remove the unsynced lines gone from the export; CODE is printed by the load that lists them")
    p.add_argument("--json", action="store_true")

    p = command("load-products", cmd_load_products, "load the offers of recent invoice lines")
    p.add_argument("--months", type=int, default=3, help="rolling window, 1-12 months (default 3)")
    p.add_argument("--platform-dir", metavar="DIR", help="read this folder instead of the configured one")
    p.add_argument("--json", action="store_true")

    p = command("sync", cmd_sync, "post the fully mapped, unsynced lines of a period as Additions (exactly once)")
    p.add_argument("--period", metavar="YYYY-MM", help="default: the previous month (with --scheduled: every period with work)")
    p.add_argument("--dry-run", action="store_true", help="print the plan: creates, updates, cancels, totals; send no write")
    p.add_argument("--scheduled", action="store_true", help="for cron/systemd: does nothing unless daily sync is on")
    p.add_argument("--expect-plan", metavar="FINGERPRINT",
                   help="the fingerprint `sync --dry-run` printed: send nothing (exit 2) if the plan is now different")
    p.add_argument("--json", action="store_true")

    p = command("reconcile", cmd_reconcile, "compare a period's synced lines with the Additions in ConnectWise")
    p.add_argument("--period", metavar="YYYY-MM", required=True)
    p.add_argument("--json", action="store_true")

    p = command("status", cmd_status, "mapping and sync status of organizations, products and periods")
    p.add_argument("--json", action="store_true")

    p = command("logs", cmd_logs, "show System Log entries (newest last)")
    p.add_argument("--level", choices=["info", "warning", "error", "INFO", "WARNING", "ERROR"])
    p.add_argument("--category", help="Authentication, Configuration, Organizations, Products, Invoices or Sync")
    p.add_argument("--since", help="a duration (30m, 12h, 7d, 2w) or a date YYYY-MM-DD")
    p.add_argument("--search", metavar="TEXT")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--details", action="store_true", help="print each entry's details")
    p.add_argument("--json", action="store_true")

    p = command("export", cmd_export, "write a grid to CSV as the app shows it (as ctrl+e does)")
    p.add_argument("grid", choices=["organizations", "products", "invoices", "logs"])
    p.add_argument("--period", metavar="current|previous|YYYY-MM", help="invoices: the period (default: the newest loaded)")
    p.add_argument("--search", metavar="TEXT", help="only the rows that the grid's search box would show")
    p.add_argument("--out", metavar="FILE", help="the CSV file (default: a new file in the current folder)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        args.handler = cmd_app  # `cw-tui` alone opens the app
    try:
        return args.handler(args)
    except PlatformDataError as error:
        print(f"cw-tui: the Platform data was not loaded; nothing was changed. {error.total} problem(s):", file=sys.stderr)
        print(safe_text(str(error), lines=True), file=sys.stderr)  # problems quote the files' cells
        return EXIT_USAGE
    except ConnectWiseError as error:
        print(f"cw-tui: ConnectWise: {safe_text(system_log.redact(error.message))}", file=sys.stderr)
        configuration = (AuthenticationFailed, PermissionDenied, NotFound, InvalidSettings, TLSFailure, Redirected)
        return EXIT_USAGE if isinstance(error, configuration) else EXIT_PARTIAL
    except (UsageError, StoreError, CredentialsError, SyncNotReady, CacheShrinkRefused) as error:
        print(f"cw-tui: error: {safe_text(system_log.redact(str(error)))}", file=sys.stderr)
        return EXIT_USAGE
    except DATABASE_ERRORS as error:
        # locked, damaged, read-only or full: the file and the cause, never a bare driver message
        print(f"cw-tui: error: {safe_text(system_log.redact(describe_error(_database_path(args)[0], error)))}",
              file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("cw-tui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as error:  # noqa: BLE001 - last resort: a message, never a bare traceback
        print(f"cw-tui: unexpected error: {safe_text(system_log.redact(type(error).__name__ + ': ' + str(error)))}",
              file=sys.stderr)
        if os.environ.get("CW_TUI_DEBUG"):
            traceback.print_exc()
        else:
            print("cw-tui: set CW_TUI_DEBUG=1 for the details", file=sys.stderr)
        return EXIT_PARTIAL
