"""Amounts and quantities are Decimal in Python and integer micro-units (10^-6) in SQLite,
so that SQL can sort and sum them exactly."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal

SCALE = 6
_QUANTUM = Decimal(1).scaleb(-SCALE)
_FACTOR = 10**SCALE

# Bounds of a Platform file's numbers (README, "The Platform export folder"): a line total in
# micro-units stays far inside SQLite's 64-bit integers (9.2 * 10^18).
MAX_AMOUNT = Decimal(10) ** 9  # |quantity|, |unit price| and |unit cost| are below this
MAX_TOTAL = Decimal(10) ** 12  # |quantity * unit price| is below this

# The documented form, within MAX_AMOUNT: ASCII digits only ([0-9], not \d, which takes any
# script's digits), an optional minus, at most 6 decimals after a point with digits on both sides.
_PLAIN = re.compile(r"-?[0-9]{1,9}(?:\.[0-9]{1,6})?")
_DIGITS = re.compile(r"-?([0-9]+)(?:\.([0-9]+))?")


def shown(text: str, limit: int = 40) -> str:
    """A value for a message: quoted, and cut short (a runaway cell can be pages long)."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"… ({len(text):,} characters)"


def parse_decimal(text: str) -> Decimal:
    """A number of a Platform file; ValueError says what is wrong with any other text."""
    if _PLAIN.fullmatch(text):  # the common case: one regex, no other check
        return Decimal(text)
    return _parse_unusual(text)


def _parse_unusual(text: str) -> Decimal:
    cleaned = text.strip()
    if not cleaned:
        raise ValueError("empty (a number is required)")
    match = _DIGITS.fullmatch(cleaned)
    if match is None:
        raise ValueError(f"not a number: {shown(text)}{_hint(cleaned)}")
    if match.group(2) and len(match.group(2)) > SCALE:
        raise ValueError(f"{shown(cleaned)} has more than {SCALE} decimal places")
    value = Decimal(cleaned)
    if abs(value) >= MAX_AMOUNT:
        raise ValueError(f"{shown(cleaned)} is too large (numbers must be below {MAX_AMOUNT:,} in absolute value)")
    return value  # spaces around it, or leading zeros


def _hint(text: str) -> str:
    if "," in text:
        return " (use . as the decimal point and no thousands separator)"
    if "_" in text or "'" in text or " " in text:
        return " (write it without thousands separators)"
    if "e" in text.lower() and any(c.isdigit() for c in text):
        return " (write it without an exponent, e.g. 1000 for 1e3)"
    if text.startswith("+"):
        return " (write it without a + sign)"
    if text.startswith((".", "-.")) or text.endswith("."):
        return " (write digits on both sides of the point, e.g. 0.5 or 5)"
    if any(c.isdigit() and not c.isascii() for c in text):
        return " (use the digits 0-9)"
    return " (expected digits with an optional - and . as the decimal point, e.g. -12.50)"


def check_total(quantity: Decimal, unit_price: Decimal) -> None:
    """A line's total must fit the store (MAX_TOTAL)."""
    if abs(quantity * unit_price) >= MAX_TOTAL:
        raise ValueError(f"quantity × unit_price = {quantity * unit_price:,} is too large "
                         f"(a line total must be below {MAX_TOTAL:,} in absolute value)")


def to_micros(value: Decimal) -> int:
    return int((value * _FACTOR).to_integral_value(rounding=ROUND_HALF_EVEN))


def from_micros(micros: int) -> Decimal:
    return Decimal(micros).scaleb(-SCALE)


def line_total(quantity: Decimal, unit_price: Decimal) -> Decimal:
    return (quantity * unit_price).quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)
