"""The inline check of a plain invoice line (files._fast_line) is only a shortcut: wherever it
gives a row, the column-by-column check (validate_row) gives the same row; where the cells are
not plain it gives none and validate_row says what is wrong (issue 18)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cw_tui.platform.files import InvoiceLineRow, _fast_line, validate_row

PLAIN = {
    "line_id": "L-1", "invoice_number": "INV-1", "invoice_date": "2026-10-01", "invoice_status": "Processed",
    "organization_id": "ORG-1", "contract_id": "C-1", "subscription_id": "S-1", "subscription_name": "Seats",
    "offer_id": "OF-1", "charge_type": "Cycle Fee", "billing_cycle": "Monthly", "quantity": "3",
    "unit_price": "9.99", "unit_cost": "7.5", "currency": "usd", "charge_start": "2026-10-01", "charge_end": "",
}

ODD = {
    "line_id": ["", " L-1", "L-1 ", "x" * 200, "L\u00a02"],
    "invoice_date": ["2026-13-01", "2026-02-30", " 2026-10-01", "2026/10/01", "", "20261001", "2026-1a-01"],
    "invoice_status": ["processed", "VERIFIED", " Processed", "Nope", "New", "Verified", ""],
    "charge_type": ["cycle fee", "Cycle  Fee", "Usage Fee", "Usage", "?"],
    "billing_cycle": ["monthly", "Annual", "x"],
    "quantity": ["1e3", "1,5", " 3", "03", "-0", "-1.5", "1.1234567", "9999999999", "", "+1", "0.000001"],
    "unit_price": ["nan", "Infinity", "1_000", "12.", ".5", "-0.0"],
    "currency": ["US", "usd ", "EUR", "€ur", ""],
    "charge_start": ["2026-10-31", "", "2026-10-1"],
    "charge_end": ["2026-11-30", " ", "2026-11-31", "x"],
    "subscription_name": ["", " a", "y" * 300],
}


def _check(raw: dict[str, str]) -> None:
    fast = _fast_line(raw)
    slow, problems = validate_row(InvoiceLineRow, raw)
    if fast is not None:
        assert problems == []
        assert fast == slow
        assert [type(v) for v in fast] == [type(v) for v in slow]


def test_a_plain_line_takes_the_shortcut_with_the_same_row() -> None:
    fast = _fast_line(dict(PLAIN))
    assert fast is not None
    assert fast == validate_row(InvoiceLineRow, dict(PLAIN))[0]
    assert fast.currency == "USD" and fast.charge_end is None and fast.period == "2026-10"


def test_a_line_without_the_optional_charge_end_key_is_checked_in_full() -> None:
    raw = {k: v for k, v in PLAIN.items() if k != "charge_end"}
    assert _fast_line(raw) is None
    row, problems = validate_row(InvoiceLineRow, raw)
    assert problems == [] and row.charge_end is None


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in ODD.items()}))
def test_the_shortcut_never_differs_from_the_full_check(changes: dict[str, str]) -> None:
    _check({**PLAIN, **changes})


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(PLAIN)), st.text(max_size=12))
def test_any_text_in_any_column(column: str, text: str) -> None:
    _check({**PLAIN, column: text})
