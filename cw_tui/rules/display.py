"""What a person reads for a stored value: the words, dates and plain decimals that the grids
show and the CSV exports hold. The grid columns (store/grid_sources.py) name one of these per column;
the screens only style the text, so a grid and its export never disagree. No textual here."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from cw_tui.rules.money import from_micros


def decimal_text(micros: int | None, places: int = 0) -> str:
    """Micro-units as exact decimal text: at least `places` decimals, more only where the value
    has them (10, 12.50, 0.000123, -3.25); no exponent, no thousands separator."""
    if micros is None:
        return ""
    value = from_micros(int(micros))
    quantum = Decimal(1).scaleb(-places)
    shown = value.quantize(quantum) if value == value.quantize(quantum) else value.normalize()
    return f"{shown:f}"


def quantity_text(micros: int | None) -> str:
    return decimal_text(micros, 0)


def exact_money_text(micros: int | None) -> str:
    """Prices and totals as the Platform sent them: cents always, more decimals where it sent
    them (what an export holds, and what is posted)."""
    return decimal_text(micros, 2)


def money_text(micros: int | None) -> str:
    """Prices and totals as a person reads them: to the cent, half up (8665.68456 -> 8665.68).
    The exact value stays in the store, the export and what is posted."""
    if micros is None:
        return ""
    return f"{from_micros(int(micros)).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):f}"


def group_thousands(text: str) -> str:
    """`1234567.5` -> `1,234,567.5`: the grid's easier reading of a decimal text (the CSV keeps
    the plain text, which a spreadsheet reads as a number)."""
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, dot, fraction = digits.partition(".")
    if not whole.isdigit():
        return text
    return f"{sign}{int(whole):,}{dot}{fraction}"


# A charge date is read as 'YYYY-MM-DD|badge' (or '|badge' when there is no date): the date and
# where it came from (SPEC §9).
DATE_SOURCES = {"user": "User Updated", "system": "System Updated", "default": "Default"}


def dated_day(value: str | None) -> str:
    return (value or "").partition("|")[0]


def dated_source(value: str | None) -> str:
    badge = (value or "").partition("|")[2]
    return DATE_SOURCES.get(badge, badge)


LINE_MAPPING = {"mapped": "Mapped", "unmapped": "Unmapped", "excluded": "Excluded"}
SYNC_STATUS = {"not_synced": "Not Synced", "synced": "Synced", "error": "Error", "claimed": "Posting…"}


def line_mapping_text(value: str | None) -> str:
    return LINE_MAPPING.get(value or "", value or "")


def sync_status_text(value: str | None) -> str:
    return SYNC_STATUS.get(value or "", value or "")


def _moment(stored: str) -> datetime:
    return datetime.fromisoformat(stored.replace("Z", "+00:00")).astimezone(UTC)


def local_minute(stored: str | None) -> str:
    """A stored UTC timestamp as the grids show it: local time, to the minute."""
    return _moment(stored).astimezone().strftime("%Y-%m-%d %H:%M") if stored else ""


def iso_utc(stored: str | None) -> str:
    """A stored UTC timestamp as an export holds it: ISO 8601 UTC, to the second."""
    return _moment(stored).strftime("%Y-%m-%dT%H:%M:%SZ") if stored else ""


def plain(value: Any) -> str:
    """Any other value: its text, empty for none."""
    return "" if value is None else str(value)


# The PSA Agreement Name of a line is read as 'name<US>company<US>organization<US>how', how
# being 'posted', 'mapped', 'proposed' (SPEC §8 rule 3), 'new' (rule 4: created at sync) or
# 'none' (nothing can be chosen yet: the line is unmapped).
AGREEMENT_SEPARATOR = "\x1f"
_CUT = " -–—:|/"


def _agreement_parts(value: str | None) -> tuple[str, str, str, str]:
    parts = (value or "").split(AGREEMENT_SEPARATOR)
    parts += [""] * (4 - len(parts))
    return parts[0], parts[1], parts[2], parts[3]


def agreement_full(value: str | None) -> str:
    """The agreement's whole name (the export's text); empty when there is none yet."""
    name, _, _, how = _agreement_parts(value)
    return name if how in ("posted", "mapped", "proposed") else ""


def agreement_short(value: str | None, new_type: str = "") -> str:
    """What tells a customer's agreements apart: the name without the customer's name it starts
    with ("Cedar Point Group - CTR-000001" on Cedar Point Group's line: "… CTR-000001"). A line
    that will get a new agreement says so (SPEC §8 rule 4); an unmapped line shows nothing."""
    name, company, organization, how = _agreement_parts(value)
    if how == "new":
        return f"New agreement ({new_type})" if new_type else "New agreement"
    if how not in ("posted", "mapped", "proposed"):
        return ""
    for prefix in sorted({company, organization}, key=len, reverse=True):
        if prefix and name.startswith(prefix) and name[len(prefix):].strip(_CUT):
            return "… " + name[len(prefix):].lstrip(_CUT)
    return name
