"""Startup to first paint: from starting the process to the first screen painted.

    python benchmarks/startup_bench.py [--repeat 11] [--importtime]

Each run is a fresh Python process (imports included) that starts cw-tui the way the `cw-tui`
command does (the console script's `cw_tui.cli.main`, `--db` a store with two months of demo
data), renders headless and reports the moment the first screen has been laid out and painted
(Textual's Ready). Two starts: the first one (no credentials: Settings) and a configured one
(the Dashboard). The floor, timed the same way in the same run and interleaved with them: a bare
Textual app with a header, tabs, a form (labels, inputs, a select, buttons) and a footer, and
nothing of cw-tui. Medians and p95 (nearest rank) of the repeats, and each start's median as a
ratio to the floor's. Every process reads its bytecode from a cache the run's first
(untimed) round writes, as an installed package does (pip compiles it): with
PYTHONDONTWRITEBYTECODE set, as here, an editable checkout would otherwise compile cw-tui's
modules from source at every start while Textual's come compiled. --importtime also prints where the configured start's imports go
(`python -X importtime`, self time summed by top-level package).
Targets: <= 1 s (issue 5); within 1.3x of the bare app (issue 18).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import report

CHILD = r"""
import sys, time
from cw_tui.cli import main  # what the `cw-tui` console script runs
import cw_tui.app


class Measured(cw_tui.app.CwTuiApp):
    def on_ready(self) -> None:
        # Textual posts Ready right after the first screen's first compositor refresh
        print(time.monotonic(), type(self.screen).__name__, flush=True)
        # not at once: an exit while the hidden tabs still mount fails their Selects (and the
        # exit code); what comes after the first paint is not timed
        self.set_timer(0.3, self.exit)

    def run(self, **options):
        return super().run(headless=True, size=(100, 30))


cw_tui.app.CwTuiApp = Measured  # the class `cw-tui` (cmd_app) starts, looked up when it starts
raise SystemExit(main(["--db", sys.argv[1]]))
"""

FLOOR = r"""
import time
from textual.app import App
from textual.containers import Vertical
from textual.widgets import Button, Footer, Header, Input, Label, Select, TabbedContent, TabPane


class Bare(App):
    BINDINGS = [("ctrl+q", "quit", "Quit")]

    def compose(self):
        yield Header()
        with TabbedContent():
            with TabPane("Authentication"):
                with Vertical():
                    for name in ("API URL", "Company ID", "Public Key", "Private Key", "Client ID"):
                        yield Label(name)
                        yield Input(placeholder=name)
                    yield Select([("Monthly", 1), ("Yearly", 2)], prompt="Billing")
                    yield Button("Test Connection")
                    yield Button("Save", variant="primary")
            with TabPane("Configuration"):
                yield Label("Configuration")
        yield Footer()

    def on_ready(self) -> None:
        print(time.monotonic(), "Bare", flush=True)
        self.exit()


Bare().run(headless=True, size=(100, 30))
"""


def _first_paint(code: str, args: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                         check=True).stdout.split()
    return float(out[0]) - started, out[1]


def p95(values: list[float]) -> float:
    """Nearest rank: with fewer than 20 repeats, the slowest."""
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def import_costs(db: Path, env: dict[str, str], top: int = 12) -> list[tuple[str, float]]:
    """Self import time (ms) by top-level package (cw_tui by subpackage) of one configured start."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", CHILD, str(db)], capture_output=True, text=True,
                         env=env, check=True).stderr
    costs: dict[str, float] = {}
    for line in err.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line[len("import time:"):].split("|")
        parts = name.strip().split(".")
        group = ".".join(parts[:2]) if parts[0] == "cw_tui" else parts[0]
        costs[group] = costs.get(group, 0.0) + int(self_us) / 1000
    return sorted(costs.items(), key=lambda item: -item[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--importtime", action="store_true", help="also print where the imports' time goes")
    args = parser.parse_args()
    from cw_tui.platform.demo_export import write_demo_data
    from cw_tui.platform.importer import load_invoices
    from cw_tui.rules.charge_dates import ChargeDateRules
    from cw_tui.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "export"
        write_demo_data(folder, seed=7, months=2, end_month="2026-10")
        db = Path(tmp) / "bench.sqlite3"
        with open_store(db) as store:
            load_invoices(store, folder, ["2026-09", "2026-10"], ChargeDateRules.defaults())
        from cw_tui.services import settings
        from cw_tui.services.credentials import Credentials, save

        configured_dir = Path(tmp) / "configured"
        os.environ["CW_TUI_CONFIG_DIR"] = str(configured_dir)
        save(Credentials("http://127.0.0.1:9", "sandbox", "public-key", "private-key-1234", "client-id-1234"))
        configured_db = Path(tmp) / "configured.sqlite3"
        shutil.copy(db, configured_db)
        with open_store(configured_db) as store:
            config = settings.load_configuration(store)
            config.agreement_type = settings.AgreementTypeChoice(id=2, name="Cloud Services")
            settings.save_configuration(store, config)
        figures: dict = {"runs": args.repeat}
        cases = (("bare_textual", FLOOR, [], Path(tmp) / "fresh"), ("first_start", CHILD, [str(db)], Path(tmp) / "fresh"),
                 ("configured", CHILD, [str(configured_db)], configured_dir))
        times: dict[str, list[float]] = {case: [] for case, *_ in cases}
        bytecode = {"PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache")}
        base_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | bytecode
        for round_ in range(args.repeat + 1):  # interleaved: the floor and ours see the same machine
            for case, code, child_args, config_dir in cases:
                elapsed, screen = _first_paint(code, child_args, {**base_env, "CW_TUI_CONFIG_DIR": str(config_dir)})
                if round_:  # the first round writes the bytecode
                    times[case].append(elapsed)
                figures[f"{case}_screen"] = screen
        for case, *_ in cases:
            figures[f"{case}_first_paint_s_median"] = round(statistics.median(times[case]), 3)
            figures[f"{case}_first_paint_s_p95"] = round(p95(times[case]), 3)
        floor = figures["bare_textual_first_paint_s_median"]
        for case in ("first_start", "configured"):
            figures[f"{case}_ratio_to_bare"] = round(figures[f"{case}_first_paint_s_median"] / floor, 2)
            figures[f"{case}_p95_ratio_to_bare_p95"] = round(figures[f"{case}_first_paint_s_p95"]
                                                              / figures["bare_textual_first_paint_s_p95"], 2)
        figures["load_average_1m"] = round(os.getloadavg()[0], 2)  # the others running while it measured
        if args.importtime:
            env = {**base_env, "CW_TUI_CONFIG_DIR": str(configured_dir)}
            figures["configured_import_ms_by_package"] = {name: round(ms, 1) for name, ms in import_costs(configured_db, env)}
    report("startup_bench", {**figures, "target_s": 1.0, "target_ratio_to_bare": 1.3})


if __name__ == "__main__":
    main()
