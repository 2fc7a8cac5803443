"""Effective mapping: the pure rule and its SQL twin must agree on every line."""

from __future__ import annotations

from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cw_tui.rules.mapping import LineMappingFacts, MappingStatus, mapping_status
from cw_tui.store import Contract, InvoiceLine, Offer, Organization, now_utc
from cw_tui.store.line_sql import LINE_MAPPING_JOINS, LINE_MAPPING_STATUS

ids = st.none() | st.integers(1, 3)


@st.composite
def worlds(draw):
    orgs = draw(st.lists(st.tuples(st.booleans(), ids), min_size=1, max_size=5))
    offers = draw(st.lists(ids, min_size=1, max_size=3))
    contracts = draw(st.lists(ids, min_size=1, max_size=3))
    lines = draw(st.lists(
        st.tuples(st.integers(0, len(orgs) - 1), st.integers(0, len(offers) - 1), st.integers(0, len(contracts) - 1), ids, ids, ids),
        min_size=1, max_size=12,
    ))
    return orgs, offers, contracts, lines


def test_spec_rule_5_multi_organization_company_needs_a_chosen_agreement() -> None:
    base = dict(organization_excluded=False, organization_company_id=1, offer_product_id=2, contract_agreement_id=None)
    assert mapping_status(LineMappingFacts(**base)) is MappingStatus.MAPPED
    assert mapping_status(LineMappingFacts(**base, organizations_on_company=2)) is MappingStatus.UNMAPPED
    assert mapping_status(LineMappingFacts(**base, organizations_on_company=2, override_agreement_id=9)) is MappingStatus.MAPPED
    assert mapping_status(LineMappingFacts(**{**base, "organization_excluded": True})) is MappingStatus.EXCLUDED
    assert mapping_status(LineMappingFacts(**{**base, "organization_company_id": None}, override_company_id=5)) is MappingStatus.MAPPED


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(worlds())
def test_sql_and_python_agree(store, world) -> None:
    orgs, offers, contracts, lines = world
    now = now_utc()
    with store.atomic() as txn:
        for i, (excluded, company) in enumerate(orgs):
            Organization.create(platform_id=f"o{i}", name=f"O{i}", excluded=excluded, company_id=company, first_seen_at=now, updated_at=now)
        for i, product in enumerate(offers):
            Offer.create(platform_id=f"f{i}", name=f"F{i}", product_id=product, updated_at=now)
        for i, agreement in enumerate(contracts):
            Contract.create(platform_id=f"c{i}", organization_id="o0", billing_day=1, currency="USD", agreement_id=agreement, updated_at=now)
        for n, (o, f, c, oc, op, oa) in enumerate(lines):
            InvoiceLine.create(
                line_id=f"l{n}", period="2026-01", invoice_number="I", invoice_date=date(2026, 1, 1), invoice_status="Processed",
                organization_id=f"o{o}", contract_id=f"c{c}", subscription_id="s", subscription_name="S", offer_id=f"f{f}",
                charge_type="Cycle Fee", billing_cycle="Monthly", quantity=1, unit_price=1, unit_cost=1, total=1, currency="USD",
                platform_charge_start=date(2026, 1, 1), charge_start=date(2026, 1, 1),
                override_company_id=oc, override_product_id=op, override_agreement_id=oa, loaded_at=now,
            )
        sql = f"SELECT l.line_id, {LINE_MAPPING_STATUS} FROM invoice_line l {LINE_MAPPING_JOINS}"
        from_sql = dict(store.db.execute_sql(sql).fetchall())
        per_company = {}
        for _, company in orgs:
            if company is not None:
                per_company[company] = per_company.get(company, 0) + 1
        for n, (o, f, c, oc, op, oa) in enumerate(lines):
            company = oc if oc is not None else orgs[o][1]
            facts = LineMappingFacts(
                organization_excluded=orgs[o][0], organization_company_id=orgs[o][1], offer_product_id=offers[f],
                contract_agreement_id=contracts[c], override_company_id=oc, override_product_id=op, override_agreement_id=oa,
                organizations_on_company=per_company.get(company, 1) if company is not None else 1,
            )
            assert from_sql[f"l{n}"] == mapping_status(facts).value, facts
        txn.rollback()
