"""Issue 12, what the grids show: columns that use the width there is with titles never cut,
the mark and the row's name in view when scrolling right, the reason on an Error line, the
part of an agreement's name that tells it apart, "New agreement (<type>)", money to the cent,
counts in the singular where one."""

from __future__ import annotations

import pytest
from textual.widgets import Input, Static

from cw_tui.store import Agreement, Contract, InvoiceLine, Offer, Organization
from cw_tui.widgets.grid import SqlGrid
from tests.app_helpers import FROZEN, invoices_grid, make_app, run, wait_for


def screen_lines(app) -> list[str]:
    return [strip.text for strip in app.screen._compositor.render_strips()]


def cells(grid: SqlGrid, key: str) -> dict[str, str]:
    """A row's cells as drawn: after the mark, each column is its width with a space either side."""
    text = grid.table._strips[grid.page.keys.index(key)].text
    out, x = {}, 3
    for column in grid._visible():
        width = grid.width_of(column)
        out[column.key] = text[x + 1 : x + 1 + width].strip()
        x += width + 2
    return out


def header(grid: SqlGrid) -> list[str]:
    return [strip.text for strip in grid.table._header]






@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
def test_titles_are_never_cut_and_names_use_the_width_there_is(seeded, size) -> None:
    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=size) as pilot:
            grid = await invoices_grid(app, pilot)
            lines = header(grid)
            assert len(lines) == 2 and not any("…" in line for line in lines)  # wrapped, not cut
            for column in grid._visible():
                words = set(column.title.split())
                assert all(any(w in line for line in lines) for w in words), column.title
            names = [row[2] for row in grid.page.rows]
            longest = max(names, key=len)
            assert len(longest) > 24  # longer than the column's usual width
            shown = [cells(grid, key)["organization"] for key in grid.page.keys]
            if size == (200, 50):  # room: every name whole
                assert shown == names
                assert grid.width_of(grid.source.column("organization")) >= len(longest)
                assert longest in "\n".join(screen_lines(app))
            else:  # 80 columns: the usual width, cut names end in …
                assert grid.width_of(grid.source.column("organization")) == 24
                assert any(s.endswith("…") for s in shown)
            organizations = app.screen.query_one("#grid-organizations", SqlGrid)
            await pilot.press("left_square_bracket", "left_square_bracket")
            await wait_for(pilot, lambda: organizations.table.has_focus)
            await pilot.pause()
            lines = header(organizations)
            assert not any("…" in line for line in lines)
            text = "\n".join(lines)
            assert "Excluded" in text and "from Sync" in text and "Organization" in text

    run(scenario())


def test_the_mark_and_the_organization_stay_when_scrolling_right(seeded) -> None:
    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=(100, 30)) as pilot:
            grid = await invoices_grid(app, pilot)
            await pilot.press("space")  # a mark on the first row
            await pilot.press("up")
            first_name = grid.page.rows[0][2]
            for _ in range(len(grid._visible())):
                await pilot.press("right")
            await pilot.pause()
            assert grid.table.scroll_x > 60 and grid.current_column().key == grid._visible()[-1].key
            lines = screen_lines(app)
            table_top = grid.table.region.y
            title, first_row = lines[table_top], lines[table_top + grid.table.header_height]
            assert title.startswith("◀●  Organization")  # the mark's column and the name, first
            assert first_row.startswith(" ●  " + first_name[:20])  # the mark and the row's name
            assert "Last" in title and "Sync" in "\n".join(lines[table_top:table_top + 2])  # the last column in view
            # back to the left: every column where it was
            for _ in range(len(grid._visible())):
                await pilot.press("left")
            await pilot.pause()
            assert grid.table.scroll_x == 0
            assert screen_lines(app)[table_top].startswith(" ●  Invoice")

    run(scenario())


