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
_MAX_TOTAL_MICROS2 = 10**12 * _FACTOR**2  # MAX_TOTAL as a product of two amounts in micro-units

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


def total_too_large(quantity_micros: int, unit_price_micros: int) -> bool:
    """check_total in micro-units: exact integers, as Decimal's product of two amounts is."""
    return abs(quantity_micros * unit_price_micros) >= _MAX_TOTAL_MICROS2


def plain_micros(text: str) -> int | None:
    """A number in the plain form parse_decimal takes at once, as micro-units (exact: at most
    six decimals); None for any other text (parse_decimal then says what is wrong)."""
    if _plain(text) is None:
        return None
    whole, _, decimals = text.partition(".")
    return int(whole + decimals) * _SHIFT[len(decimals)]


_plain = _PLAIN.fullmatch
_SHIFT = tuple(10 ** (SCALE - d) for d in range(SCALE + 1))  # micro-units per unit of the last decimal


def total_micros(quantity_micros: int, unit_price_micros: int) -> int:
    """line_total in micro-units: the product rounded half to even to a micro-unit."""
    whole, rest = divmod(quantity_micros * unit_price_micros, _FACTOR)
    if rest * 2 > _FACTOR or (rest * 2 == _FACTOR and whole % 2):
        whole += 1
    return whole


def to_micros(value: Decimal) -> int:
    return int((value * _FACTOR).to_integral_value(rounding=ROUND_HALF_EVEN))


def from_micros(micros: int) -> Decimal:
    return Decimal(micros).scaleb(-SCALE)


def line_total(quantity: Decimal, unit_price: Decimal) -> Decimal:
    return (quantity * unit_price).quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)
