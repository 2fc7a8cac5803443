"""The command line: every command, its options and its help."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

from cw_tui import __version__
from cw_tui.rules.charge_dates import EndRule, StartRule


def _later(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """A command's handler, imported when its command runs: `cw-tui` alone (the app) does not
    wait for the modules of every other command (httpx, pydantic, the sync engine)."""
    def handler(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(f"cw_tui.cli.{module}"), name)(args)
    handler.__name__ = handler.__qualname__ = name
    return handler


cmd_automap = _later("commands", "cmd_automap")
cmd_configure = _later("commands", "cmd_configure")
cmd_connect = _later("commands", "cmd_connect")
cmd_demo = _later("commands", "cmd_demo")
cmd_demo_data = _later("commands", "cmd_demo_data")
cmd_db_copy = _later("db_commands", "cmd_db_copy")
cmd_db_migrate = _later("db_commands", "cmd_db_migrate")
cmd_export = _later("commands", "cmd_export")
cmd_load_invoices = _later("load_command", "cmd_load_invoices")
cmd_load_products = _later("commands", "cmd_load_products")
cmd_logs = _later("commands", "cmd_logs")
cmd_sandbox = _later("commands", "cmd_sandbox")
cmd_status = _later("commands", "cmd_status")
cmd_sync_organizations = _later("commands", "cmd_sync_organizations")
cmd_runs = _later("runs_commands", "cmd_runs")
cmd_runs_show = _later("runs_commands", "cmd_runs_show")
cmd_reconcile = _later("sync_commands", "cmd_reconcile")
cmd_sync = _later("sync_commands", "cmd_sync")
cmd_undo = _later("undo_commands", "cmd_undo")


def _db_usage(args: argparse.Namespace) -> int:
    from cw_tui.cli.common import UsageError

    raise UsageError("db needs a command: `cw-tui db copy --to TARGET` or `cw-tui db migrate`")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="PATH|URL", default=argparse.SUPPRESS,
                        help="database file, or postgresql://user@host/db (default: $CW_TUI_DB or the user data folder)")
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

    p = command("runs", cmd_runs, "sync and undo runs: who, when, what started them, their plan, counts and totals")
    p.add_argument("--period", metavar="current|previous|YYYY-MM", help="only the runs of this month")
    p.add_argument("--json", action="store_true")
    runs = p.add_subparsers(dest="runs_command", metavar="show")
    show = runs.add_parser("show", help="every action of a run (from the journal)",
                           description="every action of a run (from the journal)", parents=[common])
    show.set_defaults(handler=cmd_runs_show)
    show.add_argument("run", type=int, metavar="RUN", help="the run's number (`cw-tui runs` lists them)")
    as_ = show.add_mutually_exclusive_group()
    as_.add_argument("--json", action="store_true")
    as_.add_argument("--csv", action="store_true", help="one row per action, on standard output")

    p = command("undo", cmd_undo, "undo a sync run: delete what it created, restore what it updated or cancelled")
    p.add_argument("run", type=int, metavar="RUN", help="the run's number (`cw-tui runs` lists them)")
    p.add_argument("--dry-run", action="store_true", help="print the undo plan: what is deleted, restored and refused, "
                                                          "and why; send nothing")
    p.add_argument("--expect-plan", metavar="FINGERPRINT",
                   help="the fingerprint `undo --dry-run` printed: send nothing (exit 2) if the plan is now different")
    p.add_argument("--end-invoiced", action="store_true",
                   help="an Addition ConnectWise has invoiced is ended after the invoiced months instead of refused")
    p.add_argument("--json", action="store_true")

    p = command("db", _db_usage, "the database itself: copy it into another (moving in), upgrade its schema")
    db = p.add_subparsers(dest="db_command", metavar="copy|migrate")
    copy = db.add_parser("copy", parents=[common], help="copy this database (--db) into an empty one: a SQLite file "
                         "or postgresql://user@host/db",
                         description="Copy every table of the current database (--db, $CW_TUI_DB) into TARGET, which "
                                     "must be empty: its schema is brought to this cw-tui's, the rows are copied in "
                                     "one transaction, and every table's count is checked. Exit 1 if TARGET has rows.")
    copy.set_defaults(handler=cmd_db_copy)
    copy.add_argument("--to", required=True, metavar="TARGET", help="a postgresql:// URL (no password: ~/.pgpass) "
                                                                    "or a SQLite file")
    copy.add_argument("--json", action="store_true")
    migrate = db.add_parser("migrate", parents=[common], help="upgrade the database to this cw-tui's schema "
                            "(PostgreSQL: run it as the owner role)",
                            description="Upgrade the database (--db) to this cw-tui's schema. Other commands do it "
                                        "when they open the database; on PostgreSQL the app role may not change the "
                                        "schema, so the owner role runs this.")
    migrate.set_defaults(handler=cmd_db_migrate)
    migrate.add_argument("--json", action="store_true")

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
