"""The undo plan modal (SPEC §15, issue 16): what undoing a sync run does to each Addition it
wrote, and what it refuses with the reason; confirm to run exactly this plan, with progress.

The plan is read in a worker (the run's journal and what ConnectWise holds now). Its items are
one DataTable (one widget however many thousands there are); the highlighted item's reason is
written out in full below the table, so nothing that matters is cut at 80 columns. The undo
runs only from the "Undo run N" button (Cancel has the focus first): no key does it by
accident. While it runs the modal stays (the progress bar shows how far it is); at the end it
says what was done, in words, and offers only Close.

Every name from the Platform or ConnectWise goes through safe_text into a Text (never markup)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Label, ProgressBar, Static

from cw_tui.rules import undo_plan as rules
from cw_tui.rules.safe_text import safe_text
from cw_tui.rules.words import plural
from cw_tui.services.system_log import Category
from cw_tui.tasks import run_service
from cw_tui.widgets.modal import Modal

WHAT = {rules.DELETE: "delete", rules.RESTORE: "restore", rules.END: "end", rules.DELETE_AGREEMENT: "delete agreement",
        rules.RELEASE: "lines only", rules.KEEP: "keep", rules.REFUSED: "refused"}
WHAT_STYLES = {rules.REFUSED: "bold red", rules.DELETE: "bold", rules.DELETE_AGREEMENT: "bold", rules.KEEP: "dim",
               rules.RELEASE: "dim"}
# what the Why column says in short; the highlighted item's whole reason is below the table
SHORT_WHY = {rules.DELETE: "created by the run", rules.RESTORE: "values before", rules.DELETE_AGREEMENT: "empty, untouched",
             rules.END: "invoiced: ended", rules.KEEP: "holds other things"}
RELEASE_WHY = {"adopted": "adopted: left as is", "gone": "gone from ConnectWise", "same": "already as before",
               "unchanged": "not changed by the run"}
# refused first (a person reads them before confirming), then in the plan's order
ORDER = {rules.REFUSED: 0}
CUSTOMER_WIDTH = 20


def money(value: Decimal) -> str:
    return f"{value:,.2f}"


def amounts_text(amounts: dict[str, Decimal]) -> str:
    """Per currency, never added across currencies: EUR 1,234.50 · USD 9.00."""
    return " · ".join(f"{safe_text(currency) or '?'} {money(amount)}" for currency, amount in sorted(amounts.items()))


def plan_summary(plan: rules.UndoPlan) -> str:
    counts = plan.counts()

    def n(kind: str) -> int:
        return counts.get(kind, 0)

    deleted = amounts_text(plan.amounts(rules.DELETE))
    parts = [f"{n(rules.DELETE):,} deleted" + (f" ({deleted})" if deleted else ""), f"{n(rules.RESTORE):,} restored",
             f"{n(rules.END):,} ended", plural(n(rules.DELETE_AGREEMENT), "agreement") + " deleted",
             plural(plan.lines, "line") + " back to Not Synced", f"{n(rules.REFUSED):,} refused",
             f"{plan.already_undone:,} already undone"]
    if n(rules.KEEP):
        parts.append(plural(n(rules.KEEP), "agreement") + " kept")
    return ", ".join(parts) + "."


def _customer(name: str) -> Text:
    shown = safe_text(name)
    return Text(shown if len(shown) <= CUSTOMER_WIDTH else shown[: CUSTOMER_WIDTH - 1] + "…")


def _why(item: rules.UndoItem) -> str:
    if item.kind == rules.REFUSED:
        return item.reason + (": see below" if item.alternative else "")
    if item.kind == rules.RELEASE:
        return RELEASE_WHY.get(item.reason, item.reason)
    return SHORT_WHY.get(item.kind, item.reason)


def item_rows(plan: rules.UndoPlan) -> list[tuple[rules.UndoItem, tuple]]:
    """(item, the table's cells), refused first. Plain objects: built in the worker."""
    items = sorted(plan.items, key=lambda i: ORDER.get(i.kind, 1))  # stable: the plan's order within
    rows = []
    for item in items:
        rows.append((item, (
            Text(WHAT[item.kind], style=WHAT_STYLES.get(item.kind, "")),
            _customer(item.customer),
            Text(safe_text(item.currency)),
            Text(money(item.amount) if item.amount else "", justify="right"),
            Text(f"{len(item.line_ids):,}" if item.line_ids else "", justify="right"),
            Text(str(item.addition_id or ""), justify="right"),
            Text(_why(item), style="bold red" if item.kind == rules.REFUSED else ""),
            Text(item.action.replace("_", " ")),
        )))
    return rows


def item_detail(item: rules.UndoItem) -> Text:
    """One item in full: what it does, to what, and why (a refusal's alternative too). The
    customer is on the item's row; here what the columns may cut at 80 columns."""
    text = Text.assemble((WHAT[item.kind], WHAT_STYLES.get(item.kind, "bold") or "bold"),
                         f" · the run's {item.action.replace('_', ' ')}")
    where = []
    if item.addition_id:
        where.append(f"Addition {item.addition_id}")
    if item.agreement_id:
        where.append(f"agreement {item.agreement_id}")
    if where:
        text.append(" of " + " on ".join(where))
    if item.amount:
        text.append(f" · {safe_text(item.currency)} {money(item.amount)}")
    if item.line_ids:
        text.append(" · " + (safe_text(item.line_ids[0]) if len(item.line_ids) == 1 else plural(len(item.line_ids), "line")))
    if item.detail:
        text.append("\n")
        text.append(safe_text(item.detail), style="bold red" if item.kind == rules.REFUSED else "")
    if item.alternative:
        text.append("\nInstead: ", style="bold")
        text.append(safe_text(item.alternative))
    return text


def result_text(result: Any) -> Text:
    """An undo's outcome in words (sync/undo.UndoResult)."""
    text = Text.assemble((f"Undo run #{result.run_id} finished. ", "bold"),
                         f"Run #{result.undoes_run_id}: {result.deleted:,} deleted, {result.restored:,} restored, "
                         f"{result.ended:,} ended, {plural(result.agreements_deleted, 'agreement')} deleted; "
                         f"{plural(result.lines_not_synced, 'line')} back to Not Synced; {result.refused:,} refused; ")
    text.append(plural(result.errors, "error") + ".", style="bold red" if result.errors else "")
    if result.refused:
        text.append(" The refused items stay as they are in ConnectWise.")
    for message in result.error_messages[:5]:
        text.append("\n· " + safe_text(message), style="red")
    if len(result.error_messages) > 5:
        text.append(f"\n… and {len(result.error_messages) - 5:,} more errors (System Logs)", style="dim")
    return text


class UndoPlanModal(Modal):
    """Undo sync run `run_id`: its plan (read in a worker unless given), confirmed by the
    "Undo run N" button, then run with progress. `changed` is called when the undo has run (or
    stopped part way): the screen behind reloads what it shows."""

    BINDINGS: ClassVar = [Binding("escape", "close", "Close")]

    def __init__(self, run_id: int, *, plan: rules.UndoPlan | None = None,
                 changed: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.run_id = run_id
        self.plan = plan
        self.changed = changed
        self.items: list[rules.UndoItem] = []
        self.running = False
        self.result: Any = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Undo run #{self.run_id}: the plan", classes="title", id="undo-title")
            yield Static("Reading the run's journal and what ConnectWise holds now…", id="undo-summary")
            yield Static("", id="undo-warning", classes="warning")
            table: DataTable = DataTable(id="undo-items", cursor_type="row", zebra_stripes=True)
            table.add_column("What", key="what")
            table.add_column("Customer", key="customer")
            table.add_column("Cur", key="currency")
            table.add_column(Text("Amount", justify="right"), key="amount")
            table.add_column(Text("Lines", justify="right"), key="lines")
            table.add_column(Text("Addition", justify="right"), key="addition")
            table.add_column("Why", key="why")
            table.add_column("Run did", key="action")
            yield table
            yield Static("", id="undo-detail")
            yield ProgressBar(id="undo-progress", show_eta=False)
            with Horizontal(classes="buttons"):
                yield Static("", classes="fingerprint", id="undo-fingerprint")
                yield Button("Cancel", id="cancel", compact=True)
                yield Button(f"Undo run {self.run_id}", id="undo", variant="error", compact=True, disabled=True)
                yield Button("Close", id="close", compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#close", Button).display = False
        self.query_one("#undo-warning", Static).display = False
        self.query_one("#undo-items", DataTable).display = False
        self.query_one("#cancel", Button).focus()
        if self.plan is not None:
            self._show(self.plan, item_rows(self.plan))
        else:
            self._read_plan()

    # ------------------------------------------------------------------ the plan

    def _read_plan(self) -> None:
        from cw_tui.sync.undo import prepare_undo

        store, run_id = self.app.store, self.run_id  # type: ignore[attr-defined]

        async def go():
            from cw_tui.services import credentials as credential_store
            from cw_tui.services.connectwise import ConnectWiseClient

            async with ConnectWiseClient(credential_store.current()) as client:
                plan = await prepare_undo(store, client, run_id)
            return plan, item_rows(plan)

        run_service(self, "Reading the undo plan", go, category=Category.SYNC, group="undo-plan",
                    done=lambda found: self._show(*found), failed=self._plan_failed)

    def _plan_failed(self, error: BaseException) -> bool:
        from cw_tui.sync.undo import UndoRefused

        if isinstance(error, UndoRefused):
            self._stopped(f"Run #{self.run_id} cannot be undone: {error}.")
            return True
        self._stopped(f"The undo plan could not be read: {getattr(error, 'message', None) or error}. Nothing was sent.")
        return False  # the one error policy logs it and tells it too

    def _show(self, plan: rules.UndoPlan, rows: list[tuple[rules.UndoItem, tuple]]) -> None:
        self.plan = plan
        self.query_one("#undo-title", Label).update(
            f"Undo run #{plan.run_id} ({plan.period or 'no period'}): the plan")
        table = self.query_one("#undo-items", DataTable)
        table.clear()
        self.items = [item for item, _ in rows]
        table.add_rows([cells for _, cells in rows])
        table.display = bool(rows)
        summary = Text(plan_summary(plan))
        if plan.empty and plan.refused:
            summary = Text.assemble(("Nothing to undo: every item is refused (below). ", "bold"), summary)
        elif plan.empty:
            summary = Text.assemble(("Nothing to undo", "bold"), (
                f": the run was undone already ({plural(plan.already_undone, 'item')} undone before)."
                if plan.already_undone else ": the run left nothing in ConnectWise to take back, and no line to return."))
            self.query_one(Vertical).add_class("-short")
        self.query_one("#undo-summary", Static).update(summary)
        self.query_one("#undo-fingerprint", Static).update(
            f"Plan {plan.fingerprint}" + (" · ↑↓ the items" if rows else ""))
        if plan.empty:
            self._only_close()
        else:
            self.query_one("#undo", Button).disabled = False
        self._detail(0)
        if rows:
            table.focus()  # the arrows walk the items; Tab reaches the buttons (Cancel first)

    @on(DataTable.RowHighlighted, "#undo-items")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail(event.cursor_row)

    def _detail(self, index: int) -> None:
        detail = self.query_one("#undo-detail", Static)
        if 0 <= index < len(self.items) and not self.running and self.result is None:
            detail.update(item_detail(self.items[index]))
            detail.display = True
        else:
            detail.display = bool(self.result is None and self.running)

    # ------------------------------------------------------------------ the undo

    @on(Button.Pressed, "#undo")
    def _undo(self) -> None:
        if self.plan is None or self.plan.empty or self.running or self.result is not None:
            return
        import asyncio

        from cw_tui.sync.undo import run_undo

        store, run_id, fingerprint = self.app.store, self.run_id, self.plan.fingerprint  # type: ignore[attr-defined]
        self.running = True
        bar = self.query_one("#undo-progress", ProgressBar)
        bar.update(total=max(1, len(self.plan.sends)), progress=0)
        bar.add_class("-running")
        for button in self.query(".buttons Button"):
            button.display = False
        self.query_one("#undo-detail", Static).update(Text("Undoing… it goes on until every item is done.", style="bold"))
        self.query_one("#undo-detail", Static).display = True
        self.query_one("#undo-items", DataTable).disabled = True

        def progress(done: int, total: int) -> None:
            self.app.call_from_thread(bar.update, total=max(total, 1), progress=done)

        def job():
            from cw_tui.services import credentials as credential_store
            from cw_tui.services.connectwise import ConnectWiseClient

            async def go():
                async with ConnectWiseClient(credential_store.current()) as client:
                    return await run_undo(store, client, run_id, expect_plan=fingerprint, trigger="app",
                                          progress=progress)
            return asyncio.run(go())

        run_service(self, "Undo", job, category=Category.SYNC, group="undo-run", done=self._done,
                    failed=self._undo_failed)

    def _done(self, result: Any) -> None:
        self.running = False
        self.result = result
        self.query_one("#undo-progress", ProgressBar).remove_class("-running")
        self.query_one("#undo-items", DataTable).display = False
        self.query_one("#undo-detail", Static).display = False
        self.query_one("#undo-title", Label).update(f"Undo of run #{self.run_id}: done")
        self.query_one(Vertical).add_class("-short")
        self.query_one("#undo-summary", Static).update(result_text(result))
        self._only_close()
        problems = result.errors or result.refused
        self.app.notify(f"Undo of run #{result.undoes_run_id}: {result.deleted:,} deleted, {result.restored:,} restored, "
                        f"{result.lines_not_synced:,} lines back to Not Synced, {result.refused:,} refused, "
                        f"{plural(result.errors, 'error')}.", severity="warning" if problems else "information",
                        timeout=12, markup=False)
        if self.changed is not None:
            self.changed()

    def _undo_failed(self, error: BaseException) -> bool:
        from cw_tui.sync import PlanChanged
        from cw_tui.sync.undo import UndoRefused

        self.running = False
        self.query_one("#undo-progress", ProgressBar).remove_class("-running")
        if self.changed is not None:
            self.changed()  # the undo's own run is in the history, failed
        if isinstance(error, PlanChanged):
            self._warn("The plan changed since it was shown, so nothing was sent. This is the plan now: "
                       "read it again before you confirm.")
            self.query_one("#undo-items", DataTable).disabled = False
            for button in (self.query_one("#cancel", Button), self.query_one("#undo", Button)):
                button.display = True
            self.query_one("#undo", Button).disabled = True
            self.query_one("#undo-summary", Static).update("Reading the plan again…")
            self._read_plan()
            return True
        if isinstance(error, UndoRefused):
            self._stopped(f"Nothing was sent: {error}.")
            return True
        self._stopped(f"The undo stopped: {getattr(error, 'message', None) or error}. What it sent is in the journal; "
                      f"press u on run #{self.run_id} again to undo the rest.")
        return False

    # ------------------------------------------------------------------ the frame

    def _warn(self, message: str) -> None:
        warning = self.query_one("#undo-warning", Static)
        warning.update(Text(safe_text(message)))
        warning.display = True

    def _stopped(self, message: str) -> None:
        self._warn(message)
        self.query_one(Vertical).add_class("-short")
        self.query_one("#undo-items", DataTable).display = False
        self.query_one("#undo-detail", Static).display = False
        if self.plan is None:
            self.query_one("#undo-summary", Static).display = False
        self._only_close()

    def _only_close(self) -> None:
        for button in (self.query_one("#cancel", Button), self.query_one("#undo", Button)):
            button.display = False
        close = self.query_one("#close", Button)
        close.display = True
        close.focus()

    def action_close(self) -> None:
        if self.running:
            self.app.notify("The undo is running: it goes on until every item is done.", markup=False)
            return
        self.dismiss(self.result)

    @on(Button.Pressed, "#cancel")
    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.action_close()
