"""The Platform import: every bad input is rejected whole, naming file, line and column
(SPEC §14), and re-loading a period follows SPEC §5.3."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from cw_tui.rules.charge_dates import ChargeDateRules, EndRule
from cw_tui.rules.vocabulary import ChargeType
from cw_tui.services.platform_files import PlatformDataError
from cw_tui.services.platform_import import load_invoices
from cw_tui.services.store import InvoiceLine, Offer, Organization

LOADED, TARGET = "2026-08", "2026-09"
TARGET_FILE = f"invoice_lines_{TARGET}.csv"


def read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def write_csv(path: Path, rows: list[list[str]], *, newline: str = "\n", bom: bool = False, encoding: str = "utf-8") -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline).writerows(rows)
    data = buffer.getvalue().encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)


def set_cell(rows: list[list[str]], row: int, column: str, value: str) -> None:
    rows[row][rows[0].index(column)] = value


@pytest.fixture
def prepared(cli, demo_folder: Path, tmp_path: Path):
    """A store with one period loaded, and its status before the bad load."""
    db = tmp_path / "x.sqlite3"
    assert cli("--db", db, "configure", "--platform-dir", demo_folder).code == 0
    assert cli("--db", db, "load-invoices", "--period", LOADED).code == 0
    before = cli("--db", db, "status", "--json").json()
    assert [p["period"] for p in before["periods"]] == [LOADED]
    return db, before


def damage(folder: Path, how: str) -> str:
    """Damage the target month's file; returns the `file:line` the error must name."""
    path = folder / TARGET_FILE
    rows = read_csv(path)
    if how == "missing column":
        col = rows[0].index("currency")
        write_csv(path, [r[:col] + r[col + 1:] for r in rows])
        return f"{TARGET_FILE}:1: missing column(s): currency"
    if how == "bad date":
        set_cell(rows, 5, "invoice_date", "2026-09-31")
        write_csv(path, rows)
        return f"{TARGET_FILE}:6: invoice_date: not a valid date: '2026-09-31'"
    if how == "bad number":
        set_cell(rows, 7, "quantity", "1,5")
        write_csv(path, rows)
        return f"{TARGET_FILE}:8: quantity: not a number: '1,5'"
    if how == "unknown charge type":
        set_cell(rows, 3, "charge_type", "Monthly Fee")
        write_csv(path, rows)
        return f"{TARGET_FILE}:4: charge_type: unknown value 'Monthly Fee'"
    if how == "duplicate line ID":
        set_cell(rows, 9, "line_id", rows[2][0])
        write_csv(path, rows)
        return f"{TARGET_FILE}:10: line_id: duplicate line ID '{rows[2][0]}' (first at {TARGET_FILE}:3)"
    if how == "empty file":
        path.write_bytes(b"")
        return f"{TARGET_FILE}:1: the file is empty"
    if how == "wrong encoding":
        set_cell(rows, 4, "subscription_name", "Café Résumé")
        write_csv(path, rows, encoding="latin-1")
        return f"{TARGET_FILE}:5: not valid UTF-8 (byte 0xE9)"
    if how == "utf-16":
        write_csv(path, rows, encoding="utf-16")
        return f"{TARGET_FILE}:1: the file is UTF-16 encoded"
    if how == "BOM with a bad row":
        set_cell(rows, 2, "unit_price", "12.5.0")
        write_csv(path, rows, bom=True)
        return f"{TARGET_FILE}:3: unit_price: not a number: '12.5.0'"
    if how == "CRLF with a bad row":
        set_cell(rows, 11, "charge_start", "09/01/2026")
        write_csv(path, rows, newline="\r\n")
        return f"{TARGET_FILE}:12: charge_start: not a date: '09/01/2026' (expected YYYY-MM-DD)"
    if how == "unknown organization":
        set_cell(rows, 6, "organization_id", "ORG-99999")
        write_csv(path, rows)
        return f"{TARGET_FILE}:7: organization_id: unknown organization 'ORG-99999'"
    if how == "ragged row":
        rows[8] = rows[8][:-2]
        write_csv(path, rows)
        return f"{TARGET_FILE}:9: expected 17 cells, found 15"
    raise AssertionError(how)


