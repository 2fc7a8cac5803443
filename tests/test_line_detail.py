"""Issue 12: the read-only detail of an invoice line: every Platform field, the effective
mapping and where each part comes from, the charge dates and their rules, and once synced the
Addition, the agreement it went to, what was sent and when; `enter` on a synced line and `v` on
any line open it; it scrolls at 80x24 with Close in view."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from textual.containers import VerticalScroll
from textual.widgets import Select, Static

from cw_tui.rules.additions import marker
from cw_tui.rules.vocabulary import ChargeType
from cw_tui.screens.line_detail import LineDetailModal
from cw_tui.screens.mapping import MappingScreen
from cw_tui.services.connectwise import ConnectWiseClient
from cw_tui.services.line_detail import line_detail
from cw_tui.store import (
    Agreement,
    Contract,
    InvoiceLine,
    Organization,
    SyncRun,
)
from cw_tui.widgets.grid import SqlGrid
from tests.app_helpers import (
    FROZEN,
    HOSTILE_NAME,
    make_app,
    run,
    seeded_store,
    wait_for,
)
from tests.sandbox_helpers import sandbox_thread
from tests.sync_helpers import cw_env
from tests.test_app_mapping import configured_store, put_cursor_on
from tests.test_snapshots import settle

PERIOD = "2026-09"


def text_of(widget: Static) -> str:
    console = Console(width=200, record=True, file=open("/dev/null", "w"), color_system=None)  # noqa: SIM115
    console.print(widget.content)
    return console.export_text()


@pytest.fixture
def synced(cli, tmp_path: Path, demo_folder: Path, monkeypatch: pytest.MonkeyPatch):
    """September synced to the real sandbox."""
    with sandbox_thread() as sandbox:
        for key, value in cw_env(sandbox).items():
            monkeypatch.setenv(key, value)
        db = tmp_path / "d.sqlite3"
        store = configured_store(db, demo_folder, sandbox)
        for args in (("sync-organizations",), ("load-invoices", "--period", PERIOD), ("automap", "--include"),
                     ("sync", "--period", PERIOD)):
            assert cli("--db", db, *args).code == 0, args
        yield sandbox, store
        store.close()


def _in_connectwise(sandbox, agreement_id: int, serial: str):  # an Addition
    async def go():
        async with ConnectWiseClient(sandbox.credentials) as client:
            [found] = await client.additions(agreement_id, f'serialNumber="{serial}"')
            return found
    return asyncio.run(go())


def test_a_synced_lines_detail_is_what_connectwise_holds(synced) -> None:
    sandbox, store = synced
    for recurring in (False, True):
        line = next(l for l in InvoiceLine.select().where(InvoiceLine.period == PERIOD, InvoiceLine.sync_status == "synced")
                    if ChargeType(l.charge_type).recurring is recurring)
        detail = line_detail(store, line.line_id)
        assert detail.sync_status == "Synced"
        cw = dict(detail.sections)["ConnectWise"]
        values = {f.label.strip(): f.value for f in cw}
        serial = marker("S", line.subscription_id) if recurring else marker("L", line.line_id)
        assert values["Marker"] == serial
        held = _in_connectwise(sandbox, line.posted_agreement_id, serial)
        assert values["Addition ID"] == str(held.id) == str(line.addition_id)
        agreement = Agreement.get_by_id(line.posted_agreement_id)
        assert values["Posted to agreement"] == f"{agreement.name} (#{agreement.id})"
        assert Decimal(values["quantity"].replace(",", "")) == held.quantity
        assert values["effectiveDate"] == held.effectiveDate and values["description"] == held.description
        assert values["invoiceDescription"] == held.invoiceDescription
        assert values["Synced at"].startswith(line.last_sync_at.strftime("%Y-%m-%dT%H:%M"))
        assert values["Sync run"].startswith(f"#{line.posted_run_id} of {PERIOD}")

        platform = {f.label: f for f in dict(detail.sections)["Platform"]}
        assert platform["Line ID"].value == line.line_id and platform["Subscription"].note == line.subscription_id
        assert platform["Billing cycle"].value == line.billing_cycle
        mapping = {f.label: f for f in dict(detail.sections)["Mapping"]}
        organization = Organization.get_by_id(line.organization_id)
        assert mapping["PSA Organization"].note == f"organization {organization.name}"
        assert mapping["PSA Product"].note.startswith("offer ")
        contract = Contract.get_by_id(line.contract_id)
        assert mapping["PSA Agreement"].note == f"contract {contract.platform_id}"  # the sync recorded it
        assert detail.value("Charge dates", "Charge Start Date").note == "Default: the Platform's charge start date"


def test_the_sources_of_a_line_own_mapping_and_its_dates(tmp_path: Path, demo_folder: Path) -> None:
    store = seeded_store(tmp_path / "s.sqlite3", demo_folder)
    line = InvoiceLine.select().where(InvoiceLine.period == "2026-10", InvoiceLine.sync_status == "not_synced").first()
    InvoiceLine.update(override_product_id=1003, charge_start_badge="user", charge_end_badge="system").where(
        InvoiceLine.line_id == line.line_id).execute()
    detail = line_detail(store, line.line_id)
    assert detail.value("Mapping", "PSA Product").note == "this line (its own PSA Product)"
    assert detail.value("Charge dates", "Charge Start Date").note.startswith("User Updated")
    assert "end rule is now 'Default'" in detail.value("Charge dates", "Charge End Date").note
    assert detail.value("ConnectWise", "Status in PSA").value == "Not Synced"
    assert line_detail(store, "no such line") is None
    store.close()


def test_enter_on_a_synced_line_and_v_on_any_line_open_the_detail(synced) -> None:
    _, store = synced
    synced_line = InvoiceLine.select().where(InvoiceLine.period == PERIOD, InvoiceLine.sync_status == "synced") \
        .order_by(InvoiceLine.invoice_date, InvoiceLine.line_id).first()
    other = InvoiceLine.select().where(InvoiceLine.period == PERIOD, InvoiceLine.sync_status == "not_synced") \
        .order_by(InvoiceLine.invoice_date, InvoiceLine.line_id).first()

    async def scenario() -> None:
        app = make_app(store, clock=lambda: datetime(2026, 10, 20, 9, 0, tzinfo=UTC))
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await pilot.press("2")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            screen = app.screen
            assert screen.check_action("line_detail", ()) is False  # offered on the Invoices tab only
            screen.show_tab("invoices")
            await pilot.pause()
            assert screen.check_action("line_detail", ()) is True
            screen.query_one("#period", Select).value = PERIOD
            grid = screen.query_one("#grid-invoices", SqlGrid)
            await put_cursor_on(pilot, grid, synced_line.line_id)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, LineDetailModal))
            modal = app.screen
            close = modal.query_one("#close")
            assert app.focused is close and close.region.y >= 0 and close.region.bottom <= 24
            shown = text_of(modal.query_one("#section-connectwise", Static))
            [row] = [r for r in shown.splitlines() if r.startswith("Addition ID")]
            assert row.split()[2] == str(synced_line.addition_id) and "Posted to agreement" in shown
            body = modal.query_one("#body", VerticalScroll)
            assert body.max_scroll_y > 0
            await pilot.press("end")
            await pilot.pause()
            assert body.scroll_y == body.max_scroll_y and app.focused is close
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))

            await put_cursor_on(pilot, grid, other.line_id)
            await pilot.press("v")
            await wait_for(pilot, lambda: isinstance(app.screen, LineDetailModal))
            assert app.screen.detail.line_id == other.line_id and app.screen.detail.sync_status == "Not Synced"
            await pilot.press("enter")  # Close has the focus
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            await pilot.press("enter")  # an unsynced line's enter is still its edit
            await wait_for(pilot, lambda: type(app.screen).__name__ == "LineEditModal")

    run(scenario())


def _snapshot_store(path: Path, demo_folder: Path):  # a Store and a line ID
    """The seeded store, with a synced line posted by a recorded run to a named agreement;
    its organization carries a hostile name (shown literally)."""
    store = seeded_store(path, demo_folder)
    line = next(l for l in InvoiceLine.select().where(InvoiceLine.period == "2026-09", InvoiceLine.sync_status == "synced")
                .order_by(InvoiceLine.line_id) if not ChargeType(l.charge_type).recurring)
    run_row = SyncRun.create(kind="sync", period="2026-09", started_at=FROZEN.replace(hour=8), state="ok")
    InvoiceLine.update(posted_agreement_id=5001, posted_run_id=run_row.id, addition_id=4242, override_product_id=1000).where(
        InvoiceLine.line_id == line.line_id).execute()
    Organization.update(name=HOSTILE_NAME).where(Organization.platform_id == line.organization_id).execute()
    return store, line.line_id


def test_snapshot_of_a_synced_lines_detail_at_80x24(snap_compare, tmp_path: Path, demo_folder: Path) -> None:
    store, line_id = _snapshot_store(tmp_path / "s.sqlite3", demo_folder)

    async def run_before(pilot) -> None:
        await pilot.press("2")
        await settle(pilot)
        pilot.app.push_screen(LineDetailModal(line_detail(store, line_id)))
        await settle(pilot)
        await pilot.press("end")  # the ConnectWise part: the Addition, where and when it was posted, what was sent
        await settle(pilot)

    assert snap_compare(make_app(store), terminal_size=(80, 24), run_before=run_before)
    store.close()
