"""Post 2,000 invoice lines to the sandbox at --latency-ms 50.

    python benchmarks/sync_bench.py [--lines 2000] [--latency-ms 50] [--concurrency 8] [--rate-limit R]
                                    [--db FILE | postgresql://... | postgres-temp] [--repeat N]

The sandbox runs as its own process (`cw-tui sandbox`), as in real use. The lines are
one-time Usage Fees of organizations whose company has exactly one active agreement of the
configured type (SPEC §8 rule 3), so each line costs one POST: the steady state of a monthly
sync once agreements exist. Prints the wall time, the ratio to the ideal
(lines x latency / concurrency) and API calls per posted line. Targets (issue 4): ratio
<= 1.3, calls per line <= 1.05. The request budget is raised for the run: at ConnectWise's
default (1000 requests a minute) 2,000 lines take at least two minutes whatever the latency.

The store is a temporary SQLite file unless `--db` says otherwise: a PostgreSQL URL (an empty
database: the benchmark loads its own lines there) or `postgres-temp`, a throw-away server
started as the test suite starts one (tests/pg_server.py), a fresh database for each repeat.

The floor is measured in the same run: the very requests the sync sent (read back from its
journal, under new markers), posted by the same client at the same concurrency with no store
work between them. `ratio_to_floor` (wall / floor) is what the store and the engine cost,
whatever the machine's load; `ratio_to_ideal` is the target's figure. With `--repeat N` the
sync runs N times (a fresh database each) and medians are reported with each run's figures.

With `--rate-limit R` the sandbox throttles at R requests a minute as ConnectWise does, and the
client's budget is set just below it (`--budget`, default R less 2%). Targets (issue 14): zero
429s, and the sync takes at most 1.1 x (lines / R) minutes (or the latency's ideal, if longer).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import peak_rss_mb, report
from cw_tui.platform.files import CONTRACTS, INVOICE_LINES, OFFERS, ORGANIZATIONS
from cw_tui.platform.importer import load_invoices
from cw_tui.rules.charge_dates import ChargeDateRules
from cw_tui.sandbox.data import seed_state
from cw_tui.sandbox.server import free_port
from cw_tui.services import settings
from cw_tui.services.connectwise import ConnectWiseClient
from cw_tui.services.connectwise_data import automap, sync_organizations
from cw_tui.services.credentials import Credentials
from cw_tui.store import JournalEntry, Organization, open_store, postgres
from cw_tui.sync import run_sync

PERIOD = "2026-10"
SEED = 7


def write_export(folder: Path, lines: int) -> tuple[int, str]:
    """Organizations named after companies with exactly one active agreement of one type."""
    state = seed_state(SEED)
    by_type: dict[int, list[int]] = defaultdict(list)
    for company in state.companies.values():
        active = [a for a in state.agreements.values() if a["company"]["id"] == company["id"] and a["agreementStatus"] == "Active"]
        types = [a["type"]["id"] for a in active]
        for type_id in set(types):
            if types.count(type_id) == 1:
                by_type[type_id].append(company["id"])
    type_id, company_ids = max(by_type.items(), key=lambda kv: len(kv[1]))
    names = {}
    for cid in company_ids:
        name = state.companies[cid]["name"]
        if sum(1 for c in state.companies.values() if c["name"] == name) == 1:
            names[cid] = name
    products = [p for p in state.catalog.values() if not p["inactiveFlag"]][:10]
    folder.mkdir(parents=True, exist_ok=True)

    def write(stem: str, header: list[str], rows: list[list]) -> None:
        with (folder / f"{stem}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)

    orgs = list(names.items())
    write(ORGANIZATIONS.stem, list(ORGANIZATIONS.columns), [[f"ORG-{cid}", name, f"R{cid}", "Active"] for cid, name in orgs])
    write(OFFERS.stem, list(OFFERS.columns), [[f"OFF-{p['id']}", p["description"], p["identifier"], "Vendor"] for p in products])
    write(CONTRACTS.stem, list(CONTRACTS.columns), [[f"CTR-{cid}", f"ORG-{cid}", "5", "USD", "Reseller"] for cid, _ in orgs])
    rows = []
    for n in range(lines):
        cid, _ = orgs[n % len(orgs)]
        product = products[n % len(products)]
        rows.append([f"LN-{n:06d}", f"INV-{cid}", f"{PERIOD}-05", "Processed", f"ORG-{cid}", f"CTR-{cid}", f"SUB-{n:06d}",
                     product["description"], f"OFF-{product['id']}", "Usage Fee", "None", f"{1 + n % 17}.5", "2.10", "1.60",
                     "USD", "2026-09-01", "2026-09-30"])
    write(f"{INVOICE_LINES.stem}_{PERIOD}", list(INVOICE_LINES.columns), rows)
    return type_id, state.agreement_types[type_id]["name"]


@contextmanager
def databases(db: str, tmp: Path) -> Iterator:
    """Yields a function giving the address of a new, empty store for each repeat, and the
    backend's name."""
    if db == "postgres-temp":
        from tests.pg_server import Databases, remove_server, start_server

        server = start_server()
        print(f"[{server.version} started in {server.startup_seconds:.2f} s]", file=sys.stderr)
        try:
            made = Databases(server)
            yield (lambda n: made.create("sync_bench", migrated=False)), "postgresql"
        finally:
            remove_server(server)
    elif postgres.is_url(db):
        used = []

        def given(n: int) -> str:
            if used:
                raise SystemExit("--repeat needs a fresh database each time: use --db postgres-temp")
            used.append(n)
            return db

        yield given, "postgresql"
    elif db:
        yield (lambda n: str(Path(db).with_suffix(f".{n}.sqlite3")) if n else db), "sqlite"
    else:
        yield (lambda n: str(tmp / f"bench.{n}.sqlite3")), "sqlite"