BAD_INPUTS = [
    "missing column", "bad date", "bad number", "unknown charge type", "duplicate line ID", "empty file",
    "wrong encoding", "utf-16", "BOM with a bad row", "CRLF with a bad row", "unknown organization", "ragged row",
]


@pytest.mark.parametrize("how", BAD_INPUTS)
def test_a_bad_file_is_rejected_whole_naming_file_and_line(cli, prepared, demo_folder: Path, how: str) -> None:
    db, before = prepared
    expected = damage(demo_folder, how)
    result = cli("--db", db, "load-invoices", "--period", TARGET, "--period", LOADED)
    assert result.code == 2
    assert expected in result.err
    assert "nothing was changed" in result.err
    assert "Traceback" not in result.err + result.out
    assert cli("--db", db, "status", "--json").json() == before
    # the rejection itself is logged, with the details
    logs = cli("--db", db, "logs", "--level", "error", "--json").json()
    assert logs and expected in logs[0]["details"]


def test_the_undamaged_file_loads(cli, prepared) -> None:
    """The control for the test above: without damage the same load succeeds."""
    db, before = prepared
    assert cli("--db", db, "load-invoices", "--period", TARGET).code == 0
    assert [p["period"] for p in cli("--db", db, "status", "--json").json()["periods"]] == [TARGET, LOADED]


@pytest.mark.parametrize("variant", ["bom", "crlf", "bom+crlf"])
def test_bom_and_crlf_files_load_like_plain_ones(cli, demo_folder: Path, tmp_path: Path, variant: str) -> None:
    plain_db, other_db = tmp_path / "plain.sqlite3", tmp_path / "variant.sqlite3"
    assert cli("--db", plain_db, "load-invoices", "--platform-dir", demo_folder, "--period", TARGET).code == 0
    path = demo_folder / TARGET_FILE
    write_csv(path, read_csv(path), bom="bom" in variant, newline="\r\n" if "crlf" in variant else "\n")
    assert cli("--db", other_db, "load-invoices", "--platform-dir", demo_folder, "--period", TARGET).code == 0
    plain = cli("--db", plain_db, "status", "--json").json()["periods"]
    other = cli("--db", other_db, "status", "--json").json()["periods"]
    assert plain == other and plain[0]["lines"] > 100


def test_errors_are_capped_but_counted(store, demo_folder: Path) -> None:
    path = demo_folder / TARGET_FILE
    rows = read_csv(path)
    for row in rows[1:]:
        set_cell(rows, rows.index(row), "currency", "dollars")
    write_csv(path, rows)
    with pytest.raises(PlatformDataError) as caught:
        load_invoices(store, demo_folder, [TARGET], ChargeDateRules.defaults())
    assert caught.value.total == len(rows) - 1
    assert len(caught.value.errors) == 50
    assert f"... and {len(rows) - 1 - 50} more" in str(caught.value)


def test_json_files_are_read_too(store, demo_folder: Path) -> None:
    rows = read_csv(demo_folder / "organizations.csv")
    (demo_folder / "organizations.csv").unlink()
    items = [dict(zip(rows[0], r)) for r in rows[1:]]
    items[3]["name"] = ""
    (demo_folder / "organizations.json").write_text(json.dumps(items))
    with pytest.raises(PlatformDataError, match=r"organizations.json:item 4: name: empty"):
        load_invoices(store, demo_folder, [TARGET], ChargeDateRules.defaults())
    items[3]["name"] = "Fixed Name"
    (demo_folder / "organizations.json").write_text(json.dumps(items))
    report = load_invoices(store, demo_folder, [TARGET], ChargeDateRules.defaults())
    assert report.periods[0].lines > 0


def test_missing_files_are_named(store, demo_folder: Path) -> None:
    (demo_folder / "offers.csv").unlink()
    with pytest.raises(PlatformDataError, match="missing offers.csv"):
        load_invoices(store, demo_folder, [TARGET], ChargeDateRules.defaults())
    with pytest.raises(PlatformDataError, match="does not exist"):
        load_invoices(store, demo_folder / "nope", [TARGET], ChargeDateRules.defaults())


