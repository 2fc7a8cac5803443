"""The commands that set up, load, map, inspect and export (SPEC §11); sync and reconcile
are in sync_commands.py. Each parses nothing and prints through render."""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from cw_tui.cli import render
from cw_tui.platform.files import PlatformDataError
from cw_tui.rules.charge_dates import EndRule, StartRule
from cw_tui.rules.periods import months_back
from cw_tui.rules.safe_text import safe_text
from cw_tui.rules.vocabulary import BillingCycle, ChargeType, parse_enum
from cw_tui.services import credentials as credential_store
from cw_tui.services import settings, system_log
from cw_tui.services.connectwise import ConnectWiseError
from cw_tui.services.credentials import Credentials
from cw_tui.store import (
    Store,
    now_utc,
    open_store,
)

if TYPE_CHECKING:
    pass

from cw_tui.cli.common import (
    EXIT_OK,
    ConnectionRefusedByConnectWise,
    UsageError,
    _assignment,
    _parse_since,
    _platform_dir,
    _print_json,
    _run,
    _store,
)


def cmd_demo_data(args: argparse.Namespace) -> int:
    from cw_tui.platform.demo_export import write_demo_data

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


def _agreement_type(store: Store, name: str):
    """The active agreement type called `name` (or with that ID), fresh from ConnectWise when
    credentials exist, else from the cache."""
    from cw_tui.services.connection import cache_agreement_types
    from cw_tui.store import AgreementType

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


def cmd_load_products(args: argparse.Namespace) -> int:
    from cw_tui.platform.importer import load_products

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
        print()
        render.table([("Period", "left"), ("Lines", "right"), ("Mapped", "right"), ("Unmapped", "right"),
                      ("Excluded", "right"), ("Not synced", "right"), ("Synced", "right"), ("Error", "right")],
                     [(p["period"], f"{p['lines']:,}", f"{p['mapped']:,}", f"{p['unmapped']:,}", f"{p['excluded']:,}",
                       f"{p['not_synced']:,}", f"{p['synced']:,}", f"{p['error']:,}") for p in result["periods"]])
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
    from cw_tui.store.grid import GridState

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

    from cw_tui.services.connection import (
        check_connection,
        record_check,
        save_credentials,
    )

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
            with render.progress("Reading companies, products and agreements from ConnectWise", enabled=not args.json):
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
    from cw_tui.store import Company

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


def cmd_demo(args: argparse.Namespace) -> int:
    """The app on a throw-away database and configuration, with the sandbox running in-process
    and a generated Platform export; the sandbox credentials are typed in for you."""
    import shutil

    from cw_tui.app import CwTuiApp
    from cw_tui.platform.demo_export import write_demo_data
    from cw_tui.sandbox.server import SandboxThread, build_sandbox, demo_faults

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

