"""The sync plan modal (SPEC §15 plan before post): its totals per customer and currency, the
lines behind each total, the agreements it creates, what each update changes and the lines it
skips with their reason and amount. Confirm to post exactly this plan.

Money is shown to the cent and never cut: the amount columns are as wide as their longest
amount, and the names give way. Every name from the Platform or ConnectWise goes through
safe_text and into a Text (never markup)."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Label, Static

from cw_tui.rules.safe_text import safe_text
from cw_tui.rules.sync_plan import Plan, number_text
from cw_tui.rules.words import plural
from cw_tui.widgets.modal import ScrollingModal

ROWS_SHOWN = 300  # per list; `cw-tui sync --dry-run --json` lists everything


def money(value: Decimal) -> str:
    return f"{value:,.2f}"


def _plain(text: object) -> Text:
    return Text(safe_text(str(text)))


def _table(*columns: tuple[str, dict]) -> Table:
    table = Table(box=None, show_edge=False, pad_edge=False, expand=True, header_style="bold", padding=(0, 1))
    for name, options in columns:
        table.add_column(name, **options)
    return table


def _fits(values: list[str], header: str) -> dict:
    """An amount column as wide as its longest amount: money is never cut."""
    return {"justify": "right", "no_wrap": True, "min_width": max([len(header), *map(len, values)])}


def _more(total: int, shown: int, what: str) -> Text | None:
    if total <= shown:
        return None
    return Text(f"… and {total - shown:,} more {what} (`cw-tui sync --dry-run --json` lists them all)", style="dim")


def totals_view(plan: Plan) -> Group:
    totals = plan.totals()  # exact Decimals: the grand total is summed before rounding
    amounts = [money(t.amount) for t in totals.values()]
    table = _table(("Customer", {"ratio": 1, "no_wrap": True, "overflow": "ellipsis"}), ("Cur", {"no_wrap": True}),
                   ("Create", {"justify": "right", "no_wrap": True}), ("Update", {"justify": "right", "no_wrap": True}),
                   ("Cancel", {"justify": "right", "no_wrap": True}), ("Amount", _fits(amounts, "Amount")))
    by_currency: dict[str, Decimal] = {}
    for ((customer, currency), total), shown in zip(totals.items(), amounts, strict=False):
        table.add_row(_plain(customer), _plain(currency), str(total.creates), str(total.updates), str(total.cancels), shown)
        by_currency[currency] = by_currency.get(currency, Decimal(0)) + total.amount
    grand = Text("Total: " + (", ".join(f"{safe_text(c)} {money(a)}" for c, a in sorted(by_currency.items()))
                              or "nothing to post"), style="bold")
    return Group(table, grand)


def lines_view(plan: Plan) -> Group:
    """Each customer's actions: what is sent, for which lines, and what an update changes."""
    items = plan.items()
    shown = items[:ROWS_SHOWN]
    groups: dict[tuple[str, str], list] = {}
    for item in shown:
        groups.setdefault((item.customer, item.currency), []).append(item)
    sums = {key: sum((i.amount for i in group if i.amount is not None and i.action in ("create", "update")), Decimal(0))
            for key, group in groups.items()}
    amounts = [money(i.amount) for i in shown if i.amount is not None] + [money(a) for a in sums.values()]
    table = _table(("Action", {"no_wrap": True}), ("What", {"ratio": 1, "overflow": "fold"}),
                   ("Qty × price", {"justify": "right", "no_wrap": True}), ("Amount", _fits(amounts, "Amount")))
    for (customer, currency), group in groups.items():
        agreements = sorted({i.agreement for i in group})
        head = Text.assemble((safe_text(customer), "bold"), f" ({safe_text(currency)})")
        head.append("\n→ " + "; ".join(safe_text(a) for a in agreements), style="dim")
        table.add_row("", head, "", Text(money(sums[(customer, currency)]), style="bold"))
        for item in group:
            what = Text(safe_text(item.what))
            lines = (item.line_ids[0] if len(item.line_ids) == 1 else f"{len(item.line_ids)} lines" if item.line_ids else "")
            detail = ", ".join(safe_text(x) for x in (lines, item.change) if x)
            if detail:
                what.append("\n" + detail, style="dim" if item.change in ("", "text only") else "bold")
            price = (f"{number_text(item.quantity)} × {number_text(item.unit_price, money=True)}"
                     if item.quantity is not None and item.unit_price is not None else "")
            table.add_row(item.action, what, price, money(item.amount) if item.amount is not None else "")
    parts: list = [Text("What each customer's total is made of", style="bold underline"), table]
    more = _more(len(items), len(shown), "actions")
    if more:
        parts.append(more)
    return Group(*parts)


