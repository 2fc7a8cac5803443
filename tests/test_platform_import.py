"""The Platform import: every bad input is rejected whole, naming file, line and column
(SPEC §14), and re-loading a period follows SPEC §5.3."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cw_tui.platform.files import PlatformDataError
from cw_tui.platform.importer import RemovalsNeedConsent, load_invoices
from cw_tui.rules.charge_dates import ChargeDateRules, EndRule
from cw_tui.rules.money import MAX_AMOUNT, line_total, parse_decimal, to_micros
from cw_tui.rules.vocabulary import ChargeType
from cw_tui.store import InvoiceLine, Offer, Organization
from tests.conftest import db_connect

pytestmark = pytest.mark.both_backends

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
def prepared(cli, demo_folder: Path, new_db):
    """A store with one period loaded, and its status before the bad load."""
    db = new_db("x")
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
def test_bom_and_crlf_files_load_like_plain_ones(cli, demo_folder: Path, new_db, variant: str) -> None:
    plain_db, other_db = new_db("plain"), new_db("variant")
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
    items = [dict(zip(rows[0], r, strict=False)) for r in rows[1:]]
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
    new_rules = ChargeDateRules(end={ChargeType(rows[4][h.index("charge_type")]): EndRule.NO_END_DATE}, start={})
    with pytest.raises(RemovalsNeedConsent) as asked:  # the unsynced line gone is removed only with consent
        load_invoices(store, demo_folder, [TARGET], new_rules)
    assert asked.value.line_ids == {TARGET: [gone]}
    assert InvoiceLine.get_by_id(plain).quantity != 999  # nothing written
    report = load_invoices(store, demo_folder, [TARGET], new_rules, allow_removals=asked.value.consent)
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


# ---------------------------------------------------------------- issue 10: what a load may remove or move


def store_dump(db: Path | str) -> dict[str, list[tuple]]:
    """Every stored line (all columns, so also every status) and what each load recorded."""
    with db_connect(db) as connection:
        return {table: connection.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
                for table in ("invoice_line", "period_load", "period_new_subscription", "organization", "offer", "contract")}


@pytest.fixture
def loaded(cli, demo_folder: Path, new_db):
    """A store with both months loaded, a few lines of the target month synced."""
    db = new_db("loaded")
    assert cli("--db", db, "configure", "--platform-dir", demo_folder).code == 0
    assert cli("--db", db, "load-invoices", "--period", LOADED, "--period", TARGET).code == 0
    with db_connect(db) as connection:
        connection.execute("UPDATE invoice_line SET sync_status = 'synced', addition_id = 7 WHERE line_id IN "
                           "(SELECT line_id FROM invoice_line WHERE period = ? ORDER BY line_id LIMIT 5)", (TARGET,))
    return db, store_dump(db)


def assert_rejected(result, expected: str, db: Path | str, before: dict) -> None:
    assert result.code == 2, result.out + result.err
    assert expected in result.err, result.err
    assert "Traceback" not in result.err + result.out
    assert store_dump(db) == before


def without_lines(path: Path, line_ids: set[str]) -> None:
    write_csv(path, [r for r in read_csv(path) if r[0] not in line_ids])


def combine_monthly_files(folder: Path) -> None:
    """One invoice_lines.csv instead of a file per month."""
    monthly = sorted(folder.glob("invoice_lines_*.csv"))
    rows = read_csv(monthly[0])[:1] + [r for path in monthly for r in read_csv(path)[1:]]
    for path in monthly:
        path.unlink()
    write_csv(folder / "invoice_lines.csv", rows)


def header_only(path: Path) -> None:
    write_csv(path, read_csv(path)[:1])


MISSING = {
    "missing file": (lambda f: (f / TARGET_FILE).unlink(),
                     f"no invoice_lines_{TARGET}.csv (or .json) for the requested period {TARGET}"),
    "header only": (lambda f: header_only(f / TARGET_FILE),
                    f"{TARGET_FILE}:1: the file has a header row but no invoice lines (period {TARGET} was requested)"),
    "header and blank lines": (lambda f: (f / TARGET_FILE).write_text(",".join(read_csv(f / TARGET_FILE)[0]) + "\n\n\n"),
                               f"{TARGET_FILE}:1: the file has a header row but no invoice lines"),
    "an empty JSON array": (lambda f: ((f / TARGET_FILE).unlink(), (f / f"invoice_lines_{TARGET}.json").write_text("[]")),
                            f"invoice_lines_{TARGET}.json:1: the file has no invoice lines (period {TARGET} was requested)"),
    "nested too deeply for JSON": (lambda f: ((f / TARGET_FILE).unlink(),
                                              (f / f"invoice_lines_{TARGET}.json").write_text("[" * 100_000 + "]" * 100_000)),
                                   f"invoice_lines_{TARGET}.json:1: not valid JSON: arrays or objects nested too deeply"),
    "a folder by that name": (lambda f: ((f / TARGET_FILE).unlink(), (f / TARGET_FILE).mkdir()),
                              f"{TARGET_FILE}:1: cannot read the file: Is a directory"),
    "a broken link": (lambda f: ((f / TARGET_FILE).unlink(), (f / TARGET_FILE).symlink_to(f / "gone.csv")),
                      f"{TARGET_FILE}:1: cannot read the file: No such file or directory"),
    "saved as Excel": (lambda f: (f / TARGET_FILE).rename(f / f"invoice_lines_{TARGET}.xlsx"),
                       f"no invoice_lines_{TARGET}.csv (or .json) for the requested period {TARGET}"),
    "combined file without the month": (
        lambda f: (combine_monthly_files(f), write_csv(f / "invoice_lines.csv", [
            r for r in read_csv(f / "invoice_lines.csv") if not r[2].startswith(TARGET)])),
        f"invoice_lines.csv: no invoice line is dated in {TARGET} (a requested period), and there is no {TARGET_FILE}"),
}


@pytest.mark.parametrize("how", MISSING)
def test_a_requested_month_without_lines_is_an_error_not_a_removal(cli, loaded, demo_folder: Path, how: str) -> None:
    """Issue 10.3: loading "no lines" would remove every unsynced line of the month."""
    db, before = loaded
    damage_folder, expected = MISSING[how]
    damage_folder(demo_folder)
    result = cli("--db", db, "load-invoices", "--period", TARGET)
    assert_rejected(result, expected, db, before)
    assert "nothing was changed" in result.err
    # with --allow-removals too: consent to remove lines is no consent to a missing file
    assert_rejected(cli("--db", db, "load-invoices", "--period", TARGET, "--allow-removals", "0" * 12), expected, db, before)


def test_a_combined_file_with_the_month_loads(cli, demo_folder: Path, new_db) -> None:
    """The control of "combined file without the month": the same file with it loads."""
    db = new_db("c")
    combine_monthly_files(demo_folder)
    result = cli("--db", db, "load-invoices", "--platform-dir", demo_folder, "--period", TARGET, "--json")
    assert result.code == 0, result.err
    assert result.json()["periods"][0]["lines"] > 100


def test_a_month_of_new_invoices_only_loads_no_line_and_is_no_error(cli, demo_folder: Path, new_db) -> None:
    path = demo_folder / TARGET_FILE
    rows = read_csv(path)
    for index in range(1, len(rows)):
        set_cell(rows, index, "invoice_status", "New")
    write_csv(path, rows)
    result = cli("--db", new_db("n"), "load-invoices", "--platform-dir", demo_folder, "--period", TARGET, "--json")
    assert result.code == 0, result.err
    [period] = result.json()["periods"]
    assert period["lines"] == 0 and period["skipped_new"] == len(rows) - 1


def test_an_unbalanced_quote_is_reported_where_its_record_starts(cli, loaded, demo_folder: Path) -> None:
    """Issue 10.3: one stray quote used to merge the rows up to the next quote into one line."""
    db, before = loaded
    path = demo_folder / TARGET_FILE
    lines = path.read_text().split("\n")
    cells = lines[11].split(",")
    cells[7] = '"' + cells[7]  # subscription_name of line 12 opens a quote...
    lines[11] = ",".join(cells)
    cells = lines[58].split(",")
    cells[7] = f'"{cells[7]}"'  # ... that the quoted name of line 59 closes: 17 cells again
    lines[58] = ",".join(cells)
    path.write_text("\n".join(lines))
    result = cli("--db", db, "load-invoices", "--period", TARGET)
    assert_rejected(result, f"{TARGET_FILE}:12: subscription_name: contains a line break "
                            "(the record runs from line 12 to line 59: is a quote unbalanced?)", db, before)
    assert "1 problem(s)" in result.err


def test_an_unbalanced_quote_running_to_the_end_of_the_file(cli, loaded, demo_folder: Path) -> None:
    db, before = loaded
    path = demo_folder / TARGET_FILE
    lines = path.read_text().split("\n")
    cells = lines[11].split(",")
    cells[7] = '"' + cells[7]
    lines[11] = ",".join(cells)
    path.write_text("\n".join(lines))
    result = cli("--db", db, "load-invoices", "--period", TARGET)
    assert_rejected(result, f"{TARGET_FILE}:12: expected 17 cells, found 8 (the record runs from line 12 to line {len(lines) - 1}: "
                            "is a quote unbalanced?)", db, before)


def test_text_is_bounded_and_single_line(cli, loaded, demo_folder: Path) -> None:
    db, before = loaded
    path = demo_folder / TARGET_FILE
    rows = read_csv(path)
    set_cell(rows, 3, "subscription_name", "N" * 256)
    set_cell(rows, 4, "line_id", "L" * 101)
    set_cell(rows, 6, "invoice_number", "INV-1\nINV-2")  # a quoted cell with a line break: lines 7 and 8
    write_csv(path, rows)
    result = cli("--db", db, "load-invoices", "--period", TARGET)
    assert_rejected(result, f"{TARGET_FILE}:4: subscription_name: too long: 256 characters (at most 255)", db, before)
    assert f"{TARGET_FILE}:5: line_id: too long: 101 characters (at most 100)" in result.err
    assert f"{TARGET_FILE}:7: invoice_number: contains a line break (the record runs from line 7 to line 8" in result.err
    assert "3 problem(s)" in result.err


def test_a_line_break_in_a_json_value(cli, loaded, demo_folder: Path) -> None:
    db, before = loaded
    rows = read_csv(demo_folder / TARGET_FILE)
    items = [dict(zip(rows[0], r, strict=False)) for r in rows[1:]]
    items[4]["subscription_name"] = "Backup\nand more"
    (demo_folder / TARGET_FILE).unlink()
    (demo_folder / f"invoice_lines_{TARGET}.json").write_text(json.dumps(items))
    result = cli("--db", db, "load-invoices", "--period", TARGET)
    assert_rejected(result, f"invoice_lines_{TARGET}.json:item 5: subscription_name: contains a line break", db, before)


def test_a_reload_removes_lines_only_with_consent_for_exactly_those(cli, loaded, demo_folder: Path) -> None:
    """Issue 10.3: the refusal names the count and the lines; the code it prints is consent for
    those lines only; with it the lines go, and synced lines stay whatever the export says."""
    db, before = loaded
    rows = read_csv(demo_folder / TARGET_FILE)
    synced = sorted(r[0] for r in rows[1:])[:5]  # the fixture synced the first five
    gone = {rows[20][0], rows[30][0], synced[0]}
    without_lines(demo_folder / TARGET_FILE, gone)

    asked = cli("--db", db, "load-invoices", "--period", TARGET)
    unsynced_gone = sorted(gone - {synced[0]})
    assert_rejected(asked, f"the load would remove 2 unsynced line(s) that are no longer in the Platform export ({TARGET}: 2):\n"
                           f"  {unsynced_gone[0]}\n  {unsynced_gone[1]}\n", db, before)
    consent = asked.err.rsplit("--allow-removals ", 1)[1].strip()
    assert len(consent) == 12

    as_json = cli("--db", db, "load-invoices", "--period", TARGET, "--json")
    assert as_json.code == 2
    assert as_json.json() == {"removals_need_consent": {"count": 2, "line_ids": {TARGET: unsynced_gone}, "allow_removals": consent}}
    assert store_dump(db) == before

    done = cli("--db", db, "load-invoices", "--period", TARGET, "--allow-removals", consent, "--json")
    assert done.code == 0, done.err
    assert done.json()["periods"][0]["removed"] == 2
    with db_connect(db) as connection:
        stored = dict(connection.execute("SELECT line_id, sync_status FROM invoice_line WHERE period = ?", (TARGET,)).fetchall())
    assert not set(unsynced_gone) & set(stored)
    assert stored[synced[0]] == "synced"  # gone from the export, but posted: kept
    assert set(stored) == {r[0] for r in rows[1:]} - set(unsynced_gone)


def test_consent_for_some_lines_is_no_consent_for_others(cli, loaded, demo_folder: Path) -> None:
    db, before = loaded
    rows = read_csv(demo_folder / TARGET_FILE)
    without_lines(demo_folder / TARGET_FILE, {rows[20][0]})
    first = cli("--db", db, "load-invoices", "--period", TARGET)
    assert first.code == 2 and "would remove 1 unsynced line(s)" in first.err
    consent = first.err.rsplit("--allow-removals ", 1)[1].strip()

    without_lines(demo_folder / TARGET_FILE, {rows[30][0]})  # the export changed since it was shown
    again = cli("--db", db, "load-invoices", "--period", TARGET, "--allow-removals", consent)
    assert_rejected(again, "would remove 2 unsynced line(s)", db, before)
    assert f"--allow-removals {consent} was consent for other lines" in again.err
    assert rows[30][0] in again.err
    new_consent = again.err.rsplit("--allow-removals ", 1)[1].strip()
    assert new_consent != consent

    done = cli("--db", db, "load-invoices", "--period", TARGET, "--allow-removals", new_consent)
    assert done.code == 0, done.err
    assert "2 removed" in done.out


def move_line(folder: Path, line_id: str, into: str) -> int:
    """Give a line of the month `into` the ID `line_id`; returns its line number in that month's file."""
    path = folder / f"invoice_lines_{into}.csv"
    rows = read_csv(path)
    set_cell(rows, 5, "line_id", line_id)
    write_csv(path, rows)
    return 6


