""""Click to select" pickers (SPEC §5): a searchable list over the cached ConnectWise
companies, products or agreements, by name or ID; fuzzy suggestions (rapidfuzz) come first
when the search box is empty. Agreements are offered for one company only: the one whose
lines get the agreement. Returns (id, name), ("clear", None), or None (cancelled)."""

from __future__ import annotations

from rapidfuzz import fuzz, process
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, OptionList
from textual.widgets.option_list import Option

from cw_tui.rules.safe_text import safe_text
from cw_tui.store.pickers import AGREEMENTS, COMPANIES, PRODUCTS, PickerKind, all_names, name_of, offered
from cw_tui.widgets.modal import Modal

__all__ = ["AGREEMENTS", "COMPANIES", "PRODUCTS", "PickerModal"]


class PickerModal(Modal):
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), Binding("down", "to_list", "List", show=False)]

    def __init__(self, store, kind: PickerKind, *, suggest_for: str | None = None,
                 company_id: int | None = None, note: str = "", clear_label: str = "Clear (follow the mapping)") -> None:
        super().__init__()
        self.store = store
        self.kind = kind
        self.suggest_for = suggest_for
        self.company_id = company_id
        self.note = note  # why these records (or none) are offered
        self.clear_label = clear_label

    def compose(self) -> ComposeResult:
        with Vertical():
            # names are data: every text of theirs is shown literally (Text, never markup)
            hint = f" for “{safe_text(self.suggest_for)}”" if self.suggest_for else ""
            yield Label(Text(f"Select {self.kind.title}{hint}: type a name or an ID"))
            if self.note:
                yield Label(Text(safe_text(self.note), style="italic"), id="note")
            yield Input(placeholder="search by name or ID", id="search")
            yield OptionList(id="options")
            with Horizontal():
                if self.clear_label:
                    yield Button(self.clear_label, id="clear")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self._fill("")
        self.query_one("#search", Input).focus()

    def _fill(self, text: str) -> None:
        rows = offered(self.store, self.kind, text, self.company_id)
        options = self.query_one("#options", OptionList)
        options.clear_options()
        if not text.strip() and self.suggest_for and rows:
            # the closest names first, out of every record: a person confirms, nothing is applied by itself
            names = all_names(self.store, self.kind, self.company_id)
            best = process.extract(self.suggest_for, names, scorer=fuzz.WRatio, limit=5)
            for name, score, rid in best:
                if score >= 60:
                    options.add_option(Option(Text(f"★ {safe_text(name)}  (#{rid}, {score:.0f}% match)"), id=f"pick-{rid}"))
            seen = {rid for _, score, rid in best if score >= 60}
            rows = [r for r in rows if r[0] not in seen]
        for rid, name, extra in rows:
            options.add_option(Option(Text(f"{safe_text(name)}  ·  {safe_text(extra)}  (#{rid})"), id=f"pick-{rid}"))
        if options.option_count:
            options.highlighted = 0

    @on(Input.Changed, "#search")
    def _search(self, event: Input.Changed) -> None:
        self._fill(event.value)

    @on(Input.Submitted, "#search")
    def _submit(self) -> None:
        options = self.query_one("#options", OptionList)
        if options.option_count:
            self._choose(options.get_option_at_index(options.highlighted or 0).id)

    def action_to_list(self) -> None:
        self.query_one("#options", OptionList).focus()

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self._choose(event.option.id)

    def _choose(self, option_id: str | None) -> None:
        if not option_id:
            return
        rid = int(option_id.removeprefix("pick-"))
        self.dismiss((rid, name_of(self.store, self.kind, rid)))

    @on(Button.Pressed, "#clear")
    def _clear(self) -> None:
        self.dismiss(("clear", None))

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