def agreements_view(plan: Plan) -> Group:
    rows = [Text("Agreements it will create", style="bold underline")]
    for agreement in plan.new_agreements:
        rows.append(Text(f"{safe_text(agreement.name)} (company #{agreement.company_id}, contract "
                         f"{safe_text(agreement.contract_id)})"))
    return Group(*rows)


def skipped_view(plan: Plan) -> Group:
    """The lines left out, by reason, with their amounts (they stay Not Synced)."""
    parts: list = [Text("Skipped lines (they stay Not Synced)", style="bold underline")]
    if plan.new_lines_skipped:
        parts.append(Text(f"{plural(plan.new_lines_skipped, 'line')}: invoice is New (not loaded; posted once Verified)"))
    listed = 0
    for reason, count, amounts in plan.skipped_by_reason():
        money_text = ", ".join(f"{safe_text(c)} {money(a)}" for c, a in amounts.items())
        parts.append(Text.assemble((f"{count:,} line{'s' if count != 1 else ''}: {safe_text(reason)}", "bold"),
                                   f" ({money_text})"))
        skips = [s for s in plan.skips if s.reason == reason][: max(0, ROWS_SHOWN - listed)]
        listed += len(skips)
        if skips:
            values = [f"{safe_text(s.currency)} {money(s.amount)}" for s in skips]
            table = _table(("Line", {"no_wrap": True}), ("Customer", {"ratio": 1, "no_wrap": True, "overflow": "ellipsis"}),
                           ("Amount", _fits(values, "Amount")))
            for skip, value in zip(skips, values, strict=False):
                table.add_row(_plain(skip.line_id), _plain(skip.customer), value)
            parts.append(table)
    more = _more(len(plan.skips), listed, "skipped lines")
    if more:
        parts.append(more)
    return Group(*parts)


class SyncPlanModal(ScrollingModal):
    """The plan of a sync (a dry run): confirm to post exactly this plan. Returns True or None.
    In an open period (SPEC §7) the focused button is Cancel, not Post. The plan's lists
    scroll (arrows, page keys) while the buttons stay in view."""

    BINDINGS: ClassVar = [
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, plan: Plan, *, changed: bool = False) -> None:
        super().__init__()
        self.plan = plan
        self.changed = changed

    def compose(self) -> ComposeResult:
        p = self.plan
        with Vertical():
            yield Label(f"Sync {p.period} to ConnectWise: the plan", classes="title")
            if self.changed:
                yield Static("The plan changed since it was shown, so nothing was sent. This is the plan now.",
                             classes="warning")
            if p.open:
                waiting = len(p.deferred_cancels)
                yield Static(Text.assemble(("Open period: ", "bold"), f"{p.state.reason()}. "
                                           f"{waiting} cancellation{' waits' if waiting == 1 else 's wait'} for the month "
                                           "to close; none is sent now."), classes="warning")
            text_only = f" ({p.text_only_updates} text only)" if p.text_only_updates else ""
            skipped = len(p.skips) + p.new_lines_skipped
            yield Static(
                f"Create {len(p.creates)}, update {len(p.updates)}{text_only}, cancel {len(p.cancels)}, unchanged "
                f"{len(p.unchanged)}, new agreements {len(p.new_agreements)}; {skipped} line{'s' if skipped != 1 else ''} "
                "skipped.", id="summary")
            if p.already_in_connectwise:
                yield Static(f"Already in ConnectWise: {p.already_in_connectwise} (their lines become Synced; "
                             "nothing is posted again).")
            with VerticalScroll(id="body"):
                yield Static(totals_view(p), id="totals")
                if p.creates or p.updates or p.adoptions or p.cancels or p.deferred_cancels:
                    yield Static(lines_view(p), id="lines")
                if p.new_agreements:
                    yield Static(agreements_view(p), id="agreements")
                if p.skips or p.new_lines_skipped:
                    yield Static(skipped_view(p), id="skipped")
            with Horizontal(classes="buttons"):
                yield Static(f"Plan {p.fingerprint} · ↑↓/PgDn scroll", classes="fingerprint")
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Post to ConnectWise", id="post", variant="primary", compact=True, disabled=not p.has_work)

    def on_mount(self) -> None:
        post = self.query_one("#post", Button)
        # an open month is posted only by a person who chooses to: Post is never the default there
        (self.query_one("#cancel", Button) if self.plan.open or post.disabled else post).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#post")
    def _post(self) -> None:
        self.dismiss(True)
