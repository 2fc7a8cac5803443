"""Load 100,000 invoice lines from a Platform export folder into a fresh store.

    python benchmarks/import_bench.py [--lines 100000] [--repeat 3]

Prints lines/second (best and median of the repeats) and the process's peak memory.
Target (issue 2): >= 20,000 lines/s on the CI machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import peak_rss_mb, report
from cw_tui.platform.demo_export import write_demo_data
from cw_tui.platform.importer import load_invoices
from cw_tui.rules.charge_dates import ChargeDateRules
from cw_tui.store import open_store

PERIOD = "2026-10"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "export"
        organizations = max(10, args.lines // 15)
        t0 = time.perf_counter()
        # generated in a child process, so that peak memory below is the loads' own
        with ProcessPoolExecutor(1) as pool:
            summary = pool.submit(write_demo_data, folder, seed=1, organizations=organizations, months=1,
                                  end_month=PERIOD, subscriptions_per_organization=20).result()
        generate_s = time.perf_counter() - t0
        rates, loaded = [], 0
        for run in range(args.repeat):
            with open_store(Path(tmp) / f"bench-{run}.sqlite3") as store:
                start = time.perf_counter()
                result = load_invoices(store, folder, [PERIOD], ChargeDateRules.defaults())
                elapsed = time.perf_counter() - start
            loaded = result.periods[0].lines
            rates.append(loaded / elapsed)
        # a re-load of the same period into a filled store (SPEC §5.3 path)
        with open_store(Path(tmp) / "bench-0.sqlite3") as store:
            start = time.perf_counter()
            load_invoices(store, folder, [PERIOD], ChargeDateRules.defaults())
            reload_s = time.perf_counter() - start
    report("import_bench", {
        "lines_in_export": summary.lines,
        "lines_loaded": loaded,
        "generate_s": round(generate_s, 2),
        "lines_per_s_best": round(max(rates)),
        "lines_per_s_median": round(statistics.median(rates)),
        "reload_s": round(reload_s, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "target_lines_per_s": 20_000,
    })


if __name__ == "__main__":
    main()
