"""Changing mappings (SPEC §5, §6, §9): organizations, offers, contracts, and lines one by
one or by a grid's "all matching" predicate; synced lines never change."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from cw_tui.services.mapping import (
    LineChange,
    MappingError,
    map_contract,
    map_offers,
    map_organizations,
    update_line_ids,
    update_lines,
)
from cw_tui.services.status import period_counts
from cw_tui.store import Agreement, Company, InvoiceLine, Offer, Organization, Product
from cw_tui.store.grid import GridState, Selection
from cw_tui.store.grid_sources import invoices_source
from tests.app_helpers import FROZEN, seeded_store

PERIOD = "2026-10"


pytestmark = pytest.mark.both_backends


@pytest.fixture
def store(new_db, demo_folder: Path):
    s = seeded_store(new_db("s"), demo_folder)
    yield s
    s.close()


def test_map_and_unmap_organizations_and_offers(store) -> None:
    org = Organization.select().where(Organization.company_id.is_null()).first()
    map_organizations(store, [org.platform_id], 251)
    assert Organization.get_by_id(org.platform_id).company_id == 251
    map_organizations(store, [org.platform_id], None)
    assert Organization.get_by_id(org.platform_id).company_id is None  # the row stays, unmapped
    with pytest.raises(MappingError, match="not known"):
        map_organizations(store, [org.platform_id], 999_999)
    Product.insert(id=4242, identifier="OLD", description="Old product", inactive=True, synced_at=FROZEN).execute()
    offer = Offer.select().first()
    with pytest.raises(MappingError, match="inactive"):
        map_offers(store, [offer.platform_id], 4242)


def test_bulk_update_of_all_matching_lines_leaves_synced_ones(store) -> None:
    source = invoices_source(PERIOD)
    state = GridState(filters=(("charge_type", frozenset({"Cycle Fee"})),))
    selection = Selection.all_matching(source, state)
    synced_before = {l.line_id: l.override_product_id for l in InvoiceLine.select().where(InvoiceLine.sync_status == "synced")}
    changed = update_lines(store, selection, LineChange(product_id=1001, charge_end=date(2026, 12, 31)))
    editable = InvoiceLine.select().where((InvoiceLine.period == PERIOD) & (InvoiceLine.charge_type == "Cycle Fee")
                                          & InvoiceLine.sync_status.in_(["not_synced", "error"]))
    assert changed == editable.count() > 10
    assert all(l.override_product_id == 1001 and l.charge_end == date(2026, 12, 31) and l.charge_end_badge == "user"
               for l in editable)
    for line_id, product in synced_before.items():
        assert InvoiceLine.get_by_id(line_id).override_product_id == product
    others = InvoiceLine.select().where((InvoiceLine.period == PERIOD) & (InvoiceLine.charge_type != "Cycle Fee"))
    assert all(l.override_product_id is None for l in others)


def test_a_typed_start_moves_a_default_end_and_is_checked(store) -> None:
    line = InvoiceLine.select().where((InvoiceLine.charge_type == "Usage Fee") & (InvoiceLine.sync_status == "not_synced")).first()
    assert line.charge_end_badge == "default"
    update_line_ids(store, [line.line_id], LineChange(charge_start=date(2026, 11, 5)))
    line = InvoiceLine.get_by_id(line.line_id)
    assert (line.charge_start, line.charge_start_badge) == (date(2026, 11, 5), "user")
    assert (line.charge_end, line.charge_end_badge) == (date(2026, 11, 30), "default")
    update_line_ids(store, [line.line_id], LineChange(charge_end=date(2026, 11, 20)))
    with pytest.raises(MappingError, match="before"):
        update_line_ids(store, [line.line_id], LineChange(charge_start=date(2026, 11, 25)))
    with pytest.raises(MappingError, match="before"):
        update_line_ids(store, [line.line_id], LineChange(charge_end=date(2026, 11, 1)))


def line_of_company(company_id: int) -> InvoiceLine:
    """An unsynced line of the period whose organization is mapped to `company_id`."""
    return (InvoiceLine.select().join(Organization, on=(Organization.platform_id == InvoiceLine.organization_id))
            .where((Organization.company_id == company_id) & (InvoiceLine.sync_status == "not_synced")
                   & (InvoiceLine.period == PERIOD)).order_by(InvoiceLine.line_id).first())


def test_contract_scope_applies_to_every_unsynced_line(store) -> None:
    line = line_of_company(250)  # Demo agreement's company
    update_line_ids(store, [line.line_id], LineChange(agreement_id=5001))
    assert InvoiceLine.get_by_id(line.line_id).override_agreement_id == 5001
    map_contract(store, line.contract_id, 5001)
    assert InvoiceLine.get_by_id(line.line_id).override_agreement_id is None  # follows the contract now
    Agreement.insert(id=5002, name="Cancelled one", company_id=250, type_id=2, status="Cancelled", cancelled=True,
                     synced_at=FROZEN).execute()
    with pytest.raises(MappingError, match="Active"):
        map_contract(store, line.contract_id, 5002)


def test_counts_follow_mapping_changes(store) -> None:
    """Mapping one organization moves its lines whose offer is mapped out of Unmapped; a new
    organization is excluded, so they count as Excluded until a person includes it."""
    before = {p["period"]: p for p in period_counts(store)}[PERIOD]
    org_id, k = store.db.execute_sql(
        "SELECT l.organization_id, COUNT(*) FROM invoice_line l JOIN offer f ON f.platform_id = l.offer_id "
        "JOIN organization o ON o.platform_id = l.organization_id "
        "WHERE l.period = ? AND f.product_id IS NOT NULL AND o.company_id IS NULL "
        "GROUP BY l.organization_id ORDER BY COUNT(*) DESC LIMIT 1", (PERIOD,)).fetchone()
    Company.insert(id=77777, identifier="NEW", name="New customer", deleted=False, synced_at=FROZEN).execute()
    map_organizations(store, [org_id], 77777)
    after = {p["period"]: p for p in period_counts(store)}[PERIOD]
    assert after["unmapped"] == before["unmapped"] - k
    assert after["excluded"] == before["excluded"] + k
    assert after["lines"] == after["mapped"] + after["unmapped"] + after["excluded"]


def snapshot(store) -> list:
    return (store.db.execute_sql("SELECT line_id, override_company_id, override_agreement_id FROM invoice_line "
                                 "ORDER BY line_id").fetchall(),
            store.db.execute_sql("SELECT platform_id, agreement_id FROM contract ORDER BY platform_id").fetchall())


def test_another_companys_agreement_is_refused_naming_both_companies(store) -> None:
    """Issue 10 (7b): an agreement is posted to for its own company only; the services refuse
    it for a line (or contract) of another company, and nothing changes."""
    ours, theirs = line_of_company(250), line_of_company(251)
    names = {c.id: c.name for c in Company.select()}
    before = snapshot(store)
    with pytest.raises(MappingError) as refused:
        update_line_ids(store, [ours.line_id, theirs.line_id], LineChange(agreement_id=5001, charge_end=date(2026, 12, 31)))
    message = str(refused.value)
    assert "Demo agreement (#5001)" in message and f"{names[250]} (#250)" in message
    assert theirs.line_id in message and f"{names[251]} (#251)" in message
    with pytest.raises(MappingError, match=f"contract {theirs.contract_id} is for {names[251]}"):
        map_contract(store, theirs.contract_id, 5001)
    source = invoices_source(PERIOD)
    with pytest.raises(MappingError, match="more line"):  # the grid's "all matching": many companies
        update_lines(store, Selection.all_matching(source, GridState()), LineChange(agreement_id=5001))
    unmapped = InvoiceLine.select().join(Organization, on=(Organization.platform_id == InvoiceLine.organization_id)).where(
        Organization.company_id.is_null() & (InvoiceLine.sync_status == "not_synced")).first()
    with pytest.raises(MappingError, match="no PSA Organization yet"):
        update_line_ids(store, [unmapped.line_id], LineChange(agreement_id=5001))
    assert snapshot(store) == before

    # the line's own company decides: given company 250, the line of 251 may take the agreement
    assert update_line_ids(store, [theirs.line_id], LineChange(company_id=250, agreement_id=5001)) == 1
    assert InvoiceLine.get_by_id(theirs.line_id).override_agreement_id == 5001
    # and a new company must match the agreement the line keeps: clear it first
    with pytest.raises(MappingError, match="own agreement Demo agreement"):
        update_line_ids(store, [theirs.line_id], LineChange(company_id=None))
    assert InvoiceLine.get_by_id(theirs.line_id).override_company_id == 250
    update_line_ids(store, [theirs.line_id], LineChange(company_id=None, agreement_id=None))
    assert InvoiceLine.get_by_id(theirs.line_id).override_agreement_id is None


def test_line_companies_of_marked_lines(store) -> None:
    from cw_tui.services.mapping import line_companies

    ours, theirs = line_of_company(250), line_of_company(251)
    source = invoices_source(PERIOD)
    assert [c[0] for c in line_companies(store, Selection.of_keys(source, [ours.line_id]))] == [250]
    assert sorted(c[0] for c in line_companies(store, Selection.of_keys(source, [ours.line_id, theirs.line_id]))) == [250, 251]


def test_every_change_records_who_and_a_save_over_a_colleagues_is_refused(store, monkeypatch) -> None:
    """Team mode (issue 17): a change records who made it and when; a save checked against what
    its editor read is refused, with who saved meanwhile and when, and changes nothing."""
    from cw_tui.services.mapping import ChangedMeanwhile
    from cw_tui.store import queries

    org = Organization.select().where(Organization.company_id.is_null()).first()
    line = InvoiceLine.select().where((InvoiceLine.period == PERIOD) & (InvoiceLine.sync_status == "not_synced")).first()
    assert queries.change_stamp(store, "organization", org.platform_id) == queries.Stamp()
    anna_read = queries.change_stamp(store, "organization", org.platform_id)
    line_read = queries.change_stamp(store, "line", line.line_id)
    monkeypatch.setenv("CW_TUI_USER", "finance.ben")
    map_organizations(store, [org.platform_id], 251, read=queries.change_stamp(store, "organization", org.platform_id))
    update_line_ids(store, [line.line_id], LineChange(product_id=1001), read=line_read)
    ben = queries.change_stamp(store, "organization", org.platform_id)
    assert ben.by == "finance.ben" and ben.at is not None
    assert queries.change_stamp(store, "line", line.line_id).by == "finance.ben"
    monkeypatch.setenv("CW_TUI_USER", "finance.anna")
    with pytest.raises(ChangedMeanwhile, match=f"changed by finance.ben at {ben.at:%Y-%m-%d %H:%M:%S} UTC") as refused:
        map_organizations(store, [org.platform_id], 252, read=anna_read)
    assert refused.value.stamp == ben
    with pytest.raises(ChangedMeanwhile, match="finance.ben"):
        update_line_ids(store, [line.line_id], LineChange(product_id=1002), read=line_read)
    assert Organization.get_by_id(org.platform_id).company_id == 251  # nothing was saved
    assert InvoiceLine.get_by_id(line.line_id).override_product_id == 1001
    # saved over what she reads now: accepted, and hers
    map_organizations(store, [org.platform_id], 252, read=queries.change_stamp(store, "organization", org.platform_id))
    assert queries.change_stamp(store, "organization", org.platform_id).by == "finance.anna"
    # a bulk update and an offer's mapping record who too
    offer = Offer.select().first()
    map_offers(store, [offer.platform_id], 1001)
    assert Offer.get_by_id(offer.platform_id).changed_by == "finance.anna"


def test_a_bulk_change_that_fails_half_way_changes_no_line(store) -> None:
    """All or nothing: the database refuses one line in the middle of a bulk change (a trigger
    stands in for a constraint), and every line keeps what it had. (On SQLite the UPDATE is OR
    FAIL, which keeps no statement journal: the transaction's rollback undoes what it did.)"""
    import peewee as pw

    lines = list(InvoiceLine.select().where((InvoiceLine.period == PERIOD)
                                            & InvoiceLine.sync_status.in_(["not_synced", "error"])).order_by(InvoiceLine.line_id))
    middle = lines[len(lines) // 2].line_id
    before = {l.line_id: (l.charge_end, l.charge_end_badge, l.changed_by) for l in lines}
    if store.is_postgres:
        store.db.execute_sql("CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                             "RAISE EXCEPTION 'refused'; END $$")
        store.db.execute_sql(f"CREATE TRIGGER boom BEFORE UPDATE ON invoice_line FOR EACH ROW "
                             f"WHEN (NEW.line_id = '{middle}') EXECUTE FUNCTION boom()")
    else:
        store.db.execute_sql(f"CREATE TEMP TRIGGER boom BEFORE UPDATE ON main.invoice_line "
                             f"WHEN NEW.line_id = '{middle}' BEGIN SELECT RAISE(FAIL, 'refused'); END")
    with pytest.raises(pw.DatabaseError, match="refused"):
        update_line_ids(store, [l.line_id for l in lines], LineChange(charge_end=date(2026, 12, 30)))
    after = {l.line_id: (l.charge_end, l.charge_end_badge, l.changed_by)
             for l in InvoiceLine.select().where(InvoiceLine.line_id.in_(list(before)))}
    assert after == before
