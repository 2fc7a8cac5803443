"""CSV export (issue 10, 7a): `cw-tui export` and the grids' ctrl+e write what the grid shows
(plain decimals, the user's words, ISO dates), streamed and atomically, and no cell from data
becomes a spreadsheet formula."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cw_tui.services.export import csv_safe, export_csv
from cw_tui.store import Agreement, InvoiceLine, Organization, open_store
from cw_tui.store.grid import Column, GridSource, GridState
from cw_tui.store.grid_sources import invoices_source
from tests.app_helpers import FROZEN, seeded_store

PERIOD = "2026-10"


@pytest.fixture
def db(tmp_path: Path, demo_folder: Path) -> Path:
    path = tmp_path / "s.sqlite3"
    seeded_store(path, demo_folder).close()
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def shape_lines(store) -> tuple[InvoiceLine, InvoiceLine]:
    """A line with the amounts of the issue and a typed start date; a synced line posted to an
    agreement that its mapping no longer names."""
    line = InvoiceLine.select().where((InvoiceLine.period == PERIOD) & (InvoiceLine.sync_status == "not_synced")) \
        .order_by(InvoiceLine.line_id).first()
    store.db.execute_sql(
        "UPDATE invoice_line SET quantity = 10000000, unit_price = 12500000, unit_cost = 123, total = 125000000, "
        "charge_start = '2026-10-03', charge_start_badge = 'user' WHERE line_id = ?", (line.line_id,))
    synced = InvoiceLine.select().where(InvoiceLine.sync_status == "synced").order_by(InvoiceLine.line_id).first()
    Agreement.insert(id=6100, name="Posted here", company_id=250, type_id=2, status="Active", cancelled=False,
                     synced_at=FROZEN).execute()
    store.db.execute_sql("UPDATE invoice_line SET posted_agreement_id = 6100 WHERE line_id = ?", (synced.line_id,))
    return InvoiceLine.get_by_id(line.line_id), InvoiceLine.get_by_id(synced.line_id)


def test_cli_export_holds_plain_decimals_user_words_and_iso_dates(cli, db: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with open_store(db) as store:
        line, synced = shape_lines(store)
        # what the grid shows of these rows, column by column (the app's cells are styled from it)
        source = invoices_source(PERIOD)
        rows = {r[0]: r for r in store.db.execute_sql(
            f"SELECT l.line_id, {', '.join(c.sql for c in source.columns)} FROM {source.from_sql} WHERE l.line_id IN (?, ?)",
            (line.line_id, synced.line_id))}
        # (money: the grid rounds to the cent, the export holds the exact amount; issue 12)
        shown = {key: {c.title: c.csv_cells(v)[0] for c, v in zip(source.columns, row[1:], strict=False)} for key, row in rows.items()}
    monkeypatch.chdir(tmp_path)
    result = cli("--db", db, "export", "invoices", "--search", line.invoice_number)  # the newest period, in this folder
    assert result.code == 0, result.err
    [written] = tmp_path.glob("cw-tui-invoice-lines-2026-10-*.csv")
    assert str(written) in result.out
    exported = {r["Invoice #"] + r["Subscription Name"]: r for r in read_csv(written)}
    row = exported[line.invoice_number + line.subscription_name]
    assert (row["Quantity"], row["Unit Price"], row["Unit Cost"], row["Total"]) == ("10", "12.50", "0.000123", "125.00")
    assert (row["Charge Start Date"], row["Charge Start Source"]) == ("2026-10-03", "User Updated")
    assert row["Charge End Source"] == "Default" and row["Status in PSA"] == "Not Synced"
    assert row["Mapping Status"] in ("Mapped", "Unmapped", "Excluded") and row["Invoice Date"].startswith("2026-10-")
    for title, text in shown[line.line_id].items():
        assert row[title] == text, title  # the CSV holds the grid's text

    # a synced line: the agreement it was posted to, the time in ISO 8601 UTC
    out = tmp_path / "sep.csv"
    assert cli("--db", db, "export", "invoices", "--period", "2026-09", "--search", synced.invoice_number,
               "--out", out).code == 0
    row = next(r for r in read_csv(out) if r["Subscription Name"] == synced.subscription_name
               and r["Invoice #"] == synced.invoice_number)
    assert row["PSA Agreement Name"] == "Posted here" == shown[synced.line_id]["PSA Agreement Name"]
    assert (row["Status in PSA"], row["Last Sync"]) == ("Synced", "2026-11-17T23:00:00Z")

    out = tmp_path / "orgs.csv"
    assert cli("--db", db, "export", "organizations", "--out", out).code == 0
    organizations = read_csv(out)
    assert {r["Excluded from Sync"] for r in organizations} == {"Yes", "No"}
    assert {r["Mapping Status"] for r in organizations} == {"Mapped", "Unmapped"}
    assert cli("--db", db, "export", "logs", "--out", out).code == 0
    assert read_csv(out)[0]["Timestamp"] == "2026-11-18T09:30:00Z"


def test_cli_export_refuses_an_unknown_period_or_an_unwritable_file(cli, db: Path, tmp_path: Path) -> None:
    result = cli("--db", db, "export", "invoices", "--period", "2025-01")
    assert result.code == 2 and "no invoice lines of 2025-01 are loaded (loaded: 2026-10, 2026-09)" in result.err
    assert cli("--db", db, "export", "invoices", "--period", "2025-13").code == 2
    assert cli("--db", db, "export", "logs", "--period", "2026-10").code == 2
    result = cli("--db", db, "export", "products", "--out", tmp_path / "missing" / "p.csv")
    assert result.code == 2 and "cannot write" in result.err and "missing" in result.err
    folder = tmp_path / "a-folder"
    folder.mkdir()
    result = cli("--db", db, "export", "products", "--out", folder)
    assert result.code == 2 and "no file was written" in result.err
    assert list(folder.iterdir()) == [] and not list(tmp_path.glob(".*.part"))


def test_no_cell_from_data_becomes_a_formula_but_negative_amounts_stay_numbers(cli, db: Path, tmp_path: Path) -> None:
    hostile = {'=HYPERLINK("http://evil.example","x")': "'", "+1+1": "'", "-2+3": "'", "@SUM(A1)": "'",
               "\tTab": "'", "Plain - name": ""}
    with open_store(db) as store:
        orgs = list(Organization.select().order_by(Organization.platform_id).limit(len(hostile)))
        for org, name in zip(orgs, hostile, strict=False):
            Organization.update(name=name).where(Organization.platform_id == org.platform_id).execute()
        credit = InvoiceLine.select().where(InvoiceLine.period == PERIOD).order_by(InvoiceLine.line_id).first()
        store.db.execute_sql("UPDATE invoice_line SET quantity = -3000000, unit_price = -12500000, total = 37500000, "
                             "subscription_name = '=1+2' WHERE line_id = ?", (credit.line_id,))
    out = tmp_path / "o.csv"
    assert cli("--db", db, "export", "organizations", "--out", out).code == 0
    names = {r["Organization Name"] for r in read_csv(out)}
    for name, prefix in hostile.items():
        assert prefix + name in names
    assert cli("--db", db, "export", "invoices", "--search", credit.invoice_number, "--out", out).code == 0
    row = next(r for r in read_csv(out) if r["Subscription Name"] == "'=1+2")
    assert (row["Quantity"], row["Unit Price"], row["Total"]) == ("-3", "-12.50", "37.50")
    assert [csv_safe(t) for t in ("-5", "-0.000123", "-1e5", "=A1", "\rx", "12")] == ["-5", "-0.000123", "'-1e5", "'=A1",
                                                                                     "'\rx", "12"]


def test_a_failed_export_leaves_the_old_file_and_no_part(db: Path, tmp_path: Path) -> None:
    """The rows are streamed to a temporary file that only a finished export renames into place:
    a query that fails after some rows were written leaves the previous file as it was."""
    target = tmp_path / "export.csv"
    target.write_text("the previous export\n")
    with open_store(db) as store:
        # a log entry whose details are not JSON makes json_extract fail on that row, mid-stream
        store.db.execute_sql("UPDATE log_entry SET details = '{}'")
        store.db.execute_sql("UPDATE log_entry SET details = 'not json' WHERE id = (SELECT MAX(id) FROM log_entry)")
        source = GridSource("log entries", "log_entry", (Column("id", "ID", "id"), Column("x", "X", "json_extract(details, '$.x')")),
                            key_sql="id", default_sort=(("id", False),))
        with pytest.raises(Exception, match="malformed JSON"):
            export_csv(store, source, GridState(), target)
        assert target.read_text() == "the previous export\n"
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
        store.db.execute_sql("UPDATE log_entry SET details = '{\"x\": \"=cmd\"}'")
        count = export_csv(store, source, GridState(), target)  # a good one replaces it
        assert count > 0 and read_csv(target)[0]["X"] == "'=cmd"


def test_decimal_text_is_exact_and_the_grid_only_groups_it() -> None:
    from cw_tui.rules.display import exact_money_text, group_thousands, money_text, quantity_text

    assert [quantity_text(m) for m in (10_000_000, 341_644_000, 123, -3_000_000, 0, None)] == \
           ["10", "341.644", "0.000123", "-3", "0", ""]
    assert [exact_money_text(m) for m in (12_500_000, 100_000, 123, -12_500_000, 1_234_567_500_000)] == \
           ["12.50", "0.10", "0.000123", "-12.50", "1234567.50"]
    # the grid's money: to the cent, half up (issue 12: "8,665.68456" reads 8,665.68)
    assert [money_text(m) for m in (8_665_684_560, 12_500_000, 123, 5_000, -12_505_000, None)] == \
           ["8665.68", "12.50", "0.00", "0.01", "-12.51", ""]
    assert [group_thousands(t) for t in ("1234567.50", "-1000", "999", "0.000123", "")] == \
           ["1,234,567.50", "-1,000", "999", "0.000123", ""]
