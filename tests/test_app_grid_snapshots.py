"""Issue 12 (must show 2): the Invoices grid at 200x50, the columns laid out for the width
there is; and scrolled to its last columns at 100x30, the mark and the organization kept."""

from __future__ import annotations

from tests.app_helpers import make_app
from tests.test_snapshots import keys, settle


def test_invoices_grid_at_200x50(snap_compare, seeded) -> None:
    assert snap_compare(make_app(seeded), terminal_size=(200, 50),
                        run_before=keys("2", "right_square_bracket", "right_square_bracket"))


def test_invoices_grid_scrolled_right_keeps_the_mark_and_the_organization(snap_compare, seeded) -> None:
    async def run_before(pilot) -> None:
        await keys("2", "right_square_bracket", "right_square_bracket", "space")(pilot)
        for _ in range(25):
            await pilot.press("right")
        await settle(pilot)

    assert snap_compare(make_app(seeded), terminal_size=(100, 30), run_before=run_before)
