"""The streamed load (issue 18) is a shortcut, never a second set of rules: wherever the inline
check of a line (files._fast_cells) gives the line in the store's form, the column-by-column
check gives the same; amounts in integer micro-units are what Decimal gives; and a load read
line by line writes and reports what the in-memory read would."""

from __future__ import annotations

import operator
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from cw_tui.platform.files import _LINE_CELLS, InvoiceLineRow, _fast_cells, cells_of, validate_row
from cw_tui.rules.money import (
    MAX_TOTAL,
    check_total,
    line_total,
    parse_decimal,
    plain_micros,
    to_micros,
    total_micros,
    total_too_large,
)
from tests.test_platform_fast_rows import ODD, PLAIN

_PICK = operator.itemgetter(*range(len(_LINE_CELLS)))


def _check(raw: dict[str, str]) -> None:
    fast = _fast_cells([raw[c] for c in _LINE_CELLS], _PICK)
    slow, problems = validate_row(InvoiceLineRow, raw)
    if fast is not None:
        assert problems == []
        assert fast == cells_of(slow)
        assert [type(v) for v in fast] == [type(v) for v in cells_of(slow)]


def test_a_plain_line_takes_the_shortcut_in_the_stores_form() -> None:
    fast = _fast_cells([PLAIN[c] for c in _LINE_CELLS], _PICK)
    assert fast is not None
    assert fast.quantity == 3_000_000 and fast.unit_price == 9_990_000 and fast.unit_cost == 7_500_000
    assert fast.invoice_date == "2026-10-01" and fast.charge_end is None and fast.currency == "USD"


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in ODD.items()}))
def test_the_shortcut_never_differs_from_the_full_check(changes: dict[str, str]) -> None:
    _check({**PLAIN, **changes})


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(PLAIN)), st.text(max_size=12))
def test_any_text_in_any_column(column: str, text: str) -> None:
    _check({**PLAIN, column: text})


_AMOUNT = st.builds(lambda whole, decimals, digits, minus: ("-" if minus else "") + str(whole)
                    + (f".{digits:0{decimals}d}"[: decimals + 1] if decimals else ""),
                    st.integers(0, 999_999_999), st.integers(0, 6), st.integers(0, 999_999), st.booleans())


@settings(max_examples=500, deadline=None)
@given(_AMOUNT, _AMOUNT)
def test_micro_units_are_what_decimal_gives(quantity: str, unit_price: str) -> None:
    q, p = plain_micros(quantity), plain_micros(unit_price)
    assert q == to_micros(parse_decimal(quantity)) and p == to_micros(parse_decimal(unit_price))
    too_large = abs(Decimal(quantity) * Decimal(unit_price)) >= MAX_TOTAL
    assert total_too_large(q, p) == too_large
    if not too_large:
        check_total(Decimal(quantity), Decimal(unit_price))
        assert total_micros(q, p) == to_micros(line_total(Decimal(quantity), Decimal(unit_price)))


@given(st.text(max_size=14))
def test_only_the_plain_form_has_micro_units(text: str) -> None:
    micros = plain_micros(text)
    if micros is not None:
        assert micros == to_micros(parse_decimal(text))