OTHER = "2026-10"
OTHER_FILE = f"invoice_lines_{OTHER}.csv"


def test_a_line_id_in_two_monthly_files_loaded_together(cli, loaded, demo_folder: Path) -> None:
    """Issue 10.4."""
    db, before = loaded
    line_id = read_csv(demo_folder / TARGET_FILE)[1][0]
    line = move_line(demo_folder, line_id, OTHER)
    result = cli("--db", db, "load-invoices", "--period", TARGET, "--period", OTHER)
    assert_rejected(result, f"{OTHER_FILE}:{line}: line_id: duplicate line ID '{line_id}' (first at {TARGET_FILE}:2)", db, before)


@pytest.mark.parametrize("status", ["not synced", "synced"])
def test_a_line_id_of_a_month_loaded_earlier(cli, loaded, demo_folder: Path, status: str) -> None:
    """Issue 10.4: the other month is in the store; its file is read again to say where."""
    db, before = loaded
    rows = read_csv(demo_folder / TARGET_FILE)
    line_id = sorted(r[0] for r in rows[1:])[0 if status == "synced" else 10]
    line = move_line(demo_folder, line_id, OTHER)
    where = rows.index(next(r for r in rows if r[0] == line_id)) + 1
    result = cli("--db", db, "load-invoices", "--period", OTHER)
    assert_rejected(result, f"{OTHER_FILE}:{line}: line_id: line ID '{line_id}' is also in {TARGET_FILE}:{where} "
                            f"({TARGET}, already loaded, {status})", db, before)


