"""Issue 11, parts 1 and 4: names from the Platform and from ConnectWise are untrusted. No
control character, bidi control or markup of theirs reaches the terminal as it is, from the
app's screens or from the CLI's text output; `--json` and the CSV export keep the exact
value. Searches are literal: % and _ are those characters."""

from __future__ import annotations

import csv
import unicodedata
from pathlib import Path

import pytest
from textual.widgets import OptionList

from cw_tui.screens.mapping import MappingScreen
from cw_tui.screens.mapping_modals import LineEditModal, SyncPlanModal
from cw_tui.screens.pickers import PickerModal
from cw_tui.services import system_log
from cw_tui.services.system_log import Category, Level, LogQuery
from cw_tui.store import Company, InvoiceLine, Product, now_utc, open_store
from cw_tui.store.pickers import COMPANIES, PRODUCTS, offered
from cw_tui.widgets.grid import SqlGrid
from tests.app_helpers import HOSTILE_NAME as RAW_HOSTILE_NAME
from tests.app_helpers import make_app, run, wait_for
from tests.conftest import run_process
from tests.sandbox_helpers import sandbox_thread
from tests.sync_helpers import cw_env
from tests.test_app_mapping import modal_ready, put_cursor_on

P = "2026-09"
# A Platform file may not hold a line break in a name (the load refuses it, tests/test_platform_import.py), so
# the names that travel from the Platform export to ConnectWise here keep every other hostile character; the
# snapshot tests (app_helpers.hostile_store) show a name with CR/LF.
HOSTILE_NAME = RAW_HOSTILE_NAME.replace("\r\n", "\t")
SHOWN = "␛[31mACME␇␉\ufffd[link=http://x]y[/link] [bold red]ACME[/]"  # HOSTILE_NAME as a terminal gets it
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def unsafe(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in BIDI


def _make_hostile(folder: Path, sandbox) -> str:
    """Name one billed organization HOSTILE_NAME in the Platform export, and its ConnectWise
    company too (so that automap maps them); its Platform ID."""
    path = folder / "organizations.csv"
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with (folder / f"invoice_lines_{P}.csv").open(newline="", encoding="utf-8") as f:
        billed = {r["organization_id"] for r in csv.DictReader(f)}
    companies = {c["name"]: c for c in sandbox.sandbox.state.companies.values()}
    row = next(r for r in rows if r["name"] in companies and r["organization_id"] in billed)
    companies[row["name"]]["name"] = HOSTILE_NAME
    row["name"] = HOSTILE_NAME
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return row["organization_id"]


@pytest.fixture
def world(cli, demo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The sandbox, and a store with P loaded, one organization and its company named HOSTILE_NAME."""
    with sandbox_thread(seed=7) as sandbox:
        for key, value in cw_env(sandbox).items():
            monkeypatch.setenv(key, value)
        org_id = _make_hostile(demo_folder, sandbox)
        db = tmp_path / "hostile.sqlite3"
        for args in (("connect",), ("configure", "--platform-dir", demo_folder, "--agreement-type", "Cloud Services"),
                     ("sync-organizations",), ("load-invoices", "--period", P)):
            result = cli("--db", db, *args)
            assert result.code == 0, (args, result.err)
        yield sandbox, db, org_id


# ---------------------------------------------------------------- the CLI


def terminal_text(result) -> str:
    """A text output as the terminal gets it: no byte below 0x20 but newline, no ESC, no DEL,
    C1 or bidi control; the text."""
    raw = result.out_bytes
    assert raw, result.err
    assert sorted({b for b in raw if b < 0x20 and b != 0x0A}) == [], raw
    text = raw.decode("utf-8")
    assert [c for c in text if unsafe(c) and c != "\n"] == []
    return text


def test_cli_text_outputs_carry_no_control_byte_and_json_keeps_the_exact_value(cli, world, tmp_path: Path) -> None:
    sandbox, db, org_id = world

    dry = cli("--db", db, "automap", "--dry-run", "--json").json()
    assert [m["organization"] for m in dry["organization_matches"] if m["organization_id"] == org_id] == [HOSTILE_NAME]
    assert [m["company"] for m in dry["organization_matches"] if m["organization_id"] == org_id] == [HOSTILE_NAME]
    text = terminal_text(run_process("--db", db, "automap", "--dry-run"))
    assert f"organization  {SHOWN}  ->  {SHOWN} (#" in text
    mapped = run_process("--db", db, "automap", "--include")
    assert mapped.code == 0 and f"organization  {SHOWN}  ->  {SHOWN} (#" in terminal_text(mapped)

    plan = cli("--db", db, "sync", "--period", P, "--dry-run", "--json").json()
    assert HOSTILE_NAME in {row["customer"] for row in plan["totals"]}
    planned = run_process("--db", db, "sync", "--period", P, "--dry-run")
    assert planned.code == 0, planned.err
    assert SHOWN[:40] in terminal_text(planned)  # the Customer column holds 40 characters

    assert cli("--db", db, "sync", "--period", P).code == 0
    with open_store(db):  # a person removes one of the organization's Additions in ConnectWise
        line = InvoiceLine.get((InvoiceLine.organization_id == org_id) & (InvoiceLine.sync_status == "synced"))
    del sandbox.sandbox.state.additions[line.addition_id]
    reconciled = run_process("--db", db, "reconcile", "--period", P)
    assert reconciled.code == 1 and SHOWN[:30] in terminal_text(reconciled)
    report = cli("--db", db, "reconcile", "--period", P, "--json").json()
    assert HOSTILE_NAME in {m["customer"] for m in report["mismatches"]}

    # automap's entry names what it mapped
    logs = run_process("--db", db, "logs", "--details")
    text = terminal_text(logs)
    assert logs.code == 0 and f"included in sync: yes; {SHOWN} -> {SHOWN}" in text
    entries = cli("--db", db, "logs", "--json").json()
    assert any(f"{HOSTILE_NAME} -> {HOSTILE_NAME}" in (e["details"] or "") for e in entries)
    status = run_process("--db", db, "status")
    assert status.code == 0 and "Organizations:" in terminal_text(status)

    # the CSV export is a file, not the terminal: it keeps the exact name
    out = tmp_path / "orgs.csv"
    exported = run_process("--db", db, "export", "organizations", "--out", out)
    assert exported.code == 0 and terminal_text(exported).startswith("Exported ")
    with out.open(newline="", encoding="utf-8-sig") as f:
        assert HOSTILE_NAME in {row["Organization Name"] for row in csv.DictReader(f)}


# ---------------------------------------------------------------- the app


def painted(app) -> tuple[list[str], set[str]]:
    """What the terminal is given for the screen on top: its lines of text, and every
    hyperlink on them. No line holds a control, bidi control or line break of data."""
    strips = app.screen._compositor.render_strips()
    lines = ["".join(segment.text for segment in strip) for strip in strips]
    for line in lines:
        assert [c for c in line if unsafe(c)] == [], line
    links = {segment.style.link for strip in strips for segment in strip if segment.style and segment.style.link}
    return lines, links


def shown(app, selector: str = "Static, Button") -> str:
    """The plain text of the screen's widgets, however it is wrapped on screen."""
    return "\n".join(str(widget.render()) for widget in app.screen.query(selector))


def test_hostile_names_are_shown_literally_on_every_screen(cli, world) -> None:

    from cw_tui.screens.logs import LogDetail

    sandbox, db, org_id = world
    assert cli("--db", db, "automap", "--include").code == 0
    store = open_store(db)
    # ConnectWise's words may hold any character, line breaks too
    system_log.write(store, Level.ERROR, Category.SYNC, f"Line failed: ConnectWise says {RAW_HOSTILE_NAME}",
                     f"first line\n{RAW_HOSTILE_NAME}\nlast line")

    async def scenario() -> None:
        app = make_app(store)
        async with app.run_test(size=(120, 36), notifications=True) as pilot:
            await pilot.press("2")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            screen = app.screen
            orgs = screen.query_one("#grid-organizations", SqlGrid)
            await wait_for(pilot, lambda: orgs.page is not None and orgs.page.keys[:1] == [org_id])  # first by name
            lines, links = painted(app)
            row = next(line for line in lines if "␛[31mACME" in line)
            assert row.count("␛[31mACME␇␉\ufffd[link=http") == 2 and not links  # its name and its company's

            # the picker: its title and its suggestion, literally; no hyperlink, no colour taken from the name
            orgs.table.focus()
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, PickerModal))
            await pilot.pause()
            lines, links = painted(app)
            assert f"Select PSA Organization for “{SHOWN}”: type a name or an ID" in shown(app, "Label")
            assert any(f"for “{SHOWN[:40]}" in line for line in lines)
            assert any(f"★ {SHOWN}" in line for line in lines) and not links
            options = app.screen.query_one(OptionList)
            await pilot.press("%")  # literal: no company has a % in its name, identifier or ID
            await wait_for(pilot, lambda: options.option_count == 0)
            await pilot.press("backspace", "escape")

            # x: the toast names the organization, literally
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            await pilot.press("x")
            await wait_for(pilot, lambda: f"{SHOWN} is now excluded from sync." in shown(app, "Toast"))
            lines, links = painted(app)
            assert any(SHOWN[:30] in line for line in lines) and not links
            await pilot.press("x")

            # the Invoices grid and a line's edit modal
            screen.show_tab("invoices")
            invoices = screen.query_one("#grid-invoices", SqlGrid)
            invoices.set_search("[bold red]ACME[/]")
            line = InvoiceLine.get((InvoiceLine.organization_id == org_id) & (InvoiceLine.sync_status == "not_synced"))
            await put_cursor_on(pilot, invoices, line.line_id)
            lines, links = painted(app)
            assert any("␛[31mACME␇␉\ufffd[link" in line for line in lines) and not links
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, LineEditModal))
            await pilot.pause()
            lines, links = painted(app)
            assert f"{SHOWN} · " in shown(app) and not links
            await pilot.press("escape")

            # the plan: its customer, literally
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            await pilot.press("P")
            await modal_ready(pilot, SyncPlanModal, "post")
            lines, links = painted(app)
            assert any(SHOWN[:22] in line for line in lines) and not links
            await pilot.press("escape")

            # System Logs: the grid, and the entry's details line by line
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            app.clear_notifications()
            await pilot.press("3")
            await wait_for(pilot, lambda: app.screen.query(SqlGrid))
            grid = app.screen.query_one(SqlGrid)
            grid.set_search("ConnectWise says")
            await wait_for(pilot, lambda: grid.page is not None and grid.state.search and grid.page.total == 1)
            assert any("ConnectWise says ␛[31mACME␇␍␊" in line for line in painted(app)[0])
            grid.table.focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, LogDetail))
            await pilot.pause()
            lines, links = painted(app)
            details = [line.strip(" ▎▊█") for line in lines]  # the details keep their line breaks
            assert "␛[31mACME␇␍" in details and "\ufffd[link=http://x]y[/link] [bold red]ACME[/]" in details
            assert any("first line" in line for line in lines) and any("last line" in line for line in lines)
            assert not links

    run(scenario())
    store.close()


