"""The sync plan (SPEC §7, §8, §10, §15): from the lines of a period, their effective
mapping and what is already in ConnectWise, every create, update, cancel and new agreement,
with money totals per customer and currency. A plain function over plain data: the dry run
prints it, the engine carries it out, and the tests check it directly."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from cw_tui.rules.additions import AdditionValues, descriptions, marker
from cw_tui.rules.mapping import MappingStatus
from cw_tui.rules.periods import first_day, parse_period
from cw_tui.rules.vocabulary import BillingCycle, ChargeType

TERM_MONTHS = {BillingCycle.MONTHLY: 1, BillingCycle.ANNUAL: 12, BillingCycle.TRIENNIAL: 36, BillingCycle.NONE: 1}


@dataclass(frozen=True)
class PlanLine:
    line_id: str
    invoice_date: date
    organization_id: str
    organization_name: str
    contract_id: str
    subscription_id: str
    subscription_name: str
    offer_name: str
    charge_type: ChargeType
    billing_cycle: BillingCycle
    quantity: Decimal
    unit_price: Decimal
    unit_cost: Decimal
    currency: str
    charge_start: date
    charge_start_user: bool
    charge_end: date | None
    mapping_status: MappingStatus
    company_id: int | None
    company_name: str
    product_id: int | None
    chosen_agreement_id: int | None  # the line's own, else its contract's (SPEC §8 rules 1-2)
    sync_status: str  # not_synced | error | synced | claimed


@dataclass(frozen=True)
class AgreementInfo:
    id: int
    company_id: int
    type_id: int | None
    active: bool


@dataclass(frozen=True)
class PersistentAddition:
    subscription_id: str
    agreement_id: int | None
    addition_id: int | None
    state: str  # pending | active | cancelled
    billing_cycle: BillingCycle
    values: AdditionValues | None
    last_period: str | None
    company_id: int | None = None
    currency: str | None = None
    customer: str = ""


@dataclass(frozen=True)
class NewAgreement:
    """SPEC §8 rule 4: an Agreement of the configured type for the contract's company."""

    contract_id: str
    company_id: int
    type_id: int
    name: str


AgreementTarget = int | NewAgreement


@dataclass(frozen=True)
class CreateAddition:
    marker: str
    line_ids: tuple[str, ...]
    agreement: AgreementTarget
    values: AdditionValues
    company_id: int
    customer: str
    currency: str
    subscription_id: str | None = None  # set for a subscription's persistent Addition
    billing_cycle: BillingCycle = BillingCycle.NONE


@dataclass(frozen=True)
class UpdateAddition:
    subscription_id: str
    marker: str
    line_ids: tuple[str, ...]
    agreement_id: int
    addition_id: int
    values: AdditionValues
    changes: dict
    customer: str
    currency: str


@dataclass(frozen=True)
class UnchangedAddition:
    """Recurring lines whose persistent Addition already holds their values."""

    subscription_id: str
    line_ids: tuple[str, ...]
    addition_id: int
    agreement_id: int


@dataclass(frozen=True)
class CancelAddition:
    subscription_id: str
    marker: str
    agreement_id: int
    addition_id: int
    cancelled_date: date
    customer: str
    currency: str


@dataclass(frozen=True)
class Skip:
    line_id: str
    reason: str


@dataclass
class Total:
    creates: int = 0
    updates: int = 0
    cancels: int = 0
    lines: int = 0
    amount: Decimal = Decimal(0)


@dataclass
class Plan:
    period: str
    creates: list[CreateAddition] = field(default_factory=list)
    updates: list[UpdateAddition] = field(default_factory=list)
    unchanged: list[UnchangedAddition] = field(default_factory=list)
    cancels: list[CancelAddition] = field(default_factory=list)
    new_agreements: list[NewAgreement] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)

    def totals(self) -> dict[tuple[str, str], Total]:
        """Per (customer, currency): what will be posted (creates and updates at their new values)."""
        result: dict[tuple[str, str], Total] = defaultdict(Total)
        for create in self.creates:
            total = result[(create.customer, create.currency)]
            total.creates += 1
            total.lines += len(create.line_ids)
            total.amount += create.values.amount
        for update in self.updates:
            total = result[(update.customer, update.currency)]
            total.updates += 1
            total.lines += len(update.line_ids)
            total.amount += update.values.amount
        for cancel in self.cancels:
            result[(cancel.customer, cancel.currency)].cancels += 1
        return dict(sorted(result.items()))

    @property
    def line_count(self) -> int:
        return (sum(len(c.line_ids) for c in self.creates) + sum(len(u.line_ids) for u in self.updates)
                + sum(len(u.line_ids) for u in self.unchanged))


def agreement_name(organization_name: str, contract_id: str) -> str:
    return f"{organization_name} - {contract_id}"[:100]


def resolve_agreement(line: PlanLine, agreements: dict[int, list[AgreementInfo]], type_id: int) -> AgreementTarget:
    """SPEC §8 rules 1-4 (rule 5 makes the line unmapped, so it never gets here)."""
    if line.chosen_agreement_id is not None:
        return line.chosen_agreement_id
    assert line.company_id is not None
    candidates = [a for a in agreements.get(line.company_id, []) if a.active and a.type_id == type_id]
    if len(candidates) == 1:
        return candidates[0].id
    return NewAgreement(line.contract_id, line.company_id, type_id, agreement_name(line.organization_name, line.contract_id))


