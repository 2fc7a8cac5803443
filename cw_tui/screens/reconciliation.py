"""Reconciliation (SPEC §15, the seed's Step 5 "Validate the sync"; issue 15): pick a month,
read ConnectWise fresh (with progress, in a thread worker), then per customer and currency:
what the Platform invoiced, what cw-tui posted for that month (the journal), what ConnectWise
holds now, and every mismatch with its reason. enter drills down to the Additions and lines
behind a row; ctrl+e exports either grid. Reading ConnectWise writes nothing there: the one
write is the report kept in the database for this screen and the Dashboard."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Label, ProgressBar, Select, Static

from cw_tui.rules.safe_text import safe_text
from cw_tui.rules.words import plural
from cw_tui.screens.base import AreaScreen
from cw_tui.screens.mapping.base import PeriodSelect
from cw_tui.services import reconciliation
from cw_tui.services.system_log import Category
from cw_tui.store import queries
from cw_tui.store.journal_reads import local_with_zone, reconciliation_items_source, reconciliation_source
from cw_tui.tasks import run_service
from cw_tui.widgets.grid import SqlGrid

MISMATCH_STYLE = "bold white on #d70000"
NO_MONTH = "0000-00"  # no month loaded yet: the grid reads an empty report
STATUS_STYLES = {"OK": "green", "ok": "green", "unposted": "bold yellow", "unmapped": "yellow",
                 "excluded": "dim", "not synced yet": "yellow", "error": MISMATCH_STYLE}


def status_badge(text: str, _value: object = None) -> Text:
    """OK in green; a mismatch (its count, or its kind) on red; lines not posted in yellow."""
    style = STATUS_STYLES.get(text)
    if style is None:
        style = MISMATCH_STYLE if text else ""
    return Text(f" {text} " if style == MISMATCH_STYLE else text, style=style)


class ReconciliationScreen(AreaScreen):
    AREA = "dashboard"
    AUTO_FOCUS = "GridTable"
    BINDINGS = [
        Binding("escape", "back", "Back", id="reconciliation.back"),
        Binding("r", "reconcile", "Reconcile", id="reconciliation.run"),
        Binding("m", "choose_period", "Month", id="reconciliation.month"),
    ]

    def _periods(self) -> tuple[list[str], str]:
        """The loaded months, and the one to show: the one shown, else the last reconciled, else the newest."""
        store = self.app.store  # type: ignore[attr-defined]
        periods = queries.loaded_periods(store)
        current = getattr(self, "period", None)
        last = reconciliation.last_period(store)
        chosen = current if current in periods else last if last in periods else periods[0] if periods else NO_MONTH
        return periods, chosen

    def compose_area(self) -> ComposeResult:
        periods, self.period = self._periods()
        with Horizontal(classes="period-bar"):
            yield Label("Month")
            yield PeriodSelect([], id="period", compact=True, prompt="none loaded")
            yield Button("Reconcile (r)", id="reconcile", compact=True)
            yield Static("", id="reconcile-busy")
            yield ProgressBar(id="reconcile-progress", show_eta=False)
        yield Static("", id="reconcile-summary")
        yield SqlGrid(reconciliation_source(self.app.store, self.period), id="reconcile-grid",  # type: ignore[attr-defined]
                      formatters={"status": status_badge},
                      summary=lambda page: f"{plural(page.total, 'row')} · enter: its Additions and lines")

    def on_mount(self) -> None:
        super().on_mount()
        self._fill_periods()
        self._show_summary()

    def refresh_data(self) -> None:
        self._fill_periods()
        self.query_one(SqlGrid).reload()
        self._show_summary()

    def _fill_periods(self) -> None:
        periods, chosen = self._periods()
        select = self.query_one("#period", PeriodSelect)
        with select.prevent(Select.Changed):
            select.set_periods(periods)
            if periods:
                select.value = chosen

    @on(Select.Changed, "#period")
    def _period(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.period:
            self.period = event.value
            self.query_one(SqlGrid).set_source(reconciliation_source(self.app.store, self.period))  # type: ignore[attr-defined]
            self._show_summary()

    def _show_summary(self, summary: reconciliation.Summary | None = None) -> None:
        summary = summary or reconciliation.period_summary(self.app.store, self.period)  # type: ignore[attr-defined]
        line = self.query_one("#reconcile-summary", Static)
        if summary is None:
            line.update(Text(f"{self.period if self.period != NO_MONTH else 'No month'} not reconciled yet: press r. "
                             "ConnectWise is only read.", style="dim"))
            return
        text = Text()
        if summary.mismatches:
            text.append(f" {plural(summary.mismatches, 'mismatch', 'mismatches')} ", style=MISMATCH_STYLE)
        else:
            text.append("No mismatches", style="bold green")
        text.append(f" · {summary.period} reconciled {local_with_zone(summary.at)} by {safe_text(summary.who) or '?'}"
                    f" · {plural(summary.additions_read, 'Addition')} read in ConnectWise")
        line.update(text)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_choose_period(self) -> None:
        select = self.query_one("#period", PeriodSelect)
        select.focus()
        select.expanded = True

    @on(Button.Pressed, "#reconcile")
    def _pressed(self) -> None:
        self.action_reconcile()

    def action_reconcile(self) -> None:
        import asyncio

        period = self.query_one("#period", PeriodSelect).value
        if not isinstance(period, str) or period == NO_MONTH:
            self.app.notify("Load invoice lines first (Mapping → Invoices).", severity="warning")
            return
        button = self.query_one("#reconcile", Button)
        if button.disabled:
            return  # one reconciliation at a time
        store, now = self.app.store, self.app.now()  # type: ignore[attr-defined]
        bar = self.query_one("#reconcile-progress", ProgressBar)
        busy = self.query_one("#reconcile-busy", Static)
        button.disabled = True
        bar.update(total=None, progress=0)
        bar.add_class("-running")
        busy.update(f"Reading ConnectWise for {period}…")

        def progress(done: int, total: int) -> None:
            self.app.call_from_thread(bar.update, total=total, progress=done)
            self.app.call_from_thread(busy.update, f"Reading ConnectWise: agreement {done:,} of {total:,}")

        def job():
            from cw_tui.services import credentials as credential_store
            from cw_tui.services.connectwise import ConnectWiseClient

            async def go():
                async with ConnectWiseClient(credential_store.current()) as client:
                    return await reconciliation.reconcile_period(store, client, period, now=now, progress=progress)
            try:
                return asyncio.run(go())
            finally:
                self.app.call_from_thread(self._idle)

        def done(summary: reconciliation.Summary) -> None:
            for below in self.app.screen_stack:  # the Dashboard's tile tells the new one when it is back
                if isinstance(below, AreaScreen) and below is not self:
                    below.stale = True
            if summary.period == self.period:
                self._show_summary(summary)
                self.query_one(SqlGrid).reload()
            self.app.notify(f"Reconciled {summary.period}: " + (
                plural(summary.mismatches, "mismatch", "mismatches") if summary.mismatches else "no mismatches"),
                severity="warning" if summary.mismatches else "information", markup=False)

        run_service(self, "Reconciliation", job, category=Category.SYNC, done=done, group="reconcile")

    def _idle(self) -> None:
        self.query_one("#reconcile", Button).disabled = False
        self.query_one("#reconcile-progress", ProgressBar).remove_class("-running")
        self.query_one("#reconcile-busy", Static).update("")

    @on(SqlGrid.RowChosen, "#reconcile-grid")
    def _chosen(self, event: SqlGrid.RowChosen) -> None:
        store, period = self.app.store, self.period  # type: ignore[attr-defined]
        run_service(self, "Reading the reconciliation", lambda: reconciliation.row(store, period, event.key),
                    category=Category.SYNC, group="reconcile-row",
                    done=lambda row: row and self.app.push_screen(ReconciliationItemsScreen(row)))


class ReconciliationItemsScreen(AreaScreen):
    """The Additions and lines behind one customer and currency of the last reconciliation."""

    AREA = "dashboard"
    AUTO_FOCUS = "GridTable"
    BINDINGS = [Binding("escape", "back", "Back", id="reconciliation_items.back")]

    def __init__(self, row: dict) -> None:
        super().__init__()
        self.row = row

    def compose_area(self) -> ComposeResult:
        r = self.row
        title = Text.assemble((safe_text(r["customer"]), "bold"), f" · {r['period']} · {safe_text(r['currency'])} · ",
                              status_badge(r["status"]), (" · esc: back", "dim"))
        title.append(f"\nInvoiced {reconciliation.cents(r['invoiced'])} ({plural(r['invoiced_lines'], 'line')}) · "
                     f"posted {reconciliation.cents(r['posted'])} ({plural(r['posted_count'], 'Addition')}) · "
                     f"ConnectWise now {reconciliation.cents(r['connectwise'])}")
        yield Static(title, classes="screen-title")
        store = self.app.store  # type: ignore[attr-defined]
        yield SqlGrid(reconciliation_items_source(store, r["period"], r["customer"], r["currency"]),
                      id="reconcile-items-grid", formatters={"status": status_badge})

    def action_back(self) -> None:
        self.app.pop_screen()
