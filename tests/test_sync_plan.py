"""The sync plan and the Addition, as plain functions (SPEC §7, §8)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from cw_tui.rules.additions import AdditionValues, marker
from cw_tui.rules.mapping import MappingStatus
from cw_tui.rules.sync_plan import (
    AgreementInfo,
    NewAgreement,
    PersistentAddition,
    PlanLine,
    plan_sync,
)
from cw_tui.rules.vocabulary import BillingCycle, ChargeType

TYPE = 2


def line(line_id: str, **changes) -> PlanLine:
    base = PlanLine(
        line_id=line_id, invoice_date=date(2026, 10, 8), organization_id="ORG-1", organization_name="Acme",
        contract_id="CTR-1", subscription_id=f"SUB-{line_id}", subscription_name="M365 E3", offer_name="Microsoft 365 E3",
        charge_type=ChargeType.USAGE_FEE, billing_cycle=BillingCycle.NONE, quantity=Decimal("3"), unit_price=Decimal("12.50"),
        unit_cost=Decimal("10"), currency="USD", charge_start=date(2026, 10, 1), charge_start_user=False,
        charge_end=date(2026, 10, 31), mapping_status=MappingStatus.MAPPED, company_id=250, company_name="Acme",
        product_id=1000, chosen_agreement_id=None, sync_status="not_synced",
    )
    return replace(base, **changes)


AGREEMENTS = {250: [AgreementInfo(5001, 250, TYPE, True), AgreementInfo(5002, 250, 1, True), AgreementInfo(7777, 250, 1, True)],
              253: [AgreementInfo(5003, 253, TYPE, True), AgreementInfo(5004, 253, TYPE, True)]}


def test_markers_fit_connectwise() -> None:
    assert marker("L", "LN-1") == "cwt:L:LN-1"
    long = marker("S", "x" * 80)
    assert long.startswith("cwt:S#") and len(long) <= 50
    assert long == marker("S", "x" * 80) and long != marker("S", "x" * 79 + "y")


def test_the_addition_body_follows_spec_7() -> None:
    values = AdditionValues(1000, Decimal("3"), Decimal("12.50"), Decimal("10"), date(2026, 10, 1), None, "d", "i")
    body = values.body("cwt:L:1")
    assert body["effectiveDate"] == "2026-10-01T00:00:00Z" and "cancelledDate" not in body
    assert body["billCustomer"] == "Billable" and body["product"] == {"id": 1000} and body["serialNumber"] == "cwt:L:1"
    ended = replace(values, cancelled_date=date(2026, 10, 31))
    assert ended.body("m")["cancelledDate"] == "2026-10-31T00:00:00Z"
    assert ended.changes_from(values) == {"cancelledDate": "2026-10-31T00:00:00Z"}
    assert values.changes_from(ended) == {"cancelledDate": None}
    assert values.changes_from(values) == {}


def test_one_time_lines_create_one_addition_each_and_unmapped_are_skipped() -> None:
    lines = [line("a"), line("b"), line("c", mapping_status=MappingStatus.UNMAPPED, product_id=None),
             line("d", mapping_status=MappingStatus.EXCLUDED), line("e", sync_status="synced")]
    plan = plan_sync("2026-10", lines, AGREEMENTS, {}, TYPE, {})
    assert [c.line_ids for c in plan.creates] == [("a",), ("b",)]
    assert {s.line_id: s.reason for s in plan.skips} == {"c": "no product mapped", "d": "organization excluded"}
    assert all(c.agreement == 5001 for c in plan.creates)  # rule 3: the one active agreement of the type
    assert plan.creates[0].values.description == "M365 E3 - Usage Fee"


def test_agreement_rules_1_to_4() -> None:
    own = line("a", chosen_agreement_id=7777)
    several = line("b", company_id=253, contract_id="CTR-2")
    none = line("c", company_id=256, contract_id="CTR-3")
    none_again = line("d", company_id=256, contract_id="CTR-3")
    plan = plan_sync("2026-10", [own, several, none, none_again], AGREEMENTS, {}, TYPE, {})
    targets = {c.line_ids[0]: c.agreement for c in plan.creates}
    assert targets["a"] == 7777
    assert isinstance(targets["b"], NewAgreement) and targets["b"].contract_id == "CTR-2"
    assert targets["c"] is targets["d"]  # one new agreement per contract
    assert len(plan.new_agreements) == 2


def test_recurring_lines_share_one_persistent_addition() -> None:
    purchase = line("p", charge_type=ChargeType.PURCHASE_FEE, billing_cycle=BillingCycle.MONTHLY, subscription_id="S1",
                    charge_start=date(2026, 10, 3), charge_end=None, quantity=Decimal(5))
    cycle = line("c", charge_type=ChargeType.CYCLE_FEE, billing_cycle=BillingCycle.MONTHLY, subscription_id="S1",
                 charge_start=date(2026, 10, 8), charge_end=None, quantity=Decimal(6))
    plan = plan_sync("2026-10", [purchase, cycle], AGREEMENTS, {}, TYPE, {ChargeType.CYCLE_FEE: "Monthly seats"})
    [create] = plan.creates
    assert create.marker == "cwt:S:S1" and create.line_ids == ("c", "p") and create.values.quantity == 6
    assert create.values.description == "M365 E3 - Monthly seats"

    existing = PersistentAddition("S1", 5001, 91000, "active", BillingCycle.MONTHLY, create.values, "2026-10")
    november = [replace(cycle, line_id="n", charge_start=date(2026, 11, 8), invoice_date=date(2026, 11, 8))]
    plan = plan_sync("2026-11", november, AGREEMENTS, {"S1": existing}, TYPE, {ChargeType.CYCLE_FEE: "Monthly seats"})
    assert not plan.creates
    [update] = plan.updates
    assert update.addition_id == 91000 and "quantity" not in update.changes
    assert update.values.effective_date == create.values.effective_date  # the subscription's start is kept
    more_seats = [replace(november[0], quantity=Decimal(9))]
    plan = plan_sync("2026-11", more_seats, AGREEMENTS, {"S1": existing}, TYPE, {ChargeType.CYCLE_FEE: "Monthly seats"})
    assert plan.updates[0].changes["quantity"] == Decimal(9)


def test_unchanged_subscriptions_need_no_request() -> None:
    cycle = line("c", charge_type=ChargeType.CYCLE_FEE, billing_cycle=BillingCycle.MONTHLY, subscription_id="S1", charge_end=None)
    first = plan_sync("2026-10", [cycle], AGREEMENTS, {}, TYPE, {}).creates[0]
    existing = PersistentAddition("S1", 5001, 91000, "active", BillingCycle.MONTHLY, first.values, "2026-10")
    plan = plan_sync("2026-10", [replace(cycle, line_id="c2")], AGREEMENTS, {"S1": existing}, TYPE, {})
    assert not plan.updates and plan.unchanged[0].addition_id == 91000


def test_cancel_when_a_subscription_stops_but_not_an_annual_one_between_renewals() -> None:
    values = AdditionValues(1000, Decimal(1), Decimal(1), Decimal(1), date(2026, 1, 1), None, "d", "i")
    monthly = PersistentAddition("M", 5001, 1, "active", BillingCycle.MONTHLY, values, "2026-10", 250, "USD", "Acme")
    annual = PersistentAddition("A", 5001, 2, "active", BillingCycle.ANNUAL, values, "2026-03", 250, "USD", "Acme")
    stale_annual = PersistentAddition("B", 5001, 3, "active", BillingCycle.ANNUAL, values, "2025-10", 250, "USD", "Acme")
    other = line("x")
    plan = plan_sync("2026-11", [other], AGREEMENTS, {"M": monthly, "A": annual, "B": stale_annual}, TYPE, {})
    assert {c.subscription_id for c in plan.cancels} == {"M", "B"}
    assert all(c.cancelled_date == date(2026, 10, 31) for c in plan.cancels)
    # nothing loaded for a period: nothing is cancelled
    assert not plan_sync("2026-11", [], AGREEMENTS, {"M": monthly}, TYPE, {}).cancels
    # an older period never cancels what a later one billed
    assert not plan_sync("2026-09", [other], AGREEMENTS, {"M": monthly}, TYPE, {}).cancels


plan_lines = st.lists(
    st.builds(
        lambda i, recurring, sub, status, mapped, qty: line(
            f"L{i}", subscription_id=f"S{sub}", sync_status=status,
            charge_type=ChargeType.CYCLE_FEE if recurring else ChargeType.ONE_TIME_FEE,
            billing_cycle=BillingCycle.MONTHLY if recurring else BillingCycle.NONE,
            mapping_status=MappingStatus.MAPPED if mapped else MappingStatus.UNMAPPED, quantity=Decimal(qty),
        ),
        st.integers(0, 10**6), st.booleans(), st.integers(0, 5), st.sampled_from(["not_synced", "error", "synced"]),
        st.booleans(), st.integers(-5, 50),
    ),
    max_size=40, unique_by=lambda l: l.line_id,
)


@given(plan_lines)
def test_every_postable_line_is_in_exactly_one_action(lines: list[PlanLine]) -> None:
    plan = plan_sync("2026-10", lines, AGREEMENTS, {}, TYPE, {})
    acted = [lid for c in plan.creates for lid in c.line_ids] + [s.line_id for s in plan.skips]
    postable = [l.line_id for l in lines if l.sync_status != "synced"]
    assert sorted(acted) == sorted(postable)
    markers = [c.marker for c in plan.creates]
    assert len(markers) == len(set(markers))
    totals = plan.totals()
    assert sum((t.amount for t in totals.values()), Decimal(0)) == sum((c.values.amount for c in plan.creates), Decimal(0))


# ---------------------------------------------------------------- issue 10: money safety

from cw_tui.rules.sync_plan import FoundAddition, adopt_found, period_state  # noqa: E402

MONTHLY = dict(charge_type=ChargeType.CYCLE_FEE, billing_cycle=BillingCycle.MONTHLY, charge_end=None)


def test_a_period_is_open_until_its_month_ended_without_new_invoices() -> None:
    assert period_state("2026-12", date(2026, 12, 31), 0).open  # the month has not ended
    assert period_state("2026-11", date(2026, 12, 1), 3).open  # New invoices at the last load
    assert period_state("2026-11", date(2026, 12, 1), None).open  # never recorded: not known to be complete
    closed = period_state("2026-11", date(2026, 12, 1), 0)
    assert not closed.open and closed.reason() == ""
    assert "2026-12-31" in period_state("2026-12", date(2026, 12, 5), 7).reason()
    assert "7 lines" in period_state("2026-12", date(2026, 12, 5), 7).reason()


def test_an_open_period_lists_its_cancellations_and_sends_none() -> None:
    values = AdditionValues(1000, Decimal(1), Decimal(1), Decimal(1), date(2026, 1, 1), None, "d", "i")
    gone = PersistentAddition("GONE", 5001, 1, "active", BillingCycle.MONTHLY, values, "2026-11", 250, "USD", "Acme")
    on_new = PersistentAddition("ON-NEW", 5001, 2, "active", BillingCycle.MONTHLY, values, "2026-11", 250, "USD", "Acme")
    lines = [line("x")]
    persistent = {"GONE": gone, "ON-NEW": on_new}
    still_new = period_state("2026-12", date(2026, 12, 1), 40, frozenset({"ON-NEW"}))
    plan = plan_sync("2026-12", lines, AGREEMENTS, persistent, TYPE, {}, state=still_new)
    assert plan.open and not plan.cancels
    assert [c.subscription_id for c in plan.deferred_cancels] == ["GONE"]  # ON-NEW is billed on a New invoice
    closed = period_state("2026-12", date(2027, 1, 2), 0)
    plan = plan_sync("2026-12", lines, AGREEMENTS, persistent, TYPE, {}, state=closed)
    assert {c.subscription_id for c in plan.cancels} == {"GONE", "ON-NEW"} and not plan.deferred_cancels
    assert plan.fingerprint != plan_sync("2026-12", lines, AGREEMENTS, persistent, TYPE, {}, state=still_new).fingerprint


def test_a_cancelled_subscription_billed_again_reopens_its_addition() -> None:
    cycle = line("c", subscription_id="S1", **MONTHLY)
    first = plan_sync("2026-10", [cycle], AGREEMENTS, {}, TYPE, {}).creates[0]
    cancelled = PersistentAddition("S1", 5001, 91000, "cancelled", BillingCycle.MONTHLY,
                                   replace(first.values, cancelled_date=date(2026, 10, 31)), "2026-10")
    back = replace(cycle, line_id="d", invoice_date=date(2026, 12, 8), charge_start=date(2026, 12, 8))
    plan = plan_sync("2026-12", [back], AGREEMENTS, {"S1": cancelled}, TYPE, {})
    assert not plan.creates  # never a second Addition with the same marker
    [update] = plan.updates
    assert update.addition_id == 91000 and update.changes["cancelledDate"] is None


def test_agreements_are_looked_up_by_name_and_another_companys_is_refused() -> None:
    agreements = {**AGREEMENTS, 253: [*AGREEMENTS[253], AgreementInfo(6000, 253, TYPE, True, "Acme - CTR-2")]}
    several = line("b", company_id=253, contract_id="CTR-2")
    plan = plan_sync("2026-10", [several], agreements, {}, TYPE, {})
    assert plan.creates[0].agreement == 6000 and not plan.new_agreements  # created earlier, maybe elsewhere
    foreign = line("f", chosen_agreement_id=5003)  # company 253's agreement on a line of company 250
    gone = line("g", chosen_agreement_id=99999)
    plan = plan_sync("2026-10", [foreign, gone], AGREEMENTS, {}, TYPE, {})
    assert not plan.creates
    reasons = {s.line_id: s.reason for s in plan.skips}
    assert "another company" in reasons["f"] and "not in ConnectWise" in reasons["g"]


def test_what_connectwise_already_holds_is_adopted_not_created() -> None:
    usage = line("u")
    cycle = line("c", subscription_id="S1", **MONTHLY)
    moved = line("m", posted_agreement_id=5002)  # an earlier attempt posted it to 5002
    elsewhere = line("e")
    plan = plan_sync("2026-10", [usage, cycle, moved, elsewhere], AGREEMENTS, {}, TYPE, {})
    assert plan.agreements_to_read() == {5001, 5002}
    values = {c.marker: c.values for c in plan.creates}
    held_by_cw = replace(values["cwt:S:S1"], effective_date=date(2026, 9, 1), quantity=Decimal(2))
    found = {
        "cwt:L:u": [FoundAddition("cwt:L:u", 70001, 5001, values["cwt:L:u"])],
        "cwt:S:S1": [FoundAddition("cwt:S:S1", 70002, 5001, held_by_cw)],
        "cwt:L:m": [FoundAddition("cwt:L:m", 70003, 5002, values["cwt:L:m"])],
        "cwt:L:e": [FoundAddition("cwt:L:e", 70004, 4242, values["cwt:L:e"])],  # an agreement the line never went to
    }
    adopted = adopt_found(plan, found, plan.agreements_to_read())
    assert [c.marker for c in adopted.creates] == ["cwt:L:e"]
    assert {a.marker: (a.addition_id, a.agreement_id) for a in adopted.adoptions} == {
        "cwt:L:u": (70001, 5001), "cwt:L:m": (70003, 5002)}
    assert all(a.differs == () for a in adopted.adoptions)
    other = {**found, "cwt:L:u": [FoundAddition("cwt:L:u", 70001, 5001, replace(values["cwt:L:u"], quantity=Decimal(9)))]}
    [odd] = [a for a in adopt_found(plan, other, {5001, 5002}).adoptions if a.marker == "cwt:L:u"]
    assert odd.addition_id == 70001 and odd.differs == ("quantity",)  # adopted, never posted again
    [update] = adopted.updates
    assert update.adopted and update.addition_id == 70002 and update.changes == {"quantity": Decimal(3)}
    assert update.values.effective_date == date(2026, 9, 1)  # the subscription's start, as ConnectWise holds it
    assert adopted.already_in_connectwise == 3
    assert adopted.fingerprint != plan.fingerprint
    same = adopt_found(plan_sync("2026-10", [usage, cycle, moved, elsewhere], AGREEMENTS, {}, TYPE, {}), found, {5001, 5002})
    assert same.fingerprint == adopted.fingerprint
