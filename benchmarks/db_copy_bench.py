"""`cw-tui db copy` of a 100,000-line store: SQLite to SQLite, and with --postgres SQLite to
PostgreSQL and back (a throw-away server, as the tests start it: tests/pg_server.py).

    python benchmarks/db_copy_bench.py [--lines 100000] [--repeat 3] [--postgres]

Each copy runs in a process of its own, so its peak memory (ru_maxrss) is the copy's. The
floor, measured in the same run: a process that opens the same store and reads every row of
every table in the copy's batches, writing nothing (no copy can do less); its time and peak
memory are what the copy's are compared with. The store at a tenth of the lines is copied too:
a streamed copy's peak of Python objects (tracemalloc, in a run of its own) does not grow with
the lines. Peak RSS does grow, in the floor as well: SQLite's page cache (64 MB) and its memory
map of the file count there.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import peak_rss_mb, report
from benchmarks.grid_bench import build


def _read_all(db: str) -> tuple[float, float, int]:
    """The floor: every row of every table read in batches, nothing written."""
    from cw_tui.store import copy as store_copy
    from cw_tui.store import open_store

    began = time.perf_counter()
    rows = 0
    with open_store(db) as store, store_copy._snapshot(store):
        for table in store_copy.data_tables(store):
            for batch in store_copy._batches(store, table, store_copy._columns(store, table)):
                rows += len(batch)
    return time.perf_counter() - began, peak_rss_mb(), rows


def _copy(source: str, target: str) -> tuple[float, float, int]:
    from cw_tui.services.db_copy import copy_store
    from cw_tui.store import open_store

    began = time.perf_counter()
    with open_store(source) as store:
        result = copy_store(store, target)
    return time.perf_counter() - began, peak_rss_mb(), result.rows


def _copy_traced(source: str, target: str) -> float:
    """The copy's peak of Python objects (tracemalloc, MB): what a copy that held every row
    would grow with. Apart from the timed runs (tracing slows Python down)."""
    import tracemalloc

    from cw_tui.services.db_copy import copy_store
    from cw_tui.store import open_store

    with open_store(source) as store:
        tracemalloc.start()
        copy_store(store, target)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / (1024 * 1024)


def _in_child(function, *args):
    with ProcessPoolExecutor(1) as pool:  # a fresh process: its peak memory is this call's alone
        return pool.submit(function, *args).result()


def _figures(prefix: str, runs: list[tuple[float, float, int]], floor: list[tuple[float, float, int]]) -> dict:
    seconds, floor_s = statistics.median(r[0] for r in runs), statistics.median(r[0] for r in floor)
    return {f"{prefix}_s_median": round(seconds, 2), f"{prefix}_s_max": round(max(r[0] for r in runs), 2),
            f"{prefix}_rows_per_s": round(runs[0][2] / seconds), f"{prefix}_peak_rss_mb": round(max(r[1] for r in runs), 1),
            f"{prefix}_ratio_to_floor": round(seconds / floor_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", action="store_true", help="also SQLite to PostgreSQL and back")
    args = parser.parse_args()
    figures: dict = {"load_avg_1m": round(os.getloadavg()[0], 2)}
    server = databases = None
    if args.postgres:
        from tests.pg_server import Databases, start_server

        server = start_server()
        databases = Databases(server)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["CW_TUI_CONFIG_DIR"] = str(Path(tmp) / "config")
            for size, label in ((max(1, args.lines // 10), "tenth"), (args.lines, "full")):
                folder, db = Path(tmp) / f"export-{label}", Path(tmp) / f"{label}.sqlite3"
                figures[f"{label}_lines"] = _in_child(build, folder, db, size, 1)
                floor = [_in_child(_read_all, str(db)) for _ in range(args.repeat)]
                figures[f"{label}_rows"] = floor[0][2]
                figures[f"{label}_floor_read_s_median"] = round(statistics.median(r[0] for r in floor), 2)
                figures[f"{label}_floor_peak_rss_mb"] = round(max(r[1] for r in floor), 1)
                copies = [_in_child(_copy, str(db), str(Path(tmp) / f"{label}-copy-{n}.sqlite3"))
                          for n in range(args.repeat)]
                figures.update(_figures(f"{label}_sqlite_to_sqlite", copies, floor))
                figures[f"{label}_sqlite_to_sqlite_python_peak_mb"] = round(
                    _in_child(_copy_traced, str(db), str(Path(tmp) / f"{label}-traced.sqlite3")), 1)
                if databases is not None:
                    urls = [databases.create(f"copy_{label}", migrated=False) for _ in range(args.repeat)]
                    there = [_in_child(_copy, str(db), url) for url in urls]
                    figures.update(_figures(f"{label}_sqlite_to_postgres", there, floor))
                    traced = databases.create(f"copy_{label}", migrated=False)
                    figures[f"{label}_sqlite_to_postgres_python_peak_mb"] = round(_in_child(_copy_traced, str(db), traced), 1)
                    databases.drop(traced)
                    pg_floor = [_in_child(_read_all, urls[0]) for _ in range(args.repeat)]
                    figures[f"{label}_postgres_floor_read_s_median"] = round(statistics.median(r[0] for r in pg_floor), 2)
                    back = [_in_child(_copy, urls[0], str(Path(tmp) / f"{label}-back-{n}.sqlite3"))
                            for n in range(args.repeat)]
                    figures.update(_figures(f"{label}_postgres_to_sqlite", back, pg_floor))
                    figures[f"{label}_postgres_to_sqlite_python_peak_mb"] = round(
                        _in_child(_copy_traced, urls[0], str(Path(tmp) / f"{label}-back-traced.sqlite3")), 1)
                    for url in urls:
                        databases.drop(url)
    finally:
        if server is not None:
            from tests.pg_server import remove_server

            remove_server(server)
    for route in ("sqlite_to_sqlite", "sqlite_to_postgres", "postgres_to_sqlite"):
        if f"full_{route}_peak_rss_mb" in figures:
            figures[f"{route}_peak_rss_growth_mb"] = round(figures[f"full_{route}_peak_rss_mb"]
                                                           - figures[f"tenth_{route}_peak_rss_mb"], 1)
            figures[f"{route}_python_peak_growth_mb"] = round(figures[f"full_{route}_python_peak_mb"]
                                                              - figures[f"tenth_{route}_python_peak_mb"], 1)
    figures["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    figures["floor_rss_growth_mb"] = round(figures["full_floor_peak_rss_mb"] - figures["tenth_floor_peak_rss_mb"], 1)
    figures["targets"] = ("streamed: the copy's peak of Python objects grows <= 5 MB from a tenth of the lines to all "
                          "of them (peak RSS also counts SQLite's page cache and memory map, which grow in the "
                          "read-only floor too: floor_rss_growth_mb)")
    report("db_copy_bench", figures)


if __name__ == "__main__":
    main()
