"""Shared bits of the benchmarks: results are printed and written as JSON."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
from pathlib import Path

# CW_TUI_BENCH_RESULTS: where the JSON goes (the smoke test keeps it out of the checkout)
RESULTS = Path(os.environ.get("CW_TUI_BENCH_RESULTS") or Path(__file__).parent / "results")


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def report(name: str, figures: dict) -> None:
    figures = {"benchmark": name, "python": platform.python_version(), "machine": platform.machine(), **figures}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2))
    for key, value in figures.items():
        print(f"{key:>24}: {value}")
    print(f"{'written to':>24}: {path}")