def test_error_lines_show_their_reason_and_agreements_what_tells_them_apart(seeded) -> None:
    lines = list(InvoiceLine.select().where(InvoiceLine.period == "2026-10").order_by(InvoiceLine.invoice_date,
                                                                                         InvoiceLine.line_id))
    errors = [line.line_id for line in lines if line.sync_status == "error"]
    assert errors
    organizations = {o.platform_id: o for o in Organization.select()}
    products = {o.platform_id for o in Offer.select().where(Offer.product_id.is_null(False))}
    mapped = [line for line in lines if organizations[line.organization_id].company_id is not None
              and line.offer_id in products and line.sync_status == "not_synced"]
    named, proposed, new = mapped[0], None, None
    organization = organizations[named.organization_id]
    # an agreement named as cw-tui names them: the customer's name, then the contract
    Agreement.insert(id=7001, name=f"{organization.name} - {named.contract_id}", company_id=organization.company_id,
                     type_id=1, status="Active", cancelled=False, synced_at=FROZEN).execute()
    Contract.update(agreement_id=7001).where(Contract.platform_id == named.contract_id).execute()
    companies = [organization.company_id]
    for line in mapped:
        company = organizations[line.organization_id].company_id
        if company in companies:
            continue
        companies.append(company)
        if proposed is None:
            proposed = line
        elif new is None:
            new = line
    # the proposed line's company has exactly one active agreement of the configured type (2)
    Agreement.insert(id=7002, name="Only Cloud Services agreement", company_id=companies[1], type_id=2,
                     status="Active", cancelled=False, synced_at=FROZEN).execute()
    assert proposed is not None and new is not None
    # money to the cent; a quantity as given
    seeded.db.execute_sql("UPDATE invoice_line SET total = 8665684560, quantity = 2500000 WHERE line_id = ?",
                          (new.line_id,))

    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=(200, 50)) as pilot:
            grid = await invoices_grid(app, pilot)
            grid.state = grid.state.__class__(page_size=500)
            grid.reload()
            await wait_for(pilot, lambda: len(grid.page.rows) == grid.page.total)
            for key in errors:
                assert cells(grid, key)["error"] == "Product P1 is inactive"
                assert cells(grid, key)["sync"] == "Error"
            assert cells(grid, named.line_id)["psa_agreement"] == f"… {named.contract_id}"
            assert cells(grid, proposed.line_id)["psa_agreement"] == "Only Cloud Services agreement"  # SPEC §8 rule 3
            assert cells(grid, new.line_id)["psa_agreement"] == "New agreement (Cloud Services)"  # rule 4
            unmapped = next(k for k, r in zip(grid.page.keys, grid.page.rows, strict=False) if r[17] == "unmapped")
            assert cells(grid, unmapped)["psa_agreement"] == "Click to select"
            assert cells(grid, new.line_id)["total"] == "8,665.68" and cells(grid, new.line_id)["quantity"] == "2.5"
            # the export keeps the whole name and the exact amount
            column = grid.source.column("psa_agreement")
            row = grid.page.rows[grid.page.keys.index(named.line_id)]
            index = [c.key for c in grid.source.columns].index("psa_agreement")
            assert column.csv_cells(row[index]) == [f"{organization.name} - {named.contract_id}"]
            total = grid.source.column("total")
            assert total.csv_cells(8665684560) == ["8665.68456"]

    run(scenario())


def test_counts_of_one_are_in_the_singular(seeded) -> None:
    from tests.test_app_grid_keys import matching_lines

    names = [r[0] for r in seeded.db.execute_sql(
        "SELECT subscription_name FROM invoice_line WHERE period = '2026-10' GROUP BY subscription_name "
        "HAVING COUNT(*) = 1 ORDER BY 1")]
    text = next(name for name in names if matching_lines(seeded, name) == 1)

    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=(120, 40)) as pilot:
            grid = await invoices_grid(app, pilot)
            await pilot.press("slash")
            grid.set_search(text)
            await wait_for(pilot, lambda: grid.state.search == text and grid.page.total == 1)
            await pilot.pause()
            summary = str(grid.query_one(".summary", Static).render())
            assert "Showing 1 of 1 invoice line" in summary and "lines" not in summary
            assert grid.query_one(".search", Input).value == text
            await pilot.press("escape", "ctrl+a")
            await wait_for(pilot, lambda: grid.all_matching)
            await pilot.pause()
            summary = str(grid.query_one(".summary", Static).render())
            assert summary.startswith("1 marked · Showing 1 of 1 invoice line")

    run(scenario())


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
def test_a_column_cut_by_the_view_never_shows_another_amount(seeded, size: tuple[int, int]) -> None:
    """Scrolled right step by step, every amount on screen is one the line really has: a
    Total cut at the left edge is blank, never "440.00" for 1,440.00 or "120.00" for -120.00,
    and a number cut at the right edge is blank too."""
    import re

    amount = re.compile(r"-?\d[\d,]*\.\d\d(?!\d)")

    async def scenario() -> None:
        app = make_app(seeded)
        async with app.run_test(size=size) as pilot:
            grid = await invoices_grid(app, pilot)
            numeric = [c.key for c in grid._visible() if c.numeric]
            shown_per_row = [{cells(grid, key)[k] for k in numeric} for key in list(grid._rows)[:5]]
            top = grid.table.region.y + grid.table.header_height
            for step in range(0, int(grid.table.max_scroll_x) + 1, 3):
                grid.table.scroll_to(x=step, animate=False)
                await pilot.pause()
                for n, whole in enumerate(shown_per_row):
                    line = screen_lines(app)[top + n]
                    for found in amount.findall(line):
                        assert found in whole, (step, found, line)

    run(scenario())
