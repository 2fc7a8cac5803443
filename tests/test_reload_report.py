"""Issue 12: a re-load of a month says what changed: new lines, changed lines (and which
fields), removed lines and the lines skipped as New; in the CLI, its --json and the app. Real
export files, real stores."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cw_tui.screens.mapping import MappingScreen
from cw_tui.screens.mapping_modals import LoadInvoicesModal
from cw_tui.services import settings
from cw_tui.store import open_store
from tests.app_helpers import make_app, run, wait_for
from tests.test_app_mapping import modal_ready, notices
from tests.test_platform_import import read_csv, set_cell, write_csv

PERIOD = "2026-09"
FILE = f"invoice_lines_{PERIOD}.csv"


def _edit_export(folder: Path) -> dict[str, str]:
    """One line's quantity and another's unit price and name changed, one line on an invoice
    back to New, one line gone, one new line. Returns the line IDs by what happened to them."""
    path = folder / FILE
    rows = read_csv(path)
    header = rows[0]
    ids = {"quantity": rows[1][0], "price": rows[2][0], "new_status": rows[3][0], "gone": rows[4][0]}
    set_cell(rows, 1, "quantity", str(int(rows[1][header.index("quantity")].split(".")[0]) + 1))
    set_cell(rows, 2, "unit_price", "123.45")
    set_cell(rows, 2, "subscription_name", "Renamed seats")
    set_cell(rows, 3, "invoice_status", "New")
    added = list(rows[5])
    added[0] = ids["added"] = rows[5][0] + "-X"
    rows = [r for r in rows if r[0] != ids["gone"]] + [added]
    write_csv(path, rows)
    return ids


def _load(cli, db: Path, *extra: str):
    return cli("--db", db, "load-invoices", "--period", PERIOD, *extra)


def test_a_reload_names_new_changed_removed_and_new_invoice_lines(cli, demo_folder: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite3"
    assert cli("--db", db, "configure", "--platform-dir", demo_folder).code == 0
    first = _load(cli, db, "--json")
    assert first.code == 0
    [loaded] = first.json()["periods"]
    assert loaded["changed"] == 0 and loaded["changed_fields"] == {}
    ids = _edit_export(demo_folder)

    asked = _load(cli, db, "--json")  # the line on a New invoice and the line gone would be removed
    consent = asked.json()["removals_need_consent"]
    assert sorted(consent["line_ids"][PERIOD]) == sorted([ids["gone"], ids["new_status"]])

    done = _load(cli, db, "--allow-removals", consent["allow_removals"])
    assert done.code == 0, done.err
    head = done.out.splitlines()[0]
    assert ("1 new, 2 changed (quantity 1, subscription name 1, unit price 1), 2 removed, "
            f"{loaded['skipped_new'] + 1} skipped as New") in head, head
    assert f"  changed {ids['quantity']}: quantity" in done.out
    assert f"  changed {ids['price']}: subscription name, unit price" in done.out

    again = _load(cli, db, "--json")  # nothing changed since: a quiet re-load says so
    [period] = again.json()["periods"]
    assert period["added"] == period["changed"] == period["removed"] == 0 and period["changed_lines"] == {}
    assert period["skipped_new"] == loaded["skipped_new"] + 1


def test_a_synced_line_the_platform_changed_is_named_and_kept(cli, demo_folder: Path, tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite3"
    assert cli("--db", db, "configure", "--platform-dir", demo_folder).code == 0
    assert _load(cli, db).code == 0
    path = demo_folder / FILE
    rows = read_csv(path)
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE invoice_line SET sync_status = 'synced', addition_id = 9 WHERE line_id = ?", (rows[1][0],))
        before = connection.execute("SELECT quantity FROM invoice_line WHERE line_id = ?", (rows[1][0],)).fetchone()
    set_cell(rows, 1, "quantity", "777")
    write_csv(path, rows)
    done = _load(cli, db, "--json")
    [period] = done.json()["periods"]
    assert period["synced_changed"] == 1 and period["changed"] == 0
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT quantity FROM invoice_line WHERE line_id = ?", (rows[1][0],)).fetchone() == before
    assert "1 synced line changed on the Platform, kept as posted" in _load(cli, db).out


def test_the_app_says_what_a_reload_changed(demo_folder: Path, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    store = open_store(tmp_path / "a.sqlite3")
    config = settings.load_configuration(store)
    config.platform_dir = str(demo_folder)
    config.agreement_type = settings.AgreementTypeChoice(id=2, name="Cloud Services")
    settings.save_configuration(store, config)
    from cw_tui.platform.importer import load_invoices
    from cw_tui.rules.charge_dates import ChargeDateRules

    load_invoices(store, demo_folder, [PERIOD], ChargeDateRules.defaults())
    rows = read_csv(demo_folder / FILE)
    set_cell(rows, 1, "quantity", "4242")
    write_csv(demo_folder / FILE, rows)
    seen: list[str] = []
    from cw_tui.services import credentials as credential_store
    from tests.app_helpers import FIXED_CREDENTIALS

    credential_store.save(FIXED_CREDENTIALS)

    async def scenario() -> None:
        app = make_app(store, clock=lambda: datetime(2026, 10, 5, 9, 0, tzinfo=UTC))  # previous month: 2026-09
        async with app.run_test(size=(80, 24), notifications=True, message_hook=notices(seen)) as pilot:
            await pilot.press("2")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            app.screen.show_tab("invoices")
            await pilot.pause()
            await pilot.press("i")
            await modal_ready(pilot, LoadInvoicesModal, "load")
            await pilot.press("enter")
            await wait_for(pilot, lambda: any(s.startswith("Loaded ") for s in seen), timeout=30)

    run(scenario())
    loaded = next(s for s in seen if s.startswith("Loaded "))
    assert f"{PERIOD}:" in loaded and "0 new, 1 changed (quantity 1), 0 removed" in loaded and "skipped as New" in loaded
    store.close()
