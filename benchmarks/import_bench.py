"""A month of invoice lines through the whole `cw-tui load-invoices` process, against its floor.

    python benchmarks/import_bench.py [--lines 100000] [--repeat 3]

The export is generated once. Each repeat then runs, one after the other in the same run:
- the floor (benchmarks/import_floor.py: only csv, Decimal, date.fromisoformat and one SQLite
  executemany of the same rows into a table of the same shape), as a process of its own, twice:
  into the store's invoice_line with its indexes (the floor the targets are measured against),
  and into the bare table without them (what the indexes cost);
- `cw-tui load-invoices` into a fresh store, as a process of its own (startup included);
- the same command again on that store: a re-load of the same period.
Prints the medians, the ratio of ours to the floor, the re-load's ratio to the first load and
each process's peak RSS (from wait4, so the process's own, not this script's).
Targets (issue 18): at most 1.5x the floor at 100k lines; peak RSS at most 100 MB at 100k lines
and 150 MB at 1,000,000; a re-load no slower than the first load.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import report  # noqa: E402
from cw_tui.platform.demo_export import write_demo_data  # noqa: E402
from cw_tui.store import open_store  # noqa: E402

PERIOD = "2026-10"


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB (the child's own, from wait4) and stdout of one process."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read()
        if proc.returncode != 0:
            raise SystemExit(f"{argv} failed ({proc.returncode}):\n{text[-2000:]}\n{err.read()[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024, text


def _schema(path: Path, tmp: Path, *, indexes: bool = True) -> None:
    """The store's own invoice_line table (and its indexes), for the floor."""
    if not (tmp / "schema.sqlite3").exists():
        with open_store(tmp / "schema.sqlite3"):
            pass
    kinds = "('table', 'index')" if indexes else "('table')"
    with sqlite3.connect(tmp / "schema.sqlite3") as connection:
        ddl = [sql for (sql,) in connection.execute(
            f"SELECT sql FROM sqlite_master WHERE tbl_name = 'invoice_line' AND sql IS NOT NULL AND type IN {kinds} "
            "ORDER BY type DESC")]
    path.write_text(";\n".join(ddl) + ";\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        folder = tmp / "export"
        organizations = max(10, args.lines // 15)
        t0 = time.perf_counter()
        with ProcessPoolExecutor(1) as pool:  # generated once, in a child process
            summary = pool.submit(write_demo_data, folder, seed=1, organizations=organizations, months=1,
                                  end_month=PERIOD, subscriptions_per_organization=20).result()
        generate_s = time.perf_counter() - t0
        schema, bare = tmp / "schema.sql", tmp / "bare.sql"
        _schema(schema, tmp)
        _schema(bare, tmp, indexes=False)
        source = folder / f"invoice_lines_{PERIOD}.csv"
        env = {**os.environ, "CW_TUI_CONFIG_DIR": str(tmp / "config"), "PYTHONPATH": str(ROOT)}
        (tmp / "config").mkdir()
        floor_s, floor_mb, load_s, load_mb, reload_s, reload_mb = [], [], [], [], [], []
        bare_s, bare_mb = [], []
        floor_lines = loaded = 0
        load_averages = [os.getloadavg()[0]]
        for run in range(args.repeat):  # interleaved: the machine's load hits all alike
            for ddl, times, peaks in ((schema, floor_s, floor_mb), (bare, bare_s, bare_mb)):
                floor_db = tmp / f"floor-{run}.sqlite3"
                s, mb, _ = _run([sys.executable, str(ROOT / "benchmarks" / "import_floor.py"), str(source),
                                 str(floor_db), str(ddl)], env)
                times.append(s)
                peaks.append(mb)
                with sqlite3.connect(floor_db) as connection:
                    floor_lines = connection.execute("SELECT COUNT(*) FROM invoice_line").fetchone()[0]
                for path in tmp.glob(f"floor-{run}.sqlite3*"):
                    path.unlink()
            db = tmp / f"bench-{run}.sqlite3"
            command = [sys.executable, "-m", "cw_tui", "--db", str(db), "load-invoices", "--platform-dir", str(folder),
                       "--period", PERIOD]
            for times, peaks in ((load_s, load_mb), (reload_s, reload_mb)):
                s, mb, _ = _run(command, env)
                times.append(s)
                peaks.append(mb)
            with sqlite3.connect(db) as connection:
                loaded = connection.execute("SELECT COUNT(*) FROM invoice_line").fetchone()[0]
            for path in tmp.glob(f"bench-{run}.sqlite3*"):
                path.unlink()
            load_averages.append(os.getloadavg()[0])
    if floor_lines != loaded:
        raise SystemExit(f"the floor wrote {floor_lines} lines, the load {loaded}: not the same work")
    floor, bare_floor, ours, again = (statistics.median(v) for v in (floor_s, bare_s, load_s, reload_s))
    report("import_bench", {
        "lines_in_export": summary.lines,
        "lines_loaded": loaded,
        "generate_s": round(generate_s, 2),
        "repeats": args.repeat,
        "load_average_1min": [round(v, 2) for v in load_averages],  # before, then after each repeat
        "floor_s_median": round(floor, 2),
        "floor_unindexed_s_median": round(bare_floor, 2),
        "load_s_median": round(ours, 2),
        "ratio_to_floor": round(ours / floor, 2),
        "ratio_to_unindexed_floor": round(ours / bare_floor, 2),
        "reload_s_median": round(again, 2),
        "reload_ratio_to_floor": round(again / floor, 2),
        "reload_ratio_to_load": round(again / ours, 2),
        "lines_per_s_median": round(loaded / ours),
        "floor_peak_rss_mb": round(max(floor_mb), 1),
        "floor_unindexed_peak_rss_mb": round(max(bare_mb), 1),
        "load_peak_rss_mb": round(max(load_mb), 1),
        "reload_peak_rss_mb": round(max(reload_mb), 1),
        "floor_s_runs": [round(v, 2) for v in floor_s],
        "floor_unindexed_s_runs": [round(v, 2) for v in bare_s],
        "load_s_runs": [round(v, 2) for v in load_s],
        "reload_s_runs": [round(v, 2) for v in reload_s],
        "target_ratio_to_floor": 1.5,
        "target_peak_rss_mb": 100 if args.lines <= 100_000 else 150,
    })


if __name__ == "__main__":
    main()
