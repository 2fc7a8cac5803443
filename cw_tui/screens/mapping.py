"""Mapping (SPEC §5): Organizations, Products and Invoices, each one SQL-paged grid."""

from __future__ import annotations

from decimal import Decimal

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Select, Static, TabbedContent, TabPane

from cw_tui.screens.base import AreaScreen
from cw_tui.services.grid_query import invoices_source, organizations_source, products_source
from cw_tui.services.money import from_micros
from cw_tui.widgets.grid import SqlGrid

BEST_PRACTICES = (
    ("Map organizations and products first", "Unmapped invoice lines cannot be posted."),
    ("Load Products incrementally", "Start with a 1–3 month window."),
    ("Keep organizations current", "Run Sync Organizations after onboarding customers."),
    ("Check for Response Errors", "A Response Error badge means ConnectWise did not answer; retry in a few minutes."),
    ("Post invoices after month-end", "Partial months create reconciliation issues."),
    ("Manage Automated Sync", "Enable it when volume is steady, disable it while remapping."),
    ("Handle multi-org mapping", "When several Platform Organizations map to one ConnectWise company, choose the "
                                 "Agreement for each invoice line yourself."),
    ("Charge End Date", "Without rules or overrides, end dates are set at sync: one-time lines end on the last day of "
                        "their start month; recurring lines are sent without an end date."),
)
STATUS_DOTS = {"Active": "green", "New": "dodger_blue1", "Suspended": "orange1", "Inactive": "grey50"}
BADGES = {"system": ("S", "bold black on #5fafff"), "user": ("U", "bold black on #ffaf00")}


class BestPractices(ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss", "Close")]
    DEFAULT_CSS = """
    BestPractices { align: center middle; }
    BestPractices > Vertical { width: 84; max-width: 95%; height: auto; max-height: 90%; border: thick $accent; background: $surface; padding: 0 1; }
    BestPractices VerticalScroll { height: auto; max-height: 18; }
    BestPractices .item { margin-bottom: 1; }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("💡 Best Practices", style="bold"))
            with VerticalScroll():
                for number, (title, text) in enumerate(BEST_PRACTICES, start=1):
                    yield Static(Text.assemble((f"{number}. {title}\n", "bold"), text), classes="item")
            yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss()


def status_dot(status: str | None) -> Text:
    return Text.assemble(("● ", STATUS_DOTS.get(status or "", "magenta")), status or "")


CENT = Decimal("0.01")


def amount(micros: int | None) -> str:
    """Cents always; more decimals only where the Platform sent them (usage quantities)."""
    if micros is None:
        return ""
    value = from_micros(micros)
    shown = value.quantize(CENT) if value == value.quantize(CENT) else value.normalize()
    return f"{shown:,f}"


def dated(value: str | None) -> Text:
    day, _, badge = (value or "").partition("|")
    if not day:
        return Text("—", style="dim")
    text = Text(day)
    if badge in BADGES:
        letter, style = BADGES[badge]
        text.append(" ")
        text.append(letter, style=style)
    return text


def mapping_badge(value: str | None) -> Text:
    styles = {"Mapped": "green", "mapped": "green", "Unmapped": "yellow", "unmapped": "yellow",
              "excluded": "grey50", "Response Error": "bold red"}
    return Text((value or "").capitalize() if value and value.islower() else (value or ""), style=styles.get(value or "", ""))


def psa_status(value: str | None) -> Text:
    styles = {"synced": "green", "error": "bold red", "not_synced": "", "claimed": "cyan"}
    labels = {"synced": "Synced", "error": "Error", "not_synced": "Not Synced", "claimed": "Posting…"}
    return Text(labels.get(value or "", value or ""), style=styles.get(value or "", ""))


def click_to_select(value: str | None) -> Text:
    return Text(value) if value else Text("Click to select", style="dim italic")


class MappingScreen(AreaScreen):
    AREA = "mapping"
    BINDINGS = [
        Binding("b", "best_practices", "Best practices", id="mapping.best_practices"),
        Binding("ctrl+r", "reload", "Refresh", id="mapping.refresh"),
    ]
    DEFAULT_CSS = """
    MappingScreen TabbedContent { height: 1fr; }
    MappingScreen .period-bar { height: 1; padding: 0 1; }
    MappingScreen .period-bar Select { width: 24; }
    MappingScreen .period-bar Label { padding: 0 1 0 0; }
    """

    def compose_area(self) -> ComposeResult:
        with TabbedContent(initial="organizations"):
            with TabPane("Organizations", id="organizations"):
                yield SqlGrid(organizations_source(), id="grid-organizations", formatters={
                    "status": status_dot, "psa_name": click_to_select, "mapping": mapping_badge},
                    summary=self._org_summary)
            with TabPane("Products", id="products"):
                yield SqlGrid(products_source(), id="grid-products", formatters={
                    "psa_name": click_to_select, "mapping": mapping_badge}, summary=self._product_summary)
            with TabPane("Invoices", id="invoices"):
                with Horizontal(classes="period-bar"):
                    yield Label("Show invoices")
                    yield Select([], id="period", compact=True, prompt="no periods loaded")
                    yield Button("💡 Best Practices", id="best-practices", compact=True)
                yield SqlGrid(invoices_source(""), id="grid-invoices", formatters={
                    "quantity": amount, "unit_price": amount, "unit_cost": amount, "total": amount,
                    "charge_start": dated, "charge_end": dated, "mapping": mapping_badge, "sync": psa_status,
                    "psa_org": click_to_select, "psa_product": click_to_select, "psa_agreement": click_to_select})

    def on_mount(self) -> None:
        self._fill_periods()

    def refresh_data(self) -> None:
        self._fill_periods()
        for grid in self.query(SqlGrid):
            grid.reload()

    def action_reload(self) -> None:
        self.refresh_data()

    def _fill_periods(self) -> None:
        periods = [r[0] for r in self.app.store.db.execute_sql(  # type: ignore[attr-defined]
            "SELECT DISTINCT period FROM invoice_line ORDER BY period DESC LIMIT 15")]
        select = self.query_one("#period", Select)
        current = select.value
        select.set_options([(p, p) for p in periods])
        if periods:
            select.value = current if current in periods else periods[0]

    @on(Select.Changed, "#period")
    def _period(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.query_one("#grid-invoices", SqlGrid).set_source(invoices_source(event.value))

    def show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_best_practices(self) -> None:
        self.app.push_screen(BestPractices())

    @on(Button.Pressed, "#best-practices")
    def _best(self) -> None:
        self.action_best_practices()

    def _org_summary(self, page) -> str:  # noqa: ANN001 - a Page
        counts = self.app.store.db.execute_sql(  # type: ignore[attr-defined]
            "SELECT COUNT(*), COUNT(company_id) FROM organization").fetchone()
        return (f"Showing {len(page.rows):,} of {page.total:,} organizations · Total organizations: {counts[0]:,} | "
                f"Mapped: {counts[1]:,} | Unmapped: {counts[0] - counts[1]:,}")

    def _product_summary(self, page) -> str:  # noqa: ANN001 - a Page
        counts = self.app.store.db.execute_sql(  # type: ignore[attr-defined]
            "SELECT COUNT(*), COUNT(product_id) FROM offer").fetchone()
        return (f"Showing {len(page.rows):,} of {page.total:,} products · Total products: {counts[0]:,} | "
                f"Mapped: {counts[1]:,} | Unmapped: {counts[0] - counts[1]:,}")

