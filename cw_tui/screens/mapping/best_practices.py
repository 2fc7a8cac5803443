"""The eight recommendations of the Mapping page (SPEC §5), as a modal."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Label, Static

from cw_tui.widgets.modal import Modal

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


class BestPractices(Modal):
    """The eight recommendations (SPEC §5). The list has the focus, so the arrows and page
    keys scroll it; Close stays in view below it at any size; escape closes too."""

    BINDINGS = [Binding("escape", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("💡 Best Practices", style="bold"), classes="title")
            with VerticalScroll(id="practices"):
                for number, (title, text) in enumerate(BEST_PRACTICES, start=1):
                    yield Static(Text.assemble((f"{number}. {title}\n", "bold"), text), classes="item")
            with Horizontal(classes="buttons"):
                yield Static(f"↑↓ PgUp PgDn scroll · {len(BEST_PRACTICES)} items · tab, then enter: Close",
                             classes="hint")
                yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#practices", VerticalScroll).focus()
        self.call_after_refresh(self._all_shown)

    def _all_shown(self) -> None:
        if self.query_one("#practices", VerticalScroll).max_scroll_y == 0:  # nothing to scroll: enter closes
            self.query_one("#close", Button).focus()

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss()
