"""The modals of the Mapping page: Load Products, Load Invoice Lines and its confirmation of
removals, the auto-match confirmation and the sync plan (SPEC §5.2, §5.3, §15)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Label, Select, Static

from cw_tui.rules.safe_text import safe_text
from cw_tui.screens.sync_plan_modal import SyncPlanModal  # noqa: F401 - moved there; imported from here
from cw_tui.widgets.modal import Modal, ModalBody
from cw_tui.widgets.toggles import Toggle as Checkbox  # [x] / [ ] without colour (issue 12)


class _Modal(Modal):
    """The Mapping page's modals: escape and a Cancel button dismiss with None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class LoadProductsModal(_Modal):
    """Returns the number of months, or None."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="frame"):
            yield Label("Load Products", classes="title")
            with ModalBody(classes="body"):
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
    """Returns ["current", "previous"] (either or both), or None. Each choice names its month."""

    def __init__(self, today: date | None = None) -> None:
        super().__init__()
        self.today = today

    def _month(self, which: str) -> str:
        from cw_tui.rules.periods import resolve_period

        return f" ({resolve_period(which, self.today)})" if self.today else ""

    def compose(self) -> ComposeResult:
        with Vertical(classes="frame"):
            yield Label("Load Invoice Lines", classes="title")
            with ModalBody(classes="body"):
                yield Static("Select which periods to load invoice lines for.")
                yield Checkbox(f"Current Month{self._month('current')}", value=False, id="current")
                yield Checkbox(f"Previous Month{self._month('previous')}", value=True, id="previous")
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


class ConfirmRemovalsModal(_Modal):
    """SPEC §5.3: a re-load removes unsynced lines gone from the Platform only once a person
    agrees; keeping them (nothing loaded) is the default. Returns True or None."""

    SHOWN = 8

    def __init__(self, need) -> None:
        super().__init__()
        self.need = need

    def compose(self) -> ComposeResult:
        need = self.need
        ids = [line_id for period_ids in need.line_ids.values() for line_id in period_ids]
        periods = ", ".join(need.line_ids)
        shown = ids[: self.SHOWN]
        more = f"\n… and {len(ids) - len(shown):,} more" if len(ids) > len(shown) else ""
        with Vertical(classes="frame"):
            yield Label(f"Remove {need.count:,} unsynced line(s) of {periods}?", classes="title")
            with ModalBody(classes="body"):
                yield Static(Text("These lines are not synced and are no longer in the Platform export: loading removes "
                                  "them from cw-tui. Keeping them loads nothing."))
                yield Static(Text("\n".join(safe_text(i) for i in shown) + more, style="bold"), id="removed-ids")
            with Horizontal(classes="buttons"):
                yield Button("Keep them (cancel)", id="cancel", variant="primary")
                yield Button(f"Remove {need.count:,} line(s)", id="remove", variant="error")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#remove")
    def _remove(self) -> None:
        self.dismiss(True)


@dataclass
class Matches:
    organizations: list[tuple[str, str, int, str]]
    offers: list[tuple[str, str, int, str]]
    not_active: list[tuple[str, str, str]] = field(default_factory=list)  # org name, company name, its CW status


class AutomapModal(_Modal):
    """Shows exact, unique matches; returns "map", "map_include" or None."""


    def __init__(self, matches: Matches) -> None:
        super().__init__()
        self.matches = matches

    def compose(self) -> ComposeResult:
        m = self.matches
        with Vertical(classes="frame"):
            yield Label(f"Auto-match: {len(m.organizations)} organizations and {len(m.offers)} offers", classes="title")
            with ModalBody(classes="body"):
                if m.not_active:
                    yield Static(self._not_active_text(), id="not-active")
                yield Static("Exact matches by normalised name or identifier, only where ConnectWise has exactly one. "
                             "Nothing is mapped until you confirm.")
                table = DataTable(cursor_type="row", zebra_stripes=True)
                for label, width in (("Platform", 22), ("ConnectWise", 22), ("CW status", 12), ("ID", 6)):
                    table.add_column(label, width=width)
                status = {company: state for _, company, state in m.not_active}
                # the companies that are not Active first: each is named in the list, not only counted
                organizations = sorted(m.organizations, key=lambda row: row[3] not in status)
                rows = [(*row[1:], status.get(row[3], "")) for row in organizations[:200]]
                rows += [(*row[1:], "") for row in m.offers[:200]]
                for name, cw_id, cw_name, state in rows:  # names shown literally
                    table.add_row(Text(safe_text(name)), Text(safe_text(cw_name)),
                                  Text(safe_text(state), style="bold" if state else ""), str(cw_id))
                yield table
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Map", id="map")
                yield Button("Map and include in sync", id="map_include", variant="primary")

    SHOWN_NOT_ACTIVE = 5

    def _not_active_text(self) -> Text:
        """The matched companies that ConnectWise does not hold as Active (Delinquent,
        Not-Approved, Credit Hold…): mapped and included, their lines are posted like any other."""
        rows = sorted(self.matches.not_active, key=lambda row: (row[1].casefold(), row[2]))
        by_status: dict[str, int] = {}
        for _, _, status in rows:
            by_status[status] = by_status.get(status, 0) + 1
        counts = ", ".join(f"{n} {safe_text(status)}" for status, n in sorted(by_status.items()))
        shown = "; ".join(f"{safe_text(company)} ({safe_text(status)})" for _, company, status in rows[: self.SHOWN_NOT_ACTIVE])
        more = (f"; and {len(rows) - self.SHOWN_NOT_ACTIVE} more, first in the list below"
                if len(rows) > self.SHOWN_NOT_ACTIVE else "")
        noun = "company is" if len(rows) == 1 else "companies are"
        return Text.assemble((f"{len(rows)} matched {noun} not Active in ConnectWise ({counts}): ", "bold"),
                             f"{shown}{more}. Their lines are posted like any other once mapped and included.")

    def on_mount(self) -> None:
        self.query_one("#map_include", Button).focus()

    @on(Button.Pressed, "#map, #map_include")
    def _chosen(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)


class ShrinkModal(_Modal):
    """ConnectWise sent far fewer records than are cached: replace the cache with them?
    Returns True to replace, None to keep the cache (the default)."""

    def __init__(self, shrinks: list) -> None:  # Shrink records
        super().__init__()
        self.shrinks = shrinks

    def compose(self) -> ComposeResult:
        with Vertical(classes="frame"):
            yield Label("ConnectWise sent much shorter lists", classes="title")
            with ModalBody(classes="body"):
                yield Static(Text("\n".join(f"{s.what.capitalize()}: {s.cached:,} cached, {s.fetched:,} sent now"
                                            for s in self.shrinks)))
                yield Static("\nAn empty or cut-short answer looks like this. Nothing has changed yet. Replace the "
                             "cached lists with what ConnectWise sent?")
            with Horizontal(classes="buttons"):
                yield Button("Keep the cache", id="cancel", variant="primary")
                yield Button("Replace the cache", id="replace", variant="error")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#replace")
    def _replace(self) -> None:
        self.dismiss(True)


class ScopeModal(_Modal):
    """SPEC §5.3: does a changed agreement apply to this line or the whole contract?"""

    def __init__(self, contract_id: str, agreement_name: str) -> None:
        super().__init__()
        self.contract_id = contract_id
        self.agreement_name = agreement_name

    def compose(self) -> ComposeResult:
        with Vertical(classes="frame"):
            yield Label("Apply the agreement to…", classes="title")
            with ModalBody(classes="body"):
                yield Static(Text(f"{safe_text(self.agreement_name)}: this line only, or every unsynced line of contract "
                                  f"{safe_text(self.contract_id)}?"))
                yield Static("Cancel goes back to the form, with your changes kept.", classes="hint")
            with Horizontal(classes="buttons"):
                yield Button("Back to the form", id="cancel")
                yield Button("This line", id="line")
                yield Button(Text(f"Whole contract {safe_text(self.contract_id)}"), id="contract", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#line", Button).focus()

    @on(Button.Pressed, "#line, #contract")
    def _chosen(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)


class LineEditModal(_Modal):
    """Inline Edit of an invoice line: PSA Organization, Product, Agreement, Charge Start and
    End. Returns a dict of the changed fields ({"company": (id, name) | "clear", ...}) or None;
    a changed agreement comes with "scope": "line" or "contract", asked here (SPEC §5.3), and
    Cancel at that question comes back to this form with the edits kept."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "confirm", "Confirm")]

    def __init__(self, store, line: dict) -> None:
        super().__init__()
        self.store = store
        self.line = line
        self.changes: dict = {}

    def compose(self) -> ComposeResult:
        from textual.widgets import Input

        line = self.line
        gone = line.get("agreement_gone")
        with Vertical(classes="frame"):
            yield Label(Text(f"Edit line {safe_text(line['line_id'])}"), classes="title")
            with ModalBody(classes="body"):
                yield Static(Text(safe_text(f"{line['organization']} · {line['offer']} · {line['charge_type']} · "
                                            f"{line['quantity']} × {line['unit_price']} {line['currency']}")))
                if line.get("last_error"):
                    yield Static(Text(f"Last error from ConnectWise: {safe_text(line['last_error'])}", style="bold red"))
                if gone:
                    yield Static(Text(f"The line's {gone}: choose one of the company's current agreements.",
                                      style="bold"), id="agreement-gone")
                for key, label in (("company", "PSA Organization"), ("product", "PSA Product"), ("agreement", "PSA Agreement")):
                    shown = ("(gone from ConnectWise) choose another" if key == "agreement" and gone
                             else safe_text(line.get(f"{key}_name")) or "Click to select")
                    with Horizontal(classes="row"):
                        yield Label(label)
                        yield Button(Text(shown), id=f"pick-{key}", compact=True)
                with Horizontal(classes="row"):
                    yield Label("Charge Start Date")
                    yield Input(value=line["charge_start"] or "", placeholder="YYYY-MM-DD", id="start", restrict=r"[0-9-]*",
                                compact=True)
                with Horizontal(classes="row"):
                    yield Label("Charge End Date")
                    yield Input(value=line["charge_end"] or "", placeholder="YYYY-MM-DD or empty", id="end",
                                restrict=r"[0-9-]*", compact=True)
                yield Static("", id="problem")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Confirm", id="confirm", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#pick-company", Button).focus()

    @on(Button.Pressed, "#pick-company, #pick-product, #pick-agreement")
    def _pick(self, event: Button.Pressed) -> None:
        from cw_tui.screens.pickers import AGREEMENTS, COMPANIES, PRODUCTS, PickerModal
        from cw_tui.services.mapping import company_label

        key = (event.button.id or "").removeprefix("pick-")
        kind = {"company": COMPANIES, "product": PRODUCTS, "agreement": AGREEMENTS}[key]
        suggest = {"company": self.line["organization"], "product": self.line["offer"], "agreement": None}[key]
        # the line's company as this edit leaves it: the one chosen here, else the line's own, else its organization's
        company = self.changes.get("company")
        company_id = (company[0] if isinstance(company, tuple) else self.line["organization_company_id"] if company == "clear"
                      else self.line["company_id"])
        note = ("" if key != "agreement" else f"Agreements of {company_label(company_id)}, the line's company."
                if company_id is not None else
                "This line has no PSA Organization yet: choose one first (an agreement belongs to one company).")
        clear_label, cleared = "Clear (follow the mapping)", "clear"
        if key == "agreement" and self.line.get("agreement_gone"):
            note = f"The line's {self.line['agreement_gone']}. {note}"
            if self.line.get("own_agreement_id") is None:
                # the contract's agreement is gone: forgetting it lets the sync choose one (SPEC §8 rules 3-4)
                clear_label, cleared = "Forget it (chosen at sync)", "forget"

        def chosen(value) -> None:
            if value is None:
                return
            self.changes[key] = cleared if value[0] == "clear" else value
            event.button.label = (Text(safe_text(value[1])) if value[0] != "clear" else "(follows the mapping)"
                                  if cleared == "clear" else "(forgotten: chosen at sync)")

        self.app.push_screen(PickerModal(self.store, kind, suggest_for=suggest, company_id=company_id, note=note,
                                         clear_label=clear_label), chosen)

    def action_confirm(self) -> None:
        from textual.widgets import Input

        from cw_tui.services.mapping import MappingError, parse_day

        changes = dict(self.changes)
        try:
            start_text = self.query_one("#start", Input).value.strip()
            end_text = self.query_one("#end", Input).value.strip()
            if start_text != (self.line["charge_start"] or ""):
                start = parse_day(start_text)
                if start is None:
                    raise MappingError("the Charge Start Date cannot be empty")
                changes["start"] = start
            if end_text != (self.line["charge_end"] or ""):
                changes["end"] = parse_day(end_text)
            start = changes.get("start") or parse_day(self.line["charge_start"] or "")
            end = changes["end"] if "end" in changes else parse_day(self.line["charge_end"] or "")
            if start and end and end < start:
                raise MappingError("the Charge End Date is before the Charge Start Date")
        except MappingError as error:
            problem = self.query_one("#problem", Static)
            problem.remove_class("-note")
            problem.update(Text(safe_text(str(error))))  # it may quote what was typed
            return
        agreement = changes.get("agreement")
        if not isinstance(agreement, tuple):
            self.dismiss(changes)
            return

        def scoped(scope: str | None) -> None:
            if scope is None:  # back to the form: nothing is lost, nothing is applied
                note = self.query_one("#problem", Static)
                note.add_class("-note")
                note.update("Nothing was changed yet: Confirm again when ready.")
                self.query_one("#confirm", Button).focus()
                return
            self.dismiss({**changes, "scope": scope})

        self.app.push_screen(ScopeModal(self.line["contract_id"], agreement[1]), scoped)

    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        self.action_confirm()