def test_a_line_id_of_a_month_loaded_earlier_and_gone_from_its_file(cli, loaded, demo_folder: Path) -> None:
    db, before = loaded
    line_id = read_csv(demo_folder / TARGET_FILE)[40][0]
    without_lines(demo_folder / TARGET_FILE, {line_id})
    line = move_line(demo_folder, line_id, OTHER)
    for periods in ([OTHER], [OTHER, TARGET]):
        result = cli("--db", db, "load-invoices", *[a for p in periods for a in ("--period", p)])
        assert_rejected(result, f"{OTHER_FILE}:{line}: line_id: line ID '{line_id}' is already loaded for {TARGET} (not synced), "
                                f"though no longer in that month's file", db, before)


def test_a_line_id_twice_in_a_combined_file_whatever_month_is_loaded(cli, loaded, demo_folder: Path) -> None:
    db, before = loaded
    august = read_csv(demo_folder / f"invoice_lines_{LOADED}.csv")[3][0]
    move_line(demo_folder, august, OTHER)
    combine_monthly_files(demo_folder)
    rows = read_csv(demo_folder / "invoice_lines.csv")
    first, second = (i + 1 for i, r in enumerate(rows) if r[0] == august)
    result = cli("--db", db, "load-invoices", "--period", TARGET)  # neither of the two months
    assert_rejected(result, f"invoice_lines.csv:{second}: line_id: duplicate line ID '{august}' (first at invoice_lines.csv:{first})",
                    db, before)


