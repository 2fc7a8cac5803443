"""`db copy --to TARGET` (moving in, issue 17) and `db migrate` (the schema upgrade, run by the
database's owner role in team mode)."""

from __future__ import annotations

import argparse
import sys
import time

from cw_tui.cli import render
from cw_tui.cli.common import EXIT_OK, EXIT_PARTIAL, _database_path, _print_json, _store
from cw_tui.rules.safe_text import safe_text
from cw_tui.services import db_copy
from cw_tui.store import SCHEMA_VERSION, open_store


def cmd_db_copy(args: argparse.Namespace) -> int:
    with _store(args) as store, render.progress("Copying", enabled=not args.json) as bar:
        notes = _notes(enabled=not args.json and not sys.stderr.isatty())

        def progress(table: str, done: int, total: int) -> None:
            bar(done, total)
            notes(table, done, total)

        try:
            result = db_copy.copy_store(store, args.to, progress)
        except db_copy.TargetNotEmpty as refused:
            print(f"cw-tui: refused: {safe_text(str(refused))}", file=sys.stderr)
            return EXIT_PARTIAL
    if args.json:
        _print_json(result.to_json())
        return EXIT_OK
    print(f"Copied {result.rows:,} rows from {safe_text(result.source)} to {safe_text(result.target)} "
          f"in {result.duration_s:.1f} s; every table's count checked in the target:")
    render.table([("Table", "left"), ("Source", "right"), ("Target", "right")],
                 [(t.table, f"{t.source:,}", f"{t.target:,}") for t in result.tables])
    return EXIT_OK


def _notes(*, enabled: bool):
    """Progress as lines on stderr when it is not a terminal (a log, cron): one every few
    seconds, and the end once one was printed; a short copy prints none."""
    state = {"last": time.monotonic(), "printed": False}

    def note(table: str, done: int, total: int) -> None:
        now = time.monotonic()
        if enabled and (now - state["last"] >= 5 or (done == total and state["printed"])):
            print(f"cw-tui: copied {done:,} of {total:,} rows (now {table})", file=sys.stderr)
            state["last"], state["printed"] = now, True

    return note


def cmd_db_migrate(args: argparse.Namespace) -> int:
    """Bring the database to this cw-tui's schema. In team mode only the owner role may change
    the schema; the app role is told to have it run so."""
    path, default = _database_path(args)
    with open_store(path, migrate=False, create_folder=default) as before:
        version = before.schema_version()
    with _store(args) as store:
        after = store.schema_version()
        where = str(store.path)
    if args.json:
        _print_json({"database": where, "schema_before": version, "schema": after})
    elif version == after:
        print(f"Database {safe_text(where)} is at schema {after}, this cw-tui's: nothing to do.")
    else:
        print(f"Database {safe_text(where)} upgraded from schema {version} to {after}.")
    return EXIT_OK if after == SCHEMA_VERSION else EXIT_PARTIAL