BULK_FIELDS = (("company", "PSA Organization"), ("product", "PSA Product"), ("agreement", "PSA Agreement"),
               ("start", "Charge Start Date"), ("end", "Charge End Date"))


class BulkUpdateModal(_Modal):
    """SPEC §5.3 Bulk Update: one field, one value, for every marked line; a count and a
    confirmation. Returns (field, value) or None."""

    def __init__(self, store, count: int, marked) -> None:
        super().__init__()
        self.store = store
        self.count = count
        self.marked = marked  # the marked lines (a grid Selection)
        self.value = None

    def compose(self) -> ComposeResult:
        from textual.widgets import Input

        with Vertical(classes="frame"):
            yield Label(f"Bulk Update of {self.count:,} marked line(s)", classes="title")
            with ModalBody(classes="body"):
                yield Select([(label, key) for key, label in BULK_FIELDS], value="company", allow_blank=False, id="field")
                yield Button("Choose…", id="choose")
                yield Input(placeholder="YYYY-MM-DD (empty clears an end date)", id="date", restrict=r"[0-9-]*")
                yield Static("", id="problem")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(f"Apply to {self.count:,} lines", id="apply", variant="warning")

    def on_mount(self) -> None:
        self._field_changed()

    @on(Select.Changed, "#field")
    def _field_changed(self) -> None:
        from textual.widgets import Input

        field = self.query_one("#field", Select).value
        dated = field in ("start", "end")
        self.query_one("#choose", Button).display = not dated
        self.query_one("#date", Input).display = dated
        self.value = None
        self.query_one("#choose", Button).label = "Choose…"

    @on(Button.Pressed, "#choose")
    def _choose(self) -> None:
        from cw_tui.screens.pickers import AGREEMENTS, COMPANIES, PRODUCTS, PickerModal

        field = self.query_one("#field", Select).value
        kind = {"company": COMPANIES, "product": PRODUCTS, "agreement": AGREEMENTS}[field]
        from cw_tui.services.mapping import common_company

        company_id, note = common_company(self.store, self.marked) if field == "agreement" else (None, "")

        def chosen(value) -> None:
            if value is not None:
                self.value = value
                self.query_one("#choose", Button).label = ("(follows the mapping)" if value[0] == "clear"
                                                           else Text(safe_text(value[1])))

        self.app.push_screen(PickerModal(self.store, kind, company_id=company_id, note=note), chosen)

    @on(Button.Pressed, "#apply")
    def _apply(self) -> None:
        from textual.widgets import Input

        from cw_tui.services.mapping import MappingError, parse_day

        field = self.query_one("#field", Select).value
        problem = self.query_one("#problem", Static)
        if field in ("start", "end"):
            try:
                day = parse_day(self.query_one("#date", Input).value)
            except MappingError as error:
                problem.update(Text(safe_text(str(error))))
                return
            if field == "start" and day is None:
                problem.update("Type a Charge Start Date.")
                return
            self.dismiss((field, day))
            return
        if self.value is None:
            problem.update("Choose a value first.")
            return
        self.dismiss((field, self.value))