def test_new_invoices_are_skipped_and_counted(store, demo_folder: Path) -> None:
    path = demo_folder / TARGET_FILE
    rows = read_csv(path)
    for index in (1, 2, 3):
        set_cell(rows, index, "invoice_status", "new")
    write_csv(path, rows)
    report = load_invoices(store, demo_folder, [TARGET], ChargeDateRules.defaults())
    period = report.periods[0]
    assert period.skipped_new >= 3
    assert InvoiceLine.get_or_none(InvoiceLine.line_id == rows[1][0]) is None
    assert period.lines == InvoiceLine.select().where(InvoiceLine.period == TARGET).count() == len(rows) - 1 - period.skipped_new


def test_new_organizations_start_excluded_and_amounts_are_exact(store, demo_folder: Path) -> None:
    load_invoices(store, demo_folder, [TARGET], ChargeDateRules.defaults())
    assert Organization.select().count() > 0
    assert Organization.select().where(Organization.excluded == False).count() == 0  # noqa: E712
    rows = read_csv(demo_folder / TARGET_FILE)
    header = rows[0]
    usage = next(r for r in rows[1:] if r[header.index("charge_type")] == "Usage Fee")
    line = InvoiceLine.get_by_id(usage[0])
    assert line.quantity == Decimal(usage[header.index("quantity")])
    assert line.total == Decimal(usage[header.index("quantity")]) * Decimal(usage[header.index("unit_price")])
    assert isinstance(line.invoice_date, date)


def test_reloading_a_period_follows_the_rules_of_spec_5_3(store, demo_folder: Path) -> None:
    rules = ChargeDateRules.defaults()
    load_invoices(store, demo_folder, [TARGET], rules)
    path = demo_folder / TARGET_FILE
    rows = read_csv(path)
    h = rows[0]
    synced, edited, errored, plain, gone, synced_gone = (rows[i][0] for i in (1, 2, 3, 4, 5, 6))

    InvoiceLine.update(sync_status="synced", addition_id=501).where(InvoiceLine.line_id.in_([synced, synced_gone])).execute()
    InvoiceLine.update(charge_start=date(2026, 9, 15), charge_start_badge="user", override_product_id=77).where(
        InvoiceLine.line_id == edited).execute()
    InvoiceLine.update(sync_status="error", last_error="400: product inactive").where(InvoiceLine.line_id == errored).execute()
    before_synced = InvoiceLine.get_by_id(synced).quantity

    for index in (1, 2, 3, 4):
        set_cell(rows, index, "quantity", "999")
    rows = [r for r in rows if r[0] not in (gone, synced_gone)]
    write_csv(path, rows)
    # A rule configured now applies to lines (re)loaded from now on, never to synced ones.
    report = load_invoices(store, demo_folder, [TARGET], ChargeDateRules(end={ChargeType(rows[4][h.index("charge_type")]): EndRule.NO_END_DATE}, start={}))
    stats = report.periods[0]
    assert stats.removed == 1 and stats.kept_synced == 2

    assert InvoiceLine.get_by_id(synced).quantity == before_synced  # never touched
    assert InvoiceLine.get_by_id(synced_gone).sync_status == "synced"  # kept though gone
    e = InvoiceLine.get_by_id(edited)
    assert e.quantity == 999 and e.charge_start == date(2026, 9, 15) and e.charge_start_badge == "user" and e.override_product_id == 77
    r = InvoiceLine.get_by_id(errored)
    assert r.quantity == 999 and r.sync_status == "error" and r.last_error == "400: product inactive"
    p = InvoiceLine.get_by_id(plain)
    assert p.quantity == 999 and p.charge_end is None and p.charge_end_badge == "system"
    assert InvoiceLine.get_or_none(InvoiceLine.line_id == gone) is None
    assert stats.lines == InvoiceLine.select().where(InvoiceLine.period == TARGET).count()


def test_reload_keeps_mappings_and_inclusion(store, demo_folder: Path) -> None:
    load_invoices(store, demo_folder, [TARGET], ChargeDateRules.defaults())
    org = Organization.select().first()
    Organization.update(company_id=12, excluded=False).where(Organization.platform_id == org.platform_id).execute()
    offer = Offer.select().first()
    Offer.update(product_id=34).where(Offer.platform_id == offer.platform_id).execute()
    load_invoices(store, demo_folder, [TARGET, LOADED], ChargeDateRules.defaults())
    org = Organization.get_by_id(org.platform_id)
    assert (org.company_id, org.excluded) == (12, False)
    assert Offer.get_by_id(offer.platform_id).product_id == 34
