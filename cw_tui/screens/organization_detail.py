"""The read-only detail of one organization (services/organization_detail.py builds it; this
only renders it), laid out as the line detail is: it is one (its styles and keys included)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Label, Static

from cw_tui.rules.safe_text import safe_text
from cw_tui.screens.line_detail import LineDetailModal, section_view
from cw_tui.services.organization_detail import OrganizationDetail


class OrganizationDetailModal(LineDetailModal):
    def __init__(self, detail: OrganizationDetail) -> None:
        super().__init__(detail)  # type: ignore[arg-type]

    def compose(self) -> ComposeResult:
        d: OrganizationDetail = self.detail  # type: ignore[assignment]
        with Vertical():
            yield Label(Text.assemble(f"Organization {safe_text(d.platform_id)} · ",
                                      ("Included", "green") if d.included else ("Excluded", "yellow")), classes="title")
            yield Static(Text(safe_text(d.name)), id="subtitle")
            width = max((len(safe_text(f.label)) for _, fields in d.sections for f in fields), default=0)
            with VerticalScroll(id="body"):
                for title, fields in d.sections:
                    yield Static(section_view(title, fields, width), id=f"section-{title.lower().replace(' ', '-')}")
            with Horizontal(classes="buttons"):
                yield Static("Read-only · ↑↓/PgDn scroll · Esc closes", classes="hint")
                yield Button("Close", id="close", variant="primary", compact=True)