def _values(line: PlanLine, charge_names: dict[ChargeType, str], effective: date | None = None) -> AdditionValues:
    assert line.product_id is not None
    name = charge_names.get(line.charge_type, line.charge_type.value)
    description, invoice = descriptions(line.offer_name, line.subscription_name, name, line.charge_start, line.charge_end)
    return AdditionValues(line.product_id, line.quantity, line.unit_price, line.unit_cost,
                          effective or line.charge_start, line.charge_end, description, invoice)


def _months_between(earlier: str, later: str) -> int:
    (y1, m1), (y2, m2) = parse_period(earlier), parse_period(later)
    return (y2 * 12 + m2) - (y1 * 12 + m1)


def plan_sync(
    period: str,
    lines: list[PlanLine],
    agreements: dict[int, list[AgreementInfo]],
    persistent: dict[str, PersistentAddition],
    agreement_type_id: int,
    charge_names: dict[ChargeType, str],
    *,
    only_lines: set[str] | None = None,
) -> Plan:
    """`lines` are all loaded lines of `period` (synced ones too: they tell which
    subscriptions are still billed). `only_lines` limits posting to some lines (per-row sync);
    cancels are planned only for a whole-period sync."""
    plan = Plan(period)
    new_agreements: dict[str, NewAgreement] = {}
    billed_subscriptions = {l.subscription_id for l in lines if l.charge_type.recurring}
    postable = [l for l in lines if l.sync_status in ("not_synced", "error") and (only_lines is None or l.line_id in only_lines)]

    def target(line: PlanLine) -> AgreementTarget:
        resolved = resolve_agreement(line, agreements, agreement_type_id)
        if isinstance(resolved, NewAgreement):
            resolved = new_agreements.setdefault(line.contract_id, resolved)
        return resolved

    recurring: dict[str, list[PlanLine]] = defaultdict(list)
    for line in postable:
        if line.mapping_status is not MappingStatus.MAPPED:
            reason = "excluded from sync" if line.mapping_status is MappingStatus.EXCLUDED else "not fully mapped"
            plan.skips.append(Skip(line.line_id, reason))
            continue
        if line.charge_type.recurring:
            recurring[line.subscription_id].append(line)
            continue
        plan.creates.append(CreateAddition(
            marker("L", line.line_id), (line.line_id,), target(line), _values(line, charge_names),
            line.company_id, line.organization_name, line.currency,  # type: ignore[arg-type]
        ))

    for subscription_id, group in sorted(recurring.items()):
        # the latest charge of the period stands for the subscription
        current = max(group, key=lambda l: (l.charge_start, l.invoice_date, l.line_id))
        line_ids = tuple(sorted(l.line_id for l in group))
        existing = persistent.get(subscription_id)
        if existing is not None and existing.state == "active" and existing.addition_id and existing.values:
            # The effective date is the subscription's start: kept, unless a person typed one.
            effective = current.charge_start if current.charge_start_user else existing.values.effective_date
            values = _values(current, charge_names, effective)
            changes = values.changes_from(existing.values)
            if changes:
                plan.updates.append(UpdateAddition(subscription_id, marker("S", subscription_id), line_ids,
                                                   existing.agreement_id, existing.addition_id, values, changes,  # type: ignore[arg-type]
                                                   current.organization_name, current.currency))
            else:
                plan.unchanged.append(UnchangedAddition(subscription_id, line_ids, existing.addition_id, existing.agreement_id))  # type: ignore[arg-type]
            continue
        agreement = existing.agreement_id if existing is not None and existing.agreement_id and existing.state == "pending" else target(current)
        plan.creates.append(CreateAddition(
            marker("S", subscription_id), line_ids, agreement, _values(current, charge_names),
            current.company_id, current.organization_name, current.currency,  # type: ignore[arg-type]
            subscription_id=subscription_id, billing_cycle=current.billing_cycle,
        ))

    if only_lines is None and lines:
        for state in sorted(persistent.values(), key=lambda s: s.subscription_id):
            if state.state != "active" or not state.addition_id or state.subscription_id in billed_subscriptions:
                continue
            if state.last_period is None or state.last_period >= period:
                continue
            # an annual subscription is billed once a year: silence in between is not an end
            if _months_between(state.last_period, period) < TERM_MONTHS.get(state.billing_cycle, 1):
                continue
            cancelled = first_day(period) - timedelta(days=1)
            if state.values and state.values.cancelled_date and state.values.cancelled_date <= cancelled:
                continue  # already ends before this period
            plan.cancels.append(CancelAddition(state.subscription_id, marker("S", state.subscription_id),
                                               state.agreement_id, state.addition_id, cancelled,  # type: ignore[arg-type]
                                               state.customer or str(state.company_id or ""), state.currency or ""))
    plan.new_agreements = list(new_agreements.values())
    return plan
