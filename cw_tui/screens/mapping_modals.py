"""The modals of the Mapping page: Load Products, Load Invoice Lines, the auto-match
confirmation and the sync plan (SPEC §5.2, §5.3, §15)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, DataTable, Label, Select, Static


class _Modal(ModalScreen):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    _Modal { align: center middle; }
    _Modal > Vertical { width: 76; max-width: 96%; height: auto; max-height: 92%; border: thick $accent; background: $surface; padding: 0 1; }
    _Modal .title { text-style: bold; padding: 0 0 1 0; }
    _Modal .buttons { height: auto; align-horizontal: right; padding-top: 1; }
    _Modal .buttons Button { margin-left: 1; }
    _Modal DataTable { height: auto; max-height: 14; }
    """

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class LoadProductsModal(_Modal):
    """Returns the number of months, or None."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Load Products", classes="title")
            yield Static("Select the time period to load invoice-related offers.")
            yield Select([(f"Last {n} month{'s' if n > 1 else ''}", n) for n in range(1, 13)], value=3,
                         allow_blank=False, id="months")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Load", id="load", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#load", Button).focus()

    @on(Button.Pressed, "#load")
    def _load(self) -> None:
        self.dismiss(int(self.query_one("#months", Select).value))  # type: ignore[arg-type]


class LoadInvoicesModal(_Modal):
    """Returns ["current", "previous"] (either or both), or None."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Load Invoice Lines", classes="title")
            yield Static("Select which periods to load invoice lines for.")
            yield Checkbox("Current Month", value=False, id="current")
            yield Checkbox("Previous Month", value=True, id="previous")
            yield Static("", id="problem")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Load", id="load", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#load", Button).focus()

    @on(Button.Pressed, "#load")
    def _load(self) -> None:
        chosen = [name for name in ("current", "previous") if self.query_one(f"#{name}", Checkbox).value]
        if not chosen:
            self.query_one("#problem", Static).update(Text("Choose at least one month.", style="bold red"))
            return
        self.dismiss(chosen)


@dataclass
class Matches:
    organizations: list[tuple[str, str, int, str]]
    offers: list[tuple[str, str, int, str]]


class AutomapModal(_Modal):
    """Shows exact, unique matches; returns "map", "map_include" or None."""

    def __init__(self, matches: Matches) -> None:
        super().__init__()
        self.matches = matches

    def compose(self) -> ComposeResult:
        m = self.matches
        with Vertical():
            yield Label(f"Auto-match: {len(m.organizations)} organizations and {len(m.offers)} offers", classes="title")
            yield Static("Exact matches by normalised name or identifier, only where ConnectWise has exactly one. "
                         "Nothing is mapped until you confirm.")
            table = DataTable(cursor_type="row", zebra_stripes=True)
            table.add_columns("Platform", "ConnectWise", "ID")
            for _, name, cw_id, cw_name in m.organizations[:200]:
                table.add_row(name, cw_name, str(cw_id))
            for _, name, cw_id, cw_name in m.offers[:200]:
                table.add_row(name, cw_name, str(cw_id))
            yield table
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Map", id="map")
                yield Button("Map and include in sync", id="map_include", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#map_include", Button).focus()

    @on(Button.Pressed, "#map, #map_include")
    def _chosen(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)


class SyncPlanModal(_Modal):
    """The plan of a sync (a dry run): confirm to post. Returns True or None."""

    def __init__(self, plan) -> None:  # noqa: ANN001 - a sync plan
        super().__init__()
        self.plan = plan

    def compose(self) -> ComposeResult:
        p = self.plan
        totals = p.totals()  # exact Decimals: the grand total is summed before rounding
        with Vertical():
            yield Label(f"Sync {p.period} to ConnectWise: the plan", classes="title")
            yield Static(
                f"{len(p.creates)} additions to create, {len(p.updates)} to update, {len(p.cancels)} to cancel, "
                f"{len(p.unchanged)} unchanged; {len(p.new_agreements)} new agreements; "
                f"{len(p.skips)} lines skipped (not mapped or excluded)."
            )
            table = DataTable(cursor_type="row", zebra_stripes=True)
            table.add_column("Customer", width=28)
            table.add_column("Cur", width=4)
            table.add_column("Create", width=6)
            table.add_column("Update", width=6)
            table.add_column("Cancel", width=6)
            table.add_column("Amount", width=14)
            by_currency: dict[str, Decimal] = {}
            for (customer, currency), total in totals.items():
                table.add_row(customer[:28], currency, str(total.creates), str(total.updates), str(total.cancels),
                              Text(f"{total.amount:,.2f}", justify="right"))
                by_currency[currency] = by_currency.get(currency, Decimal(0)) + total.amount
            with VerticalScroll():
                yield table
            yield Static("Total: " + (", ".join(f"{c} {a:,.2f}" for c, a in sorted(by_currency.items())) or "nothing to post"))
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Post to ConnectWise", id="post", variant="primary",
                             disabled=not (p.creates or p.updates or p.cancels or p.unchanged))

    def on_mount(self) -> None:
        self.query_one("#post", Button).focus()

    @on(Button.Pressed, "#post")
    def _post(self) -> None:
        self.dismiss(True)
