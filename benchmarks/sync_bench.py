"""Post 2,000 invoice lines to the sandbox at --latency-ms 50.

    python benchmarks/sync_bench.py [--lines 2000] [--latency-ms 50] [--concurrency 8] [--rate-limit R]

The sandbox runs as its own process (`cw-tui sandbox`), as in real use. The lines are
one-time Usage Fees of organizations whose company has exactly one active agreement of the
configured type (SPEC §8 rule 3), so each line costs one POST: the steady state of a monthly
sync once agreements exist. Prints the wall time, the ratio to the ideal
(lines x latency / concurrency) and API calls per posted line. Targets (issue 4): ratio
<= 1.3, calls per line <= 1.05. The request budget is raised for the run: at ConnectWise's
default (1000 requests a minute) 2,000 lines take at least two minutes whatever the latency.

With `--rate-limit R` the sandbox throttles at R requests a minute as ConnectWise does, and the
client's budget is set just below it (`--budget`, default R less 2%). Targets (issue 14): zero
429s, and the sync takes at most 1.1 x (lines / R) minutes (or the latency's ideal, if longer).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
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
from cw_tui.store import Organization, open_store
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate-limit", type=int, default=0, metavar="R", help="the sandbox throttles at R requests a minute")
    parser.add_argument("--budget", type=int, default=0, help="the client's requests a minute (default: just below R)")
    args = parser.parse_args()
    budget = args.budget or (args.rate_limit - max(1, args.rate_limit // 50) if args.rate_limit else 100_000)
    port = free_port()
    command = [sys.executable, "-m", "cw_tui", "sandbox", "--port", str(port), "--seed", str(SEED),
               "--latency-ms", str(args.latency_ms)]
    if args.rate_limit:
        command += ["--rate-limit", f"{args.rate_limit}/min"]
    sandbox = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        announced = json.loads(sandbox.stdout.readline())
        creds = Credentials(announced["url"], announced["company_id"], announced["public_key"], announced["private_key"],
                            announced["client_id"])
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "export"
            type_id, type_name = write_export(folder, args.lines)
            with open_store(Path(tmp) / "bench.sqlite3") as store:
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
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    ideal = args.lines * (args.latency_ms / 1000) / args.concurrency
    posted = result.synced_lines
    throttling = {}
    if args.rate_limit:
        allowed = max(1.1 * args.lines / args.rate_limit * 60, ideal)
        throttling = {"rate_limit_per_min": args.rate_limit, "budget_per_min": budget, "responses_429": throttled,
                      "allowed_s": round(allowed, 2), "within_allowed": wall <= allowed,
                      "rate_targets": "zero 429s, wall <= 1.1 x lines / R minutes"}
    report("sync_bench" + (f"_rate{args.rate_limit}" if args.rate_limit else ""), {
        "lines": args.lines,
        "lines_posted": posted,
        "errors": result.errors,
        "organizations": mapped,
        "latency_ms": args.latency_ms,
        "concurrency": args.concurrency,
        "wall_s": round(wall, 2),
        "ideal_s": round(ideal, 2),
        "ratio_to_ideal": round(wall / ideal, 3),
        "api_calls": result.api_calls,
        "api_calls_per_line": round(result.api_calls / max(1, posted), 4),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "responses_429": throttled,
        "targets": "ratio <= 1.3, calls per line <= 1.05",
        **throttling,
    })


if __name__ == "__main__":
    main()
