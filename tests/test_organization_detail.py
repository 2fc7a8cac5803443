"""Issue 17, who changed it: the organization detail (`v` on the Organizations tab) shows who
last changed the organization's mapping and its contracts' agreements, and when, in local time."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from textual.widgets import Static

from cw_tui.screens.mapping import MappingScreen
from cw_tui.screens.organization_detail import OrganizationDetailModal
from cw_tui.services.mapping import map_contract, map_organizations
from cw_tui.services.organization_detail import NOBODY, organization_detail
from cw_tui.store import Contract, Organization
from cw_tui.widgets.grid import SqlGrid
from tests.app_helpers import HOSTILE_NAME, make_app, run, wait_for
from tests.test_app_mapping import put_cursor_on
from tests.test_line_detail import text_of


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch):
    """This machine's clock in New York (the suite runs in UTC): times shown are local."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _changed(store, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, str, str]:
    """An organization mapped by finance.ben, one of its contracts' agreement chosen by
    finance.anna: (organization, contract, each one's change as the detail should show it)."""
    org = Organization.select().where(Organization.company_id.is_null(False)).order_by(Organization.platform_id).first()
    contract = Contract.select().where(Contract.organization_id == org.platform_id).order_by(Contract.platform_id).first()
    monkeypatch.setenv("CW_TUI_USER", "finance.ben")
    map_organizations(store, [org.platform_id], 250)  # the company of agreement 5001
    monkeypatch.setenv("CW_TUI_USER", "finance.anna")
    map_contract(store, contract.platform_id, 5001)
    monkeypatch.delenv("CW_TUI_USER")
    org_at = Organization.get_by_id(org.platform_id).changed_at.astimezone()
    contract_at = Contract.get_by_id(contract.platform_id).changed_at.astimezone()
    return (org.platform_id, contract.platform_id, f"finance.ben at {org_at:%Y-%m-%d %H:%M:%S} EST",
            f"finance.anna at {contract_at:%Y-%m-%d %H:%M:%S} EST")


@pytest.mark.both_backends
def test_the_detail_names_who_changed_the_mapping_in_local_time(seeded, new_york, monkeypatch) -> None:
    org_id, contract_id, org_change, contract_change = _changed(seeded, monkeypatch)
    detail = organization_detail(seeded, org_id)
    assert detail.value("Changed by", "Mapping").value == org_change
    contract = detail.value("Changed by", f"Contract {contract_id}")
    assert contract.value == contract_change and "Demo agreement (#5001)" in contract.note
    assert detail.value("Mapping", "PSA Organization").value.endswith("(#250, Active)")
    assert detail.value("Mapping", "In sync").value in ("included", "excluded")
    assert detail.sections[-1][0] == "Invoice lines" and detail.sections[-1][1]
    untouched = Organization.select().where(Organization.platform_id != org_id).order_by(Organization.platform_id).first()
    assert organization_detail(seeded, untouched.platform_id).value("Changed by", "Mapping").value == NOBODY
    assert organization_detail(seeded, "no such organization") is None


def test_v_on_the_organizations_tab_opens_it(seeded, new_york, monkeypatch) -> None:
    org_id, contract_id, org_change, contract_change = _changed(seeded, monkeypatch)
    Organization.update(name=HOSTILE_NAME).where(Organization.platform_id == org_id).execute()

    async def scenario() -> None:
        app = make_app(seeded, clock=lambda: datetime(2026, 10, 20, 9, 0, tzinfo=UTC))
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("2")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
            screen = app.screen
            assert screen.check_action("organization_detail", ()) is True
            assert screen.check_action("line_detail", ()) is False
            grid = screen.query_one("#grid-organizations", SqlGrid)
            await put_cursor_on(pilot, grid, org_id)
            await pilot.press("v")
            await wait_for(pilot, lambda: isinstance(app.screen, OrganizationDetailModal))
            modal = app.screen
            close = modal.query_one("#close")
            assert app.focused is close and close.region.bottom <= 24
            shown = text_of(modal.query_one("#section-changed-by", Static))
            [mapping] = [r for r in shown.splitlines() if r.startswith("Mapping")]
            assert org_change in mapping
            assert contract_change in shown and f"Contract {contract_id}" in shown
            subtitle = text_of(modal.query_one("#subtitle", Static))
            assert "\x1b" not in subtitle and "[bold red]ACME[/]" in subtitle  # control bytes made visible, markup literal
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))

            screen.show_tab("invoices")
            await pilot.pause()
            assert screen.check_action("organization_detail", ()) is False  # there v is the line's detail
            assert screen.check_action("line_detail", ()) is True

    run(scenario())
