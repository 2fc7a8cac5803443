"""Issue 12 snapshots at 80x24: Best Practices scrolled to its end, the auto-match
confirmation (with matched companies that are not Active in ConnectWise), and the edit form of
an Error line with a long reason. Seeded data, a frozen clock, UTC, no animations."""

from __future__ import annotations

from cw_tui.store import Company, InvoiceLine, Organization
from tests.app_helpers import FROZEN, make_app
from tests.test_app_modals_layout import LONG_ERROR
from tests.test_snapshots import keys, settle

SMALL = (80, 24)




def test_best_practices_scrolled_to_the_end(snap_compare, seeded) -> None:
    assert snap_compare(make_app(seeded), terminal_size=SMALL, run_before=keys("2", "b", "end"))


def test_auto_match_confirmation(snap_compare, seeded) -> None:
    # ConnectWise companies named as eight unmapped organizations: three of them not Active
    unmapped = list(Organization.select().where(Organization.company_id.is_null()).order_by(Organization.name).limit(8))
    statuses = ["Delinquent", "Active", "Not-Approved", "Active", "Active", "Credit Hold", "Active", "Active"]
    for n, (org, status) in enumerate(zip(unmapped, statuses, strict=True)):
        Company.insert(id=900 + n, identifier=f"M{n}", name=org.name, status_name=status, deleted=False,
                       synced_at=FROZEN).execute()
    assert snap_compare(make_app(seeded), terminal_size=SMALL, run_before=keys("2", "a"))


def test_edit_form_of_an_error_line(snap_compare, seeded) -> None:
    async def run_before(pilot) -> None:
        await keys("2")(pilot)
        from cw_tui.widgets.grid import SqlGrid

        screen = pilot.app.screen
        screen.show_tab("invoices")
        await settle(pilot)
        grid = screen.query_one("#grid-invoices", SqlGrid)
        key = grid.current_key()
        InvoiceLine.update(sync_status="error", last_error=LONG_ERROR).where(InvoiceLine.line_id == key).execute()
        grid.reload()
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)

    assert snap_compare(make_app(seeded), terminal_size=SMALL, run_before=run_before)
