"""Dashboard (SPEC §12): tiles that lead to the screens behind them, and a chart of amounts
posted per month."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.widgets import Static

from cw_tui.rules.words import plural
from cw_tui.screens.base import AreaScreen
from cw_tui.services import reconciliation
from cw_tui.services.status import dashboard_figures
from cw_tui.services.system_log import Category
from cw_tui.tasks import run_service
from cw_tui.widgets.tiles import Tile

TILES = (
    ("last-sync", "Last Sync to PSA", "runs"),
    ("last-orgs", "Last Organizations Sync", "mapping:organizations"),
    ("orgs", "Organizations", "mapping:organizations"),
    ("products", "Products", "mapping:products"),
    ("lines", "Invoice lines", "mapping:invoices"),
    ("amounts", "Posted vs loaded", "reconciliation"),
    ("daily", "Automated Daily Sync", "settings:configuration"),
    ("errors", "Errors (30d)", "logs:ERROR"),
)


def local_time(text: str | None, clock_now: datetime) -> str:
    if not text:
        return "never"
    moment = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M")


def money(value: Decimal) -> str:
    return f"{value:,.2f}"


class DashboardScreen(AreaScreen):
    AREA = "dashboard"
    AUTO_FOCUS = "Tile"  # enter opens the screen behind it at once
    BINDINGS = [Binding("ctrl+r", "reload", "Refresh", id="dashboard.refresh")]
    # four tiles a row need about 30 columns each; below 120 columns, two a row
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]

    def compose_area(self) -> ComposeResult:
        with VerticalScroll():
            with Grid(classes="tiles"):
                for tile_id, title, target in TILES:
                    yield Tile(title, target=target, id=f"tile-{tile_id}")
            yield Static("Amounts posted per month", classes="chart-title")
            yield Static("", id="chart")

    def on_mount(self) -> None:
        self.refresh_data()

    def refresh_data(self) -> None:
        self._load()

    def action_reload(self) -> None:
        self.refresh_data()

    def _load(self) -> None:
        store, now = self.app.store, self.app.now()  # type: ignore[attr-defined]
        def figures() -> dict[str, Any]:
            return {**dashboard_figures(store, now), "reconciliation": reconciliation.last_summary(store)}

        run_service(self, "Reading the dashboard", figures, category=Category.SYNC, done=self._show, group="dashboard")

    def _show(self, f: dict[str, Any]) -> None:
        now = self.app.now()  # type: ignore[attr-defined]
        tile = lambda name: self.query_one(f"#tile-{name}", Tile)  # noqa: E731
        tile("last-sync").set(local_time(f["last_sync_to_psa"], now), "last post · enter: runs")
        tile("last-orgs").set(local_time(f["last_organizations_sync"], now), "from ConnectWise")
        orgs, products = f["organizations"], f["products"]
        tile("orgs").set(f"{orgs['mapped']:,}/{orgs['total']:,} mapped",
                         f"{orgs['unmapped']:,} unmapped · {orgs['excluded']:,} excluded",
                         "green" if orgs["total"] and not orgs["unmapped"] else "")
        tile("products").set(f"{products['mapped']:,}/{products['total']:,} mapped", f"{products['unmapped']:,} unmapped",
                             "green" if products["total"] and not products["unmapped"] else "")
        latest = f["periods"][0] if f["periods"] else None
        if latest:
            tile("lines").title = f"Invoice lines {latest['period']}"
            tile("lines").set(f"{latest['synced']:,}/{latest['lines']:,} synced · {plural(latest['error'], 'error')}",
                              f"{latest['not_synced']:,} not synced · {latest['unmapped']:,} unmapped",
                              "red" if latest["error"] else "")
        else:
            tile("lines").set("none loaded", "enter: Invoices")
        amounts = f["amounts"]
        # the screen behind it: Reconciliation (Platform invoiced, posted, ConnectWise now)
        last = f.get("reconciliation")
        if last is None:
            note, note_style, tone = "not reconciled yet · enter", "dim", ""
        elif last.mismatches:
            note = f"{last.period}: {plural(last.mismatches, 'mismatch', 'mismatches')} in ConnectWise"
            note_style, tone = "bold red", "red"
        else:
            note, note_style, tone = f"{last.period} reconciled: no mismatches", "green", ""
        if amounts:
            main = max(amounts, key=lambda c: amounts[c]["loaded"])
            others = len(amounts) - 1
            tile("amounts").set(f"{main} {money(amounts[main]['posted'])}",
                                f"of {money(amounts[main]['loaded'])}"
                                + (f" (+{plural(others, 'other currency', 'other currencies')})" if others else ""),
                                tone, note, note_style)
        else:
            tile("amounts").set("—", "nothing loaded", tone, note, note_style)
        daily = f["daily_sync"]
        tile("daily").set("On" if daily["enabled"] else "Off",
                          f"next run {local_time(daily['next_run'], now)}" if daily["enabled"] else "enter: Settings",
                          "green" if daily["enabled"] else "")
        tile("errors").set(f"{f['errors_30d']:,}", plural(f["warnings_30d"], "warning"), "red" if f["errors_30d"] else "")
        self.query_one("#chart", Static).update(self._chart(f["posted_per_month"]))

    def _chart(self, per_month: list[tuple[str, dict[str, Decimal]]]) -> Text:
        if not per_month:
            return Text("No invoice lines loaded yet.", style="dim")
        totals: dict[str, Decimal] = {}
        for _, amounts in per_month:
            for currency, amount in amounts.items():
                totals[currency] = totals.get(currency, Decimal(0)) + amount
        if not totals:
            return Text("Nothing posted yet: the chart fills in as periods are synced.", style="dim")
        main = max(totals, key=lambda c: totals[c])
        peak = max((a.get(main, Decimal(0)) for _, a in per_month), default=Decimal(0)) or Decimal(1)
        width = max(10, min(50, self.size.width - 40))
        text = Text()
        for period, amounts in per_month[-15:]:
            value = amounts.get(main, Decimal(0))
            bar = int(width * value / peak) if value > 0 else 0
            text.append(f"{period} ")
            text.append("█" * bar, style="bold green")
            text.append(f" {main} {money(value)}")
            others = [f"{c} {money(v)}" for c, v in sorted(amounts.items()) if c != main]
            if others:
                text.append("  (" + ", ".join(others) + ")", style="dim")
            text.append("\n")
        return text

    @on(Tile.Opened)
    def _open(self, event: Tile.Opened) -> None:
        self.app.open_target(event.tile.target)  # type: ignore[attr-defined]
