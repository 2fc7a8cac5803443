"""Amounts and quantities are Decimal in Python and integer micro-units (10^-6) in SQLite,
so that SQL can sort and sum them exactly."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

SCALE = 6
_QUANTUM = Decimal(1).scaleb(-SCALE)
_FACTOR = 10**SCALE


def parse_decimal(text: str) -> Decimal:
    cleaned = text.strip()
    if not cleaned:
        raise ValueError("empty (a number is required)")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        hint = " (use . as the decimal point and no thousands separator)" if "," in cleaned else ""
        raise ValueError(f"not a number: {text!r}{hint}") from None
    if not value.is_finite():
        raise ValueError(f"not a finite number: {text!r}")
    dot = cleaned.find(".")
    if ("e" in cleaned or "E" in cleaned) and value.as_tuple().exponent < -SCALE:  # type: ignore[operator]
        raise ValueError(f"{text!r} has more than {SCALE} decimal places")
    if dot >= 0 and len(cleaned) - dot - 1 > SCALE and value != value.quantize(_QUANTUM):
        raise ValueError(f"{text!r} has more than {SCALE} decimal places")
    if abs(value) >= Decimal(10) ** 12:
        raise ValueError(f"{text!r} is too large")
    return value


def to_micros(value: Decimal) -> int:
    return int((value * _FACTOR).to_integral_value(rounding=ROUND_HALF_EVEN))


def from_micros(micros: int) -> Decimal:
    return Decimal(micros).scaleb(-SCALE)


def line_total(quantity: Decimal, unit_price: Decimal) -> Decimal:
    return (quantity * unit_price).quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)
