"""How the Mapping grids draw their cells: status dots, badges, amounts, agreements, reasons."""

from __future__ import annotations

from rich.text import Text

from cw_tui.rules.display import dated_source, group_thousands

STATUS_DOTS = {"Active": "green", "New": "dodger_blue1", "Suspended": "orange1", "Inactive": "grey50"}
BADGES = {"System Updated": ("S", "bold black on #5fafff"), "User Updated": ("U", "bold black on #ffaf00")}


def status_dot(text: str, _value: object = None) -> Text:
    return Text.assemble(("● ", STATUS_DOTS.get(text, "magenta")), text)


def amount(text: str, _value: object = None) -> str:
    """The exact decimal text the export holds, with thousands separators."""
    return group_thousands(text)


def dated(text: str, value: str | None) -> Text:
    """The date, and a letter for where it came from (User Updated, System Updated)."""
    shown = Text(text) if text else Text("—", style="dim")
    badge = BADGES.get(dated_source(value))
    if badge:
        shown.append(" ")
        shown.append(badge[0], style=badge[1])
    return shown


def mapping_badge(text: str, _value: object = None) -> Text:
    styles = {"Mapped": "green", "Unmapped": "yellow", "Excluded": "grey50", "Response Error": "bold red"}
    return Text(text, style=styles.get(text, ""))


def psa_status(text: str, _value: object = None) -> Text:
    styles = {"Synced": "green", "Error": "bold red", "Posting…": "cyan"}
    return Text(text, style=styles.get(text, ""))


def click_to_select(text: str, _value: object = None) -> Text:
    return Text(text) if text else Text("Click to select", style="dim italic")


def agreement_cell(text: str, value: object = None) -> Text:
    """The agreement's telling part, "New agreement (<type>)" where sync will create one (SPEC
    §8 rule 4), "Click to select" where none can be chosen yet."""
    if text.startswith("New agreement"):
        return Text(text, style="italic")
    return click_to_select(text, value)


def error_reason(text: str, _value: object = None) -> Text:
    return Text(text, style="red")