async def post_floor(creds: Credentials, concurrency: int, budget: int, requests: list[tuple[int, dict]]) -> float:
    """The sync's own POSTs again (new markers), by the same client at the same concurrency,
    nothing else in between: the time no store or engine could beat."""
    async with ConnectWiseClient(creds, max_in_flight=concurrency, requests_per_minute=budget) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client.create_addition(agreement_id, body) for agreement_id, body in requests))
        return time.perf_counter() - started


def one_sync(creds: Credentials, address: str, folder: Path, type_id: int, type_name: str, args, budget: int) -> dict:
    with open_store(address) as store:
        if store.db.table_exists("invoice_line") and store.db.execute_sql("SELECT COUNT(*) FROM invoice_line").fetchone()[0]:
            raise SystemExit(f"{postgres.redact(address)} holds invoice lines already: give the benchmark an empty database")
        config = settings.load_configuration(store)
        config.agreement_type = settings.AgreementTypeChoice(id=type_id, name=type_name)
        settings.save_configuration(store, config)
        load_invoices(store, folder, [PERIOD], ChargeDateRules.defaults())

        async def go():
            async with ConnectWiseClient(creds, max_in_flight=args.concurrency, requests_per_minute=budget) as client:
                await sync_organizations(store, client)
                automap(store, include=True)
                mapped = Organization.select().where(Organization.company_id.is_null(False)).count()
                started = time.perf_counter()
                result = await run_sync(store, client, PERIOD)
                return time.perf_counter() - started, result, mapped, client.throttled

        wall, result, mapped, throttled = asyncio.run(go())
        sent = [(entry.agreement_id, json.loads(entry.sent)) for entry in
                JournalEntry.select(JournalEntry.agreement_id, JournalEntry.sent).where(
                    (JournalEntry.run_id == result.run_id) & (JournalEntry.action == "create")).order_by(JournalEntry.id)]
    for n, (_, body) in enumerate(sent):
        body["serialNumber"] = f"FLOOR-{n}"
        for key in ("quantity", "unitPrice", "unitCost"):  # the journal keeps Decimals as text
            body[key] = Decimal(body[key])
    floor = asyncio.run(post_floor(creds, args.concurrency, budget, sent))
    return {"wall": wall, "floor": floor, "result": result, "mapped": mapped, "throttled": throttled}


