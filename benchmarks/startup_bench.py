"""Startup to first paint: from starting the process to the first screen painted.

    python benchmarks/startup_bench.py [--repeat 7]

Each run is a fresh Python process (imports included) on a store with a month of demo data;
it renders headless and reports the moment the first screen has been laid out and painted.
The floor, timed the same way in the same run: a bare Textual app with a header, tabs, a form
(labels, inputs, a select, buttons) and a footer, and nothing of cw-tui.
Targets: <= 1 s (issue 5); within 1.3x of the bare app (issue 18).
"""

from __future__ import annotations

import argparse
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
from cw_tui.app import CwTuiApp
from cw_tui.store import open_store


class Measured(CwTuiApp):
    def on_ready(self) -> None:
        # Textual posts Ready right after the first screen's first compositor refresh
        print(time.monotonic(), type(self.screen).__name__, flush=True)
        self.exit()


with open_store(sys.argv[1]) as store:
    Measured(store, watch_daily_sync=False).run(headless=True, size=(100, 30))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
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
        import os

        from cw_tui.services import settings
        from cw_tui.services.credentials import Credentials, save

        configured_dir = Path(tmp) / "configured"
        os.environ["CW_TUI_CONFIG_DIR"] = str(configured_dir)
        save(Credentials("http://127.0.0.1:9", "sandbox", "public-key", "private-key-1234", "client-id-1234"))
        configured_db = Path(tmp) / "configured.sqlite3"
        import shutil

        shutil.copy(db, configured_db)
        with open_store(configured_db) as store:
            config = settings.load_configuration(store)
            config.agreement_type = settings.AgreementTypeChoice(id=2, name="Cloud Services")
            settings.save_configuration(store, config)
        figures: dict = {"runs": args.repeat}
        cases = (("bare_textual", FLOOR, [], Path(tmp) / "fresh"), ("first_start", CHILD, [str(db)], Path(tmp) / "fresh"),
                 ("configured", CHILD, [str(configured_db)], configured_dir))
        times: dict[str, list[float]] = {case: [] for case, *_ in cases}
        for _ in range(args.repeat):  # interleaved: the floor and ours see the same machine
            for case, code, child_args, config_dir in cases:
                elapsed, screen = _first_paint(code, child_args, {**os.environ, "CW_TUI_CONFIG_DIR": str(config_dir)})
                times[case].append(elapsed)
                figures[f"{case}_screen"] = screen
        for case, *_ in cases:
            figures[f"{case}_first_paint_s_median"] = round(statistics.median(times[case]), 3)
            figures[f"{case}_first_paint_s_max"] = round(max(times[case]), 3)
        floor = figures["bare_textual_first_paint_s_median"]
        for case in ("first_start", "configured"):
            figures[f"{case}_ratio_to_bare"] = round(figures[f"{case}_first_paint_s_median"] / floor, 2)
    report("startup_bench", {**figures, "target_s": 1.0, "target_ratio_to_bare": 1.3})


if __name__ == "__main__":
    main()