BAD_NUMBERS = {
    "1e3": "not a number: '1e3'",
    "1E3": "not a number: '1E3'",
    "1_000": "not a number: '1_000'",
    "+5": "not a number: '+5'",
    ".5": "not a number: '.5'",
    "5.": "not a number: '5.'",
    "١٢٣": "not a number: '١٢٣'",
    "１２": "not a number: '１２'",
    "1.0000000": "'1.0000000' has more than 6 decimal places",
    "0.1234567": "'0.1234567' has more than 6 decimal places",
    "1000000000": "'1000000000' is too large (numbers must be below 1,000,000,000 in absolute value)",
    "-1000000000.5": "'-1000000000.5' is too large",
    "NaN": "not a number: 'NaN'",
    "Infinity": "not a number: 'Infinity'",
}


@pytest.mark.parametrize("column", ["quantity", "unit_price", "unit_cost"])
@pytest.mark.parametrize("text", BAD_NUMBERS)
def test_numbers_outside_the_documented_form(cli, loaded, demo_folder: Path, text: str, column: str) -> None:
    """Issue 10.5."""
    db, before = loaded
    path = demo_folder / TARGET_FILE
    rows = read_csv(path)
    set_cell(rows, 8, column, text)
    write_csv(path, rows)
    result = cli("--db", db, "load-invoices", "--period", TARGET)
    assert_rejected(result, f"{TARGET_FILE}:9: {column}: {BAD_NUMBERS[text]}", db, before)


