"""The Mapping page (SPEC §5): Organizations, Products and Invoices, each one SQL-paged
grid; the tabs' actions are in their own modules."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Label, ProgressBar, Select, Static, TabbedContent, TabPane

from cw_tui.rules.words import plural
from cw_tui.screens.base import guarded
from cw_tui.screens.mapping.base import PeriodSelect
from cw_tui.screens.mapping.best_practices import BestPractices
from cw_tui.screens.mapping.cells import (
    agreement_cell,
    amount,
    click_to_select,
    dated,
    error_reason,
    mapping_badge,
    psa_status,
    status_dot,
)
from cw_tui.screens.mapping.editing import EditActions
from cw_tui.screens.mapping.invoices import InvoicesActions
from cw_tui.screens.mapping.organizations import OrganizationsActions
from cw_tui.screens.mapping.products import ProductsActions
from cw_tui.store import queries
from cw_tui.store.grid import GridSource, Page
from cw_tui.store.grid_sources import invoices_source, organizations_source, products_source
from cw_tui.widgets.grid import SqlGrid
from cw_tui.widgets.tabs import QuickTabbedContent


class MappingScreen(OrganizationsActions, ProductsActions, InvoicesActions, EditActions):
    AREA = "mapping"
    _agreement_type: tuple[int, str] | None = None  # the configured one, as the Invoices grid shows it
    AUTO_FOCUS = "GridTable"  # the shown tab's grid: its keys work at once
    BINDINGS = [
        # first: on the Invoices tab (only there) its hint fits beside the grid's at 80 columns
        Binding("v", "line_detail", "Line detail", id="mapping.line_detail"),
        Binding("o", "sync_organizations", "Sync orgs", id="mapping.sync_organizations"),
        Binding("a", "automatch", "Auto-match", id="mapping.automatch"),
        Binding("x", "toggle_excluded", "Include/exclude", id="mapping.toggle_excluded"),
        Binding("p", "load_products", "Load products", id="mapping.load_products"),
        Binding("i", "load_invoices", "Load invoices", id="mapping.load_invoices"),
        Binding("P", "sync_invoices", "Sync to PSA", id="mapping.sync_invoices"),
        Binding("e", "edit", "Edit", id="mapping.edit"),
        Binding("delete", "unmap", "Unmap", id="mapping.unmap"),
        Binding("E", "bulk_update", "Bulk update", id="mapping.bulk_update"),
        Binding("y", "sync_row", "Sync line", id="mapping.sync_row", show=False),
        Binding("b", "best_practices", "Best practices", id="mapping.best_practices"),
        Binding("m", "choose_period", "Month", id="mapping.choose_period"),
        Binding("right_square_bracket", "tab(1)", "Next tab", id="mapping.next_tab", show=False),
        Binding("left_square_bracket", "tab(-1)", "Previous tab", id="mapping.previous_tab", show=False),
        Binding("ctrl+r", "reload", "Refresh", id="mapping.refresh"),
        # v on the Organizations tab; not in the key bar, which has no room left there at 80 columns
        Binding("v", "organization_detail", "Organization detail", id="mapping.organization_detail", show=False),
    ]
    TAB_ACTIONS = {
        "sync_organizations": "organizations", "automatch": "organizations",
        "load_products": "products", "load_invoices": "invoices", "sync_invoices": "invoices",
    }

    def compose_area(self) -> ComposeResult:
        with QuickTabbedContent(initial="organizations"):
            with TabPane("Organizations", id="organizations"):
                with Horizontal(classes="toolbar"):
                    yield Button("Sync Organizations", id="sync-organizations", compact=True)
                    yield Button("Auto-match", id="automatch", compact=True)
                    yield Button("Include/Exclude", id="toggle-excluded", compact=True)
                    yield Static("", classes="busy", id="organizations-busy")
                yield SqlGrid(organizations_source(), id="grid-organizations", formatters={
                    "status": status_dot, "psa_name": click_to_select, "mapping": mapping_badge},
                    summary=self._org_summary)
            with TabPane("Products", id="products"):
                with Horizontal(classes="toolbar"):
                    yield Button("Load Products", id="load-products", compact=True)
                    yield Static("", classes="busy", id="products-busy")
                yield SqlGrid(products_source(), id="grid-products", formatters={
                    "psa_name": click_to_select, "mapping": mapping_badge}, summary=self._product_summary)
            with TabPane("Invoices", id="invoices"):
                with Horizontal(classes="period-bar"):
                    yield Label("Show invoices")
                    # the loaded months only: no blank choice once one is loaded (PeriodSelect)
                    yield PeriodSelect([], id="period", compact=True, prompt="none loaded")
                    yield Static("none loaded (i: Load Invoices)", id="no-periods")
                    yield Button("Load Invoices", id="load-invoices", compact=True)
                    yield Button("Sync Invoices to PSA", id="sync-invoices", compact=True, variant="primary")
                    yield Button("💡", id="best-practices", compact=True, tooltip="Best Practices")
                    yield Static("", classes="busy", id="invoices-busy")
                yield ProgressBar(id="sync-progress", show_eta=False)  # its own line, shown while a sync posts
                yield SqlGrid(self._invoices_source(""), id="grid-invoices", formatters={
                    "quantity": amount, "unit_price": amount, "unit_cost": amount, "total": amount,
                    "charge_start": dated, "charge_end": dated, "mapping": mapping_badge, "sync": psa_status,
                    "psa_org": click_to_select, "psa_product": click_to_select, "psa_agreement": agreement_cell,
                    "error": error_reason}, summary=self._line_summary)

    def on_mount(self) -> None:
        self._fill_periods()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`v` is an invoice line's detail on the Invoices tab, an organization's on the Organizations tab."""
        if action in ("line_detail", "organization_detail"):
            contents = self._tabbed_content()
            return contents is not None and contents.active == ("invoices" if action == "line_detail" else "organizations")
        return super().check_action(action, parameters)

    _tabbed: TabbedContent | None = None

    def _tabbed_content(self) -> TabbedContent | None:
        """The page's tabs, found once: the key bar asks on every focus change, and a query
        walked the whole page each time."""
        if self._tabbed is None:
            found = self.query(TabbedContent)
            self._tabbed = found.first() if found else None
        return self._tabbed

    def refresh_data(self) -> None:
        self._fill_periods()
        lines = self.query_one("#grid-invoices", SqlGrid)
        before = self._agreement_type
        source = self._invoices_source(lines.source.params[0] if lines.source.params else "")
        if self._agreement_type != before:  # Settings changed the Agreement Type: "New agreement (<type>)"
            lines.source = source  # same columns: the search, filters and marks stay
        for grid in self.query(SqlGrid):
            grid.reload()

    @guarded
    def action_reload(self) -> None:
        self.refresh_data()

    def _fill_periods(self) -> None:
        periods = queries.loaded_periods(self.app.store)  # type: ignore[attr-defined]
        select = self.query_one("#period", PeriodSelect)
        current = select.value
        select.set_periods(periods)
        if periods:
            select.value = current if current in periods else periods[0]
        self.query_one("#no-periods", Static).display = not periods

    @guarded
    def action_choose_period(self) -> None:
        """`m`: the month selector, open, from anywhere on the page."""
        self.show_tab("invoices")
        select = self.query_one("#period", PeriodSelect)
        if not select.display:
            self.app.notify("No invoice lines are loaded yet: i loads a month.", severity="warning")
            return
        select.focus()
        select.action_show_overlay()

    @on(Select.Changed, "#period")
    def _period(self, event: Select.Changed) -> None:
        grid = self.query_one("#grid-invoices", SqlGrid)
        # the list of periods is refilled whenever the screen comes back (e.g. from a modal):
        # only a different period resets the grid's search, filters and marks
        if isinstance(event.value, str) and grid.source.params != (event.value,):
            grid.set_source(self._invoices_source(event.value))

    def _invoices_source(self, period: str) -> GridSource:
        from cw_tui.services import settings

        chosen = settings.load_configuration(self.app.store).agreement_type  # type: ignore[attr-defined]
        self._agreement_type = (chosen.id, chosen.name) if chosen else None
        return invoices_source(period, self._agreement_type)

    def _line_summary(self, page: Page) -> str:
        return f"Showing {len(page.rows):,} of {plural(page.total, 'invoice line')}"

    @guarded
    def action_tab(self, step: int) -> None:
        tabs = ["organizations", "products", "invoices"]
        content = self.query_one(TabbedContent)
        self.show_tab(tabs[(tabs.index(content.active) + step) % len(tabs)])

    @guarded
    def action_best_practices(self) -> None:
        self.app.push_screen(BestPractices())

    def _org_summary(self, page) -> list[str]:
        counts = queries.organization_figures(self.app.store)  # type: ignore[attr-defined]
        return _summaries(f"Showing {len(page.rows):,} of {plural(page.total, 'organization')}", "organizations", counts)

    def _product_summary(self, page) -> list[str]:
        counts = queries.offer_figures(self.app.store)  # type: ignore[attr-defined]
        return _summaries(f"Showing {len(page.rows):,} of {plural(page.total, 'product')}", "products", counts)


def _summaries(showing: str, what: str, counts: tuple[int, int]) -> list[str]:
    """The summary as SPEC words it, and shorter for 80 columns (the grid takes the longest that fits)."""
    figures = f"Mapped: {counts[1]:,} | Unmapped: {counts[0] - counts[1]:,}"
    return [f"{showing} · Total {what}: {counts[0]:,} | {figures}", f"{showing} · Total: {counts[0]:,} | {figures}"]