@contextmanager
def sandbox_running(args) -> Iterator[Credentials]:
    """`cw-tui sandbox` as its own process, as in real use."""
    command = [sys.executable, "-m", "cw_tui", "sandbox", "--port", str(free_port()), "--seed", str(SEED),
               "--latency-ms", str(args.latency_ms)]
    if args.rate_limit:
        command += ["--rate-limit", f"{args.rate_limit}/min"]
    sandbox = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        announced = json.loads(sandbox.stdout.readline())
        yield Credentials(announced["url"], announced["company_id"], announced["public_key"], announced["private_key"],
                          announced["client_id"])
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate-limit", type=int, default=0, metavar="R", help="the sandbox throttles at R requests a minute")
    parser.add_argument("--budget", type=int, default=0, help="the client's requests a minute (default: just below R)")
    parser.add_argument("--db", default="", help="FILE, postgresql://... (an empty database) or postgres-temp "
                                                 "(default: a temporary SQLite file)")
    parser.add_argument("--repeat", type=int, default=1, help="syncs to run, each into a fresh database")
    args = parser.parse_args()
    budget = args.budget or (args.rate_limit - max(1, args.rate_limit // 50) if args.rate_limit else 100_000)
    load_before = os.getloadavg()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "export"
        type_id, type_name = write_export(folder, args.lines)
        with databases(args.db, Path(tmp)) as (new_address, backend):
            for n in range(args.repeat):
                # a fresh sandbox each time: the last run's Additions would be adopted, not posted
                with sandbox_running(args) as creds:
                    runs.append(one_sync(creds, new_address(n), folder, type_id, type_name, args, budget))
                print(f"run {n + 1}: {runs[-1]['wall']:.2f} s, floor {runs[-1]['floor']:.2f} s", file=sys.stderr)
    ideal = args.lines * (args.latency_ms / 1000) / args.concurrency
    result = runs[-1]["result"]
    throttled = max(r["throttled"] for r in runs)
    walls = [r["wall"] for r in runs]
    floors = [r["floor"] for r in runs]
    wall = statistics.median(walls)
    floor = statistics.median(floors)
    posted = result.synced_lines
    throttling = {}
    if args.rate_limit:
        allowed = max(1.1 * args.lines / args.rate_limit * 60, ideal)
        throttling = {"rate_limit_per_min": args.rate_limit, "budget_per_min": budget, "responses_429": throttled,
                      "allowed_s": round(allowed, 2), "within_allowed": wall <= allowed,
                      "rate_targets": "zero 429s, wall <= 1.1 x lines / R minutes"}
    name = "sync_bench" + (f"_rate{args.rate_limit}" if args.rate_limit else "") + ("_pg" if backend == "postgresql" else "")
    report(name, {
        "backend": backend,
        "lines": args.lines,
        "lines_posted": posted,
        "errors": max(r["result"].errors for r in runs),
        "organizations": runs[-1]["mapped"],
        "latency_ms": args.latency_ms,
        "concurrency": args.concurrency,
        "repeats": len(runs),
        "wall_s": round(wall, 2),
        "floor_s": round(floor, 2),
        "ideal_s": round(ideal, 2),
        "ratio_to_ideal": round(wall / ideal, 3),
        "floor_ratio_to_ideal": round(floor / ideal, 3),
        "ratio_to_floor": round(statistics.median(w / f for w, f in zip(walls, floors, strict=True)), 3),
        "walls_s": [round(w, 2) for w in walls],
        "floors_s": [round(f, 2) for f in floors],
        "api_calls": result.api_calls,
        "api_calls_per_line": round(result.api_calls / max(1, posted), 4),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "responses_429": throttled,
        "load_average": [round(x, 2) for x in (*load_before, *os.getloadavg())],
        "targets": "ratio <= 1.3, calls per line <= 1.05",
        **throttling,
    })


if __name__ == "__main__":
    main()