def test_the_documented_number_forms_load(cli, demo_folder: Path, new_db) -> None:
    """The control of the test above, at the bounds."""
    path = demo_folder / TARGET_FILE
    rows = read_csv(path)
    values = [("-999999999.999999", "1", "0"), ("0.000001", "999999999.999999", "-5"), ("999999", "999999.999999", "7.000000")]
    for index, (quantity, price, cost) in enumerate(values, start=1):
        set_cell(rows, index, "quantity", quantity)
        set_cell(rows, index, "unit_price", price)
        set_cell(rows, index, "unit_cost", cost)
    write_csv(path, rows)
    db = new_db("ok")
    assert cli("--db", db, "load-invoices", "--platform-dir", demo_folder, "--period", TARGET).code == 0
    with db_connect(db) as connection:
        for index, (quantity, price, _) in enumerate(values, start=1):
            stored = connection.execute("SELECT quantity, unit_price, total FROM invoice_line WHERE line_id = ?", (rows[index][0],)).fetchone()
            assert stored == (to_micros(Decimal(quantity)), to_micros(Decimal(price)), to_micros(line_total(Decimal(quantity), Decimal(price))))


def test_an_amount_too_large_to_store(cli, loaded, demo_folder: Path) -> None:
    db, before = loaded
    path = demo_folder / TARGET_FILE
    rows = read_csv(path)
    set_cell(rows, 8, "quantity", "99999999")
    set_cell(rows, 8, "unit_price", "999999999")
    write_csv(path, rows)
    result = cli("--db", db, "load-invoices", "--period", TARGET)
    assert_rejected(result, f"{TARGET_FILE}:9: quantity: quantity × unit_price = 99,999,998,900,000,001 is too large "
                            "(a line total must be below 1,000,000,000,000 in absolute value)", db, before)
    assert "unexpected error" not in result.err


@pytest.mark.parametrize("number, expected", [("1e3", "not a number: '1e3'"), ("1.0000000", "'1.0000000' has more than 6 decimal places"),
                                              ("1E+3", "not a number: '1E+3'"), ("1000000000", "'1000000000' is too large")])
def test_numbers_in_json_files_follow_the_same_rules(cli, loaded, demo_folder: Path, number: str, expected: str) -> None:
    db, before = loaded
    rows = read_csv(demo_folder / TARGET_FILE)
    items = [dict(zip(rows[0], r, strict=False)) for r in rows[1:]]
    for item in items:  # JSON numbers, not strings
        for column in ("quantity", "unit_price", "unit_cost"):
            item[column] = f"@{item[column]}@"
    items[6]["unit_price"] = f"@{number}@"
    (demo_folder / TARGET_FILE).unlink()
    (demo_folder / f"invoice_lines_{TARGET}.json").write_text(json.dumps(items).replace('"@', "").replace('@"', ""))
    result = cli("--db", db, "load-invoices", "--period", TARGET)
    assert_rejected(result, f"invoice_lines_{TARGET}.json:item 7: unit_price: {expected}", db, before)
    assert "1 problem(s)" in result.err  # the other JSON numbers are fine


DOCUMENTED_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]{1,6})?")


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(alphabet="0123456789-+.,eE_ ١２", max_size=14), st.text(max_size=8),
                 st.decimals(allow_nan=False, allow_infinity=False, places=6).map(str)))
def test_parse_decimal_accepts_the_documented_form_only(text: str) -> None:
    try:
        value = parse_decimal(text)
    except ValueError as error:
        assert str(error)  # a message, never another exception
        cleaned = text.strip()
        assert not DOCUMENTED_NUMBER.fullmatch(cleaned) or abs(Decimal(cleaned)) >= MAX_AMOUNT
        return
    assert DOCUMENTED_NUMBER.fullmatch(text.strip()) and value == Decimal(text.strip()) and abs(value) < MAX_AMOUNT
