"""Each benchmark runs end to end at a tiny size, so that a refactor cannot leave one broken
until the next time someone measures. Only that it runs and reports its figures is checked:
timings are the benchmarks' business, never a test's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

RUNS = {
    "import_bench": (["--lines", "300", "--repeat", "1"], "lines_per_s"),
    "grid_bench": (["--lines", "500", "--repeat", "2"], "bulk_update_50k_ms_p95"),
    "sync_bench": (["--lines", "20", "--latency-ms", "1"], "ratio_to_ideal"),
    "startup_bench": (["--repeat", "1"], "configured_first_paint_s"),
    "db_copy_bench": (["--lines", "200", "--repeat", "1"], "full_sqlite_to_sqlite_ratio_to_floor"),
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_benchmark_runs_and_reports(name: str, tmp_path: Path) -> None:
    args, figure = RUNS[name]
    env = {**os.environ, "CW_TUI_BENCH_RESULTS": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    figures = json.loads((tmp_path / f"{name}.json").read_text())
    assert figures["benchmark"] == name
    assert any(key.startswith(figure) for key in figures), sorted(figures)


def test_sync_bench_runs_on_a_throw_away_postgresql_server(tmp_path: Path) -> None:
    """`--db postgres-temp`: the server the suite starts (tests/pg_server.py), a database per repeat."""
    from tests.pg_server import ServerUnavailable, find_bin_dir

    try:
        find_bin_dir()
    except ServerUnavailable as error:
        pytest.skip(str(error))
    env = {**os.environ, "CW_TUI_BENCH_RESULTS": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.sync_bench", "--lines", "20", "--latency-ms", "1",
                           "--db", "postgres-temp", "--repeat", "2"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    figures = json.loads((tmp_path / "sync_bench_pg.json").read_text())
    assert figures["backend"] == "postgresql" and figures["repeats"] == 2 and figures["lines_posted"] == 20
    assert {"ratio_to_ideal", "ratio_to_floor", "floor_s", "api_calls_per_line"} <= set(figures)
