"""The streamed load (issue 18) is a shortcut, never a second set of rules: wherever the inline
check of a line (files._fast_cells) gives the line in the store's form, the column-by-column
check gives the same; amounts in integer micro-units are what Decimal gives; and a load read
line by line writes and reports what the in-memory read would."""

from __future__ import annotations

import csv
import io
import json
import operator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cw_tui.platform.files import _LINE_CELLS, InvoiceLineRow, _fast_cells, cells_of, validate_row
from cw_tui.platform.importer import load_invoices
from cw_tui.rules.charge_dates import ChargeDateRules
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
from cw_tui.store import InvoiceLine, open_store
from tests.conftest import db_connect
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


# ---------------------------------------------------------------- the streamed load, on both backends

TARGET = "2026-09"
TARGET_FILE = f"invoice_lines_{TARGET}.csv"
FIRST, LATER = datetime(2026, 10, 2, tzinfo=UTC), datetime(2026, 10, 9, tzinfo=UTC)


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def _write(path: Path, rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _lines(target) -> list[tuple]:
    with db_connect(target) as connection:
        return connection.execute("SELECT * FROM invoice_line ORDER BY line_id").fetchall()


@pytest.mark.both_backends
def test_a_reload_of_the_same_file_changes_nothing_but_the_load_time(store, db_target, demo_folder: Path) -> None:
    rules = ChargeDateRules.defaults()
    load_invoices(store, demo_folder, [TARGET], rules, now=FIRST)
    before = _lines(db_target)
    report = load_invoices(store, demo_folder, [TARGET], rules, now=LATER)
    stats = report.periods[0]
    assert (stats.added, stats.changed, stats.removed, stats.refreshed) == (0, 0, 0, len(before))
    assert stats.changed_fields == {} and stats.changed_lines == {}
    after = _lines(db_target)
    at = [d[0] for d in db_connect_description(db_target)].index("loaded_at")
    assert [r[:at] + r[at + 1:] for r in after] == [r[:at] + r[at + 1:] for r in before]
    assert {r[at] for r in after} == {"2026-10-09T00:00:00.000000Z"}


def db_connect_description(target) -> list[tuple]:
    with db_connect(target) as connection:
        cursor = connection.execute("SELECT * FROM invoice_line WHERE 1 = 0")
        return list(cursor.description)


@pytest.mark.both_backends
def test_a_reload_names_the_first_changed_lines_in_file_order_and_counts_every_field(store, demo_folder: Path) -> None:
    rules = ChargeDateRules.defaults()
    load_invoices(store, demo_folder, [TARGET], rules, now=FIRST)
    path = demo_folder / TARGET_FILE
    rows = _rows(path)
    header = rows[0]
    plain = [i for i in range(1, len(rows)) if rows[i][header.index("invoice_status")] != "New"]
    changed = plain[:25]
    for i in changed:
        rows[i][header.index("quantity")] = "4242"
    for i in changed[:3]:
        rows[i][header.index("subscription_name")] = "Renamed"
    # a stale claim on an unsynced line is cleared by the refresh, as a fresh row had none
    stale = rows[plain[30]][0]
    InvoiceLine.update(claimed_by="gone-host", claimed_at=FIRST).where(InvoiceLine.line_id == stale).execute()
    _write(path, rows)
    stats = load_invoices(store, demo_folder, [TARGET], rules, now=LATER).periods[0]
    assert stats.changed == 25
    assert stats.changed_fields == {"quantity": 25, "subscription name": 3}
    assert list(stats.changed_lines) == [rows[i][0] for i in changed[:20]]
    assert stats.changed_lines[rows[changed[0]][0]] == ["subscription name", "quantity"]
    assert stats.changed_lines[rows[changed[5]][0]] == ["quantity"]
    assert InvoiceLine.get_by_id(rows[changed[0]][0]).quantity == Decimal(4242)
    claim = InvoiceLine.get_by_id(stale)
    assert (claim.claimed_by, claim.claimed_at) == (None, None)


@pytest.mark.both_backends
def test_a_json_export_loads_the_same_lines_as_its_csv(store, db_target, demo_folder: Path, new_db) -> None:
    """JSON invoice lines take the full read (read_export), and land in the same staging."""
    rules = ChargeDateRules.defaults()
    load_invoices(store, demo_folder, [TARGET], rules, now=FIRST)
    path = demo_folder / TARGET_FILE
    rows = _rows(path)
    path.unlink()
    (demo_folder / f"invoice_lines_{TARGET}.json").write_text(
        json.dumps([dict(zip(rows[0], r, strict=True)) for r in rows[1:]]), encoding="utf-8")
    other = new_db("json")
    with open_store(other) as json_store:
        load_invoices(json_store, demo_folder, [TARGET], rules, now=FIRST)
    assert _lines(other) == _lines(db_target)


@pytest.mark.both_backends
def test_lines_in_any_order_load_and_report_as_in_file_order(store, db_target, demo_folder: Path, new_db) -> None:
    """The staging table is indexed as the lines come (no sort afterwards): an export whose
    line IDs are not in order loads the same lines, and a re-load still names changed lines
    in the order of the file."""
    rules = ChargeDateRules.defaults()
    load_invoices(store, demo_folder, [TARGET], rules, now=FIRST)
    path = demo_folder / TARGET_FILE
    rows = _rows(path)
    header, body = rows[0], rows[1:][::-1]
    _write(path, [header, *body])
    other = new_db("reversed")
    with open_store(other) as reversed_store:
        load_invoices(reversed_store, demo_folder, [TARGET], rules, now=FIRST)
        assert _lines(other) == _lines(db_target)
        plain = [r for r in body if r[header.index("invoice_status")] != "New"]
        for row in plain[:5]:
            row[header.index("quantity")] = "77"
        _write(path, [header, *body])
        stats = load_invoices(reversed_store, demo_folder, [TARGET], rules, now=LATER).periods[0]
    assert list(stats.changed_lines) == [r[0] for r in plain[:5]]
    assert plain[0][0] > plain[4][0]  # file order, not line ID order


def test_a_load_leaves_the_connection_as_it_found_it(tmp_path: Path, demo_folder: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """On SQLite the staging table is a scratch file attached for the load, read through a
    small cache and no memory map: afterwards the store's own settings are back, a temp table
    of the grids' is still there, and the scratch file is gone, after a good load and a bad one."""
    import tempfile

    from cw_tui.platform.files import PlatformDataError

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    rules = ChargeDateRules.defaults()
    with open_store(tmp_path / "store.sqlite3") as store:
        db = store.db
        settings = {name: db.execute_sql(f"PRAGMA {name}").fetchone()[0]
                    for name in ("cache_size", "mmap_size", "temp_store")}
        db.execute_sql("CREATE TEMP TABLE grid_rows (line_id TEXT)")
        db.execute_sql("INSERT INTO grid_rows VALUES ('kept')")
        load_invoices(store, demo_folder, [TARGET], rules, now=FIRST)
        path = demo_folder / TARGET_FILE
        rows = _rows(path)
        rows[1][rows[0].index("quantity")] = "many"
        _write(path, rows)
        with pytest.raises(PlatformDataError):
            load_invoices(store, demo_folder, [TARGET], rules, now=LATER)
        assert {name: db.execute_sql(f"PRAGMA {name}").fetchone()[0] for name in settings} == settings
        assert [r[1] for r in db.execute_sql("PRAGMA database_list")] == ["main", "temp"]
        assert db.execute_sql("SELECT line_id FROM grid_rows").fetchall() == [("kept",)]
    assert list(scratch.iterdir()) == []