# ---------------------------------------------------------------- literal searches


def test_the_pickers_search_is_literal(store) -> None:
    now = now_utc()
    for n, name in enumerate(["100% Cloud", "1000 Cloud", "North_wind", "Northwind"]):
        Company.insert(id=n + 1, identifier=f"C{n}", name=name, status_name="Active", deleted=False, synced_at=now).execute()
    Product.insert(id=9, identifier="SKU_1", description="Seats", inactive=False, synced_at=now).execute()
    Product.insert(id=10, identifier="SKU-1", description="Seats", inactive=False, synced_at=now).execute()

    def names(text: str) -> list[str]:
        return [name for _, name, _ in offered(store, COMPANIES, text)]

    assert names("%") == ["100% Cloud"]
    assert names("0%") == ["100% Cloud"]
    assert names("_") == ["North_wind"]
    assert names("h_w") == ["North_wind"]
    assert names("\\") == []
    assert names("north") == ["North_wind", "Northwind"]  # still case-insensitive, still a "contains"
    assert names("4") == ["Northwind"]  # by its ID, whole
    assert [rid for rid, _, _ in offered(store, PRODUCTS, "U_1")] == [9]  # the text after the name too


def test_logs_search_is_literal(cli, store, tmp_path: Path) -> None:
    for summary in ("Posted 100% of the lines", "Posted 1000 lines", "Line LN_1 failed", "Line LN-1 failed"):
        system_log.write(store, Level.INFO, Category.SYNC, summary)
    assert system_log.count(store, LogQuery(text="%")) == 1
    found = cli("--db", tmp_path / "store.sqlite3", "logs", "--search", "%", "--json").json()
    assert [e["summary"] for e in found] == ["Posted 100% of the lines"]
    found = cli("--db", tmp_path / "store.sqlite3", "logs", "--search", "N_1", "--json").json()
    assert [e["summary"] for e in found] == ["Line LN_1 failed"]
