"""The sync plan (SPEC §7, §8, §10, §15): from the lines of a period, their effective
mapping and what is already in ConnectWise, every create, update, cancel and new agreement,
with money totals per customer and currency. A plain function over plain data: the dry run
prints it, the engine carries it out, and the tests check it directly."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal

from cw_tui.rules.additions import AdditionValues, descriptions, marker
from cw_tui.rules.mapping import MappingStatus
from cw_tui.rules.periods import first_day, last_day, parse_period
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
    # where an earlier attempt posted (or was about to post) this line: ConnectWise may hold it there
    posted_agreement_id: int | None = None


@dataclass(frozen=True)
class AgreementInfo:
    id: int
    company_id: int
    type_id: int | None
    active: bool
    name: str = ""


@dataclass(frozen=True)
class PeriodState:
    """SPEC §7: a period is open until its month has ended and the Platform export holds no
    New invoice for it (as of its last load). An open period cancels nothing."""

    period: str
    month_ended: bool
    new_lines: int | None  # lines on New invoices at the last load; None: never recorded
    new_subscriptions: frozenset[str] = frozenset()  # on those New invoices: billed, never cancelled

    @property
    def open(self) -> bool:
        return not self.month_ended or self.new_lines is None or self.new_lines > 0

    def reason(self) -> str:
        """Why the period is open, in a finance user's words ('' when it is closed)."""
        reasons = []
        if not self.month_ended:
            reasons.append(f"the month ends {last_day(self.period).isoformat()}")
        if self.new_lines is None:
            reasons.append("it was loaded before cw-tui recorded New invoices (load it again)")
        elif self.new_lines == 1:
            reasons.append("1 line is on an invoice still in status New")
        elif self.new_lines:
            reasons.append(f"{self.new_lines:,} lines are on invoices still in status New")
        return "; ".join(reasons)


def period_state(period: str, today: date, new_lines: int | None, new_subscriptions: frozenset[str] = frozenset()) -> PeriodState:
    return PeriodState(period, today > last_day(period), new_lines, new_subscriptions)


@dataclass(frozen=True)
class FoundAddition:
    """An Addition ConnectWise already holds with one of cw-tui's markers (read before posting)."""

    marker: str
    addition_id: int
    agreement_id: int
    values: AdditionValues | None
    duplicates: tuple[int, ...] = ()  # further Additions with the same marker (already doubled)


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
    # agreements an earlier attempt recorded for these lines (it may have posted there)
    earlier_agreements: tuple[int, ...] = ()
    effective_date_typed: bool = False  # a person typed the start: it wins over what ConnectWise holds


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
    # found in ConnectWise, not known to this store (a second install, a restored backup)
    adopted: bool = False
    company_id: int | None = None
    billing_cycle: BillingCycle = BillingCycle.MONTHLY
    before: AdditionValues | None = None  # what the Addition holds now (to show what changes)

    @property
    def text_only(self) -> bool:
        """Only the descriptions change: no amount, date or product."""
        return not set(self.changes) - TEXT_FIELDS

    def change_text(self) -> str:
        """What changes, in a finance user's words: `quantity 8 → 9`, `text only`."""
        return change_text(self.changes, self.before)


@dataclass(frozen=True)
class AdoptAddition:
    """ConnectWise already holds this Addition (its marker): its lines become Synced with its
    ID and nothing is sent. A one-time line's Addition is never changed, even where it holds
    other values than the line would send (`differs` names them, for a person to check)."""

    marker: str
    line_ids: tuple[str, ...]
    agreement_id: int
    addition_id: int
    values: AdditionValues
    company_id: int
    customer: str
    currency: str
    subscription_id: str | None = None
    billing_cycle: BillingCycle = BillingCycle.NONE
    differs: tuple[str, ...] = ()
    held: AdditionValues | None = None  # what the Addition found holds (the journal records it)


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
    # presentation only: whose line it is and what it would have posted
    customer: str = ""
    currency: str = ""
    amount: Decimal = Decimal(0)
    what: str = ""


TEXT_FIELDS = {"description", "invoiceDescription"}
_CHANGE_NAMES = (("product", "product"), ("quantity", "quantity"), ("unitPrice", "unit price"), ("unitCost", "unit cost"),
                 ("effectiveDate", "start"), ("cancelledDate", "end"))


def number_text(value: Decimal, *, money: bool = False) -> str:
    """`1,234.5` for a quantity (as given, no trailing zeros); money to the cent unless it has
    finer decimals (`0.125` stays `0.125`)."""
    if money and value == value.quantize(Decimal("0.01")):
        return f"{value:,.2f}"
    normal = value.normalize()
    return f"{normal:,f}" if normal.as_tuple().exponent <= 0 else f"{value.quantize(Decimal(1)):,f}"


def _shown_value(key: str, values: AdditionValues | None) -> str:
    if values is None:
        return "?"
    value = {"product": f"#{values.product_id}", "quantity": values.quantity, "unitPrice": values.unit_price,
             "unitCost": values.unit_cost, "effectiveDate": values.effective_date, "cancelledDate": values.cancelled_date}[key]
    if value is None:
        return "none"
    if isinstance(value, Decimal):
        return number_text(value, money=key != "quantity")
    return value.isoformat() if isinstance(value, date) else str(value)


def change_text(changes: dict, before: AdditionValues | None) -> str:
    """`quantity 8 → 9, unit price 10.00 → 12.00 (and its text)`; `text only` when only the
    descriptions change (e.g. the charge period in the invoice description)."""
    parts = []
    for key, name in _CHANGE_NAMES:
        if key not in changes:
            continue
        new = changes[key]
        if key == "product":
            after = f"#{new['id']}"
        elif key in ("effectiveDate", "cancelledDate"):
            after = new[:10] if new else "none"
        else:
            after = number_text(Decimal(new), money=key != "quantity")
        parts.append(f"{name} {_shown_value(key, before)} → {after}")
    texts = set(changes) & TEXT_FIELDS
    if not parts:
        return "text only" if texts else "no change"
    return ", ".join(parts) + (" (and its text)" if texts else "")


@dataclass(frozen=True)
class PlanItem:
    """One row of the plan as a person reads it (SPEC §15 plan before post)."""

    action: str  # create | update | adopt | cancel | cancel later
    customer: str
    currency: str
    what: str
    line_ids: tuple[str, ...]
    quantity: Decimal | None
    unit_price: Decimal | None
    amount: Decimal | None
    change: str
    agreement: str


ACTION_ORDER = {"create": 0, "update": 1, "adopt": 2, "cancel": 3, "cancel later": 4}


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
    adoptions: list[AdoptAddition] = field(default_factory=list)
    # an open period's cancellations: listed, sent once the month closes
    deferred_cancels: list[CancelAddition] = field(default_factory=list)
    state: PeriodState | None = None
    # agreements whose markers were read from ConnectWise for this plan (None: not read yet)
    agreements_read: tuple[int, ...] | None = None
    agreement_names: dict[int, str] = field(default_factory=dict)  # presentation only

    @property
    def text_only_updates(self) -> int:
        return sum(1 for u in self.updates if u.text_only)

    def agreement_label(self, agreement: AgreementTarget) -> str:
        if isinstance(agreement, NewAgreement):
            return f"new: {agreement.name}"
        name = self.agreement_names.get(agreement)
        return f"{name} (#{agreement})" if name else f"#{agreement}"

    def items(self) -> list[PlanItem]:
        """Every action of the plan, by customer and currency: the lines behind each total."""
        rows = []
        for c in self.creates:
            rows.append(PlanItem("create", c.customer, c.currency, c.values.description, c.line_ids, c.values.quantity,
                                 c.values.unit_price, c.values.amount, "", self.agreement_label(c.agreement)))
        for u in self.updates:
            rows.append(PlanItem("update", u.customer, u.currency, u.values.description, u.line_ids, u.values.quantity,
                                 u.values.unit_price, u.values.amount, u.change_text(), self.agreement_label(u.agreement_id)))
        for a in self.adoptions:
            rows.append(PlanItem("adopt", a.customer, a.currency, a.values.description, a.line_ids, a.values.quantity,
                                 a.values.unit_price, a.values.amount,
                                 "already in ConnectWise" + (f" (holds another {', '.join(a.differs)})" if a.differs else ""),
                                 self.agreement_label(a.agreement_id)))
        for kind, cancels in (("cancel", self.cancels), ("cancel later", self.deferred_cancels)):
            for c in cancels:
                rows.append(PlanItem(kind, c.customer, c.currency, f"subscription {c.subscription_id}", (), None, None, None,
                                     f"ends {c.cancelled_date.isoformat()}" + (" once the month closes" if kind != "cancel" else ""),
                                     self.agreement_label(c.agreement_id)))
        return sorted(rows, key=lambda r: (r.customer, r.currency, ACTION_ORDER[r.action], r.what, r.line_ids))

    def skipped_by_reason(self) -> list[tuple[str, int, dict[str, Decimal]]]:
        """(reason, lines, amount per currency), the most common reason first."""
        groups: dict[str, tuple[int, dict[str, Decimal]]] = {}
        for skip in self.skips:
            count, amounts = groups.get(skip.reason, (0, {}))
            amounts[skip.currency] = amounts.get(skip.currency, Decimal(0)) + skip.amount
            groups[skip.reason] = (count + 1, amounts)
        return sorted(((r, n, dict(sorted(a.items()))) for r, (n, a) in groups.items()), key=lambda g: (-g[1], g[0]))

    @property
    def open(self) -> bool:
        return self.state is not None and self.state.open

    @property
    def new_lines_skipped(self) -> int:
        return (self.state.new_lines or 0) if self.state else 0

    @property
    def already_in_connectwise(self) -> int:
        """Additions found in ConnectWise and adopted instead of created."""
        return len(self.adoptions) + sum(1 for u in self.updates if u.adopted)

    @property
    def sends_anything(self) -> bool:
        return bool(self.creates or self.updates or self.cancels)

    @property
    def has_work(self) -> bool:
        return bool(self.sends_anything or self.unchanged or self.adoptions)

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
                + sum(len(u.line_ids) for u in self.unchanged) + sum(len(a.line_ids) for a in self.adoptions))

    def agreements_to_read(self) -> set[int]:
        """Where ConnectWise may already hold what the creates would post: their agreements,
        and the agreements an earlier attempt recorded for their lines."""
        wanted = {c.agreement for c in self.creates if isinstance(c.agreement, int)}
        return wanted | {a for c in self.creates for a in c.earlier_agreements}

    @property
    def fingerprint(self) -> str:
        """A short hash of everything the plan would send and record: a run given this
        fingerprint sends nothing unless it would do exactly the same."""
        def target(agreement: AgreementTarget) -> object:
            return agreement if isinstance(agreement, int) else ["new", agreement.contract_id, agreement.company_id, agreement.name]

        content = {
            "period": self.period,
            "open": self.open,
            "creates": [[c.marker, list(c.line_ids), target(c.agreement), _canonical(c.values.body(c.marker))] for c in self.creates],
            "updates": [[u.marker, list(u.line_ids), u.agreement_id, u.addition_id, u.adopted, _canonical(u.changes)]
                        for u in self.updates],
            "unchanged": [[u.subscription_id, list(u.line_ids), u.addition_id] for u in self.unchanged],
            "adoptions": [[a.marker, list(a.line_ids), a.agreement_id, a.addition_id] for a in self.adoptions],
            "cancels": [[c.marker, c.addition_id, c.cancelled_date.isoformat()] for c in self.cancels],
            "deferred": [[c.marker, c.addition_id] for c in self.deferred_cancels],
            "skips": [[s.line_id, s.reason] for s in self.skips],
        }
        text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _canonical(body: dict) -> dict:
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in sorted(body.items())}


def agreement_name(organization_name: str, contract_id: str) -> str:
    return f"{organization_name} - {contract_id}"[:100]


def skip_reason(line: PlanLine) -> str:
    """Why a line that is not Mapped is skipped, in a finance user's words."""
    if line.mapping_status is MappingStatus.EXCLUDED:
        return "organization excluded"
    if line.company_id is None and line.product_id is None:
        return "no company and no product mapped"
    if line.company_id is None:
        return "no company mapped"
    if line.product_id is None:
        return "no product mapped"
    return "company shared by several organizations: choose an agreement"


def _skip(line: PlanLine, reason: str) -> Skip:
    return Skip(line.line_id, reason, line.organization_name, line.currency, line.quantity * line.unit_price,
                f"{line.subscription_name} - {line.charge_type.value}")


def agreement_problem(line: PlanLine, by_id: dict[int, AgreementInfo]) -> str | None:
    """Why the line's chosen agreement cannot take it, or None. A line must never be posted
    to another customer's agreement, nor to one ConnectWise refuses."""
    if line.chosen_agreement_id is None:
        return None
    agreement = by_id.get(line.chosen_agreement_id)
    if agreement is None:
        return f"agreement #{line.chosen_agreement_id} is not in ConnectWise any more; choose another"
    if agreement.company_id != line.company_id:
        return (f"agreement {agreement.name or '#' + str(agreement.id)} belongs to another company "
                f"(#{agreement.company_id}), not the line's company (#{line.company_id}); choose one of its own")
    if not agreement.active:
        return f"agreement {agreement.name or '#' + str(agreement.id)} is not active in ConnectWise; choose an active one"
    return None


def resolve_agreement(line: PlanLine, agreements: dict[int, list[AgreementInfo]], type_id: int) -> AgreementTarget:
    """SPEC §8 rules 1-4 (rule 5 makes the line unmapped, so it never gets here). Before a
    new agreement is proposed, the company's active agreement of that name is looked for: an
    earlier sync (maybe from another database) may have created it."""
    if line.chosen_agreement_id is not None:
        return line.chosen_agreement_id
    assert line.company_id is not None
    own = [a for a in agreements.get(line.company_id, []) if a.active]
    candidates = [a for a in own if a.type_id == type_id]
    if len(candidates) == 1:
        return candidates[0].id
    name = agreement_name(line.organization_name, line.contract_id)
    named = sorted(a.id for a in own if a.name == name)
    if named:
        return named[0]
    return NewAgreement(line.contract_id, line.company_id, type_id, name)


def _values(line: PlanLine, charge_names: dict[ChargeType, str], effective: date | None = None) -> AdditionValues:
    assert line.product_id is not None
    name = charge_names.get(line.charge_type, line.charge_type.value)
    description, invoice = descriptions(line.offer_name, line.subscription_name, name, line.charge_start, line.charge_end)
    return AdditionValues(line.product_id, line.quantity, line.unit_price, line.unit_cost,
                          effective or line.charge_start, line.charge_end, description, invoice)


def _months_between(earlier: str, later: str) -> int:
    (y1, m1), (y2, m2) = parse_period(earlier), parse_period(later)
    return (y2 * 12 + m2) - (y1 * 12 + m1)


def _earlier(lines: list[PlanLine], target: AgreementTarget) -> tuple[int, ...]:
    return tuple(sorted({l.posted_agreement_id for l in lines if l.posted_agreement_id is not None} - {target}))


def plan_sync(
    period: str,
    lines: list[PlanLine],
    agreements: dict[int, list[AgreementInfo]],
    persistent: dict[str, PersistentAddition],
    agreement_type_id: int,
    charge_names: dict[ChargeType, str],
    *,
    only_lines: set[str] | None = None,
    state: PeriodState | None = None,
) -> Plan:
    """`lines` are all loaded lines of `period` (synced ones too: they tell which
    subscriptions are still billed). `only_lines` limits posting to some lines (per-row sync);
    cancels are planned only for a whole-period sync, and sent only for a closed period."""
    plan = Plan(period, state=state)
    new_agreements: dict[str, NewAgreement] = {}
    by_id = {a.id: a for group in agreements.values() for a in group}
    billed_subscriptions = {l.subscription_id for l in lines if l.charge_type.recurring}
    if state is not None:
        billed_subscriptions |= state.new_subscriptions
    postable = [l for l in lines if l.sync_status in ("not_synced", "error") and (only_lines is None or l.line_id in only_lines)]

    def target(line: PlanLine) -> AgreementTarget:
        resolved = resolve_agreement(line, agreements, agreement_type_id)
        if isinstance(resolved, NewAgreement):
            resolved = new_agreements.setdefault(line.contract_id, resolved)
        return resolved

    recurring: dict[str, list[PlanLine]] = defaultdict(list)
    for line in postable:
        if line.mapping_status is not MappingStatus.MAPPED:
            plan.skips.append(_skip(line, skip_reason(line)))
            continue
        problem = agreement_problem(line, by_id)
        if problem:
            plan.skips.append(_skip(line, problem))
            continue
        if line.charge_type.recurring:
            recurring[line.subscription_id].append(line)
            continue
        goes_to = target(line)
        plan.creates.append(CreateAddition(
            marker("L", line.line_id), (line.line_id,), goes_to, _values(line, charge_names),
            line.company_id, line.organization_name, line.currency,  # type: ignore[arg-type]
            earlier_agreements=_earlier([line], goes_to),
        ))

    for subscription_id, group in sorted(recurring.items()):
        # the latest charge of the period stands for the subscription
        current = max(group, key=lambda l: (l.charge_start, l.invoice_date, l.line_id))
        line_ids = tuple(sorted(l.line_id for l in group))
        existing = persistent.get(subscription_id)
        if existing is not None and existing.state in ("active", "cancelled") and existing.addition_id and existing.values:
            # The effective date is the subscription's start: kept, unless a person typed one.
            # A cancelled Addition whose subscription is billed again is reopened, never doubled.
            effective = current.charge_start if current.charge_start_user else existing.values.effective_date
            values = _values(current, charge_names, effective)
            changes = values.changes_from(existing.values)
            if changes:
                plan.updates.append(UpdateAddition(subscription_id, marker("S", subscription_id), line_ids,
                                                   existing.agreement_id, existing.addition_id, values, changes,  # type: ignore[arg-type]
                                                   current.organization_name, current.currency,
                                                   company_id=current.company_id, billing_cycle=current.billing_cycle,
                                                   before=existing.values))
            else:
                plan.unchanged.append(UnchangedAddition(subscription_id, line_ids, existing.addition_id, existing.agreement_id))  # type: ignore[arg-type]
            continue
        agreement = existing.agreement_id if existing is not None and existing.agreement_id and existing.state == "pending" else target(current)
        plan.creates.append(CreateAddition(
            marker("S", subscription_id), line_ids, agreement, _values(current, charge_names),
            current.company_id, current.organization_name, current.currency,  # type: ignore[arg-type]
            subscription_id=subscription_id, billing_cycle=current.billing_cycle,
            earlier_agreements=_earlier(group, agreement), effective_date_typed=current.charge_start_user,
        ))

    if only_lines is None and lines:
        for existing in sorted(persistent.values(), key=lambda s: s.subscription_id):
            if existing.state != "active" or not existing.addition_id or existing.subscription_id in billed_subscriptions:
                continue
            if existing.last_period is None or existing.last_period >= period:
                continue
            # an annual subscription is billed once a year: silence in between is not an end
            if _months_between(existing.last_period, period) < TERM_MONTHS.get(existing.billing_cycle, 1):
                continue
            cancelled = first_day(period) - timedelta(days=1)
            if existing.values and existing.values.cancelled_date and existing.values.cancelled_date <= cancelled:
                continue  # already ends before this period
            cancel = CancelAddition(existing.subscription_id, marker("S", existing.subscription_id),
                                    existing.agreement_id, existing.addition_id, cancelled,  # type: ignore[arg-type]
                                    existing.customer or str(existing.company_id or ""), existing.currency or "")
            # invoices still to come may bill it: an open period only lists its cancellations
            (plan.deferred_cancels if plan.open else plan.cancels).append(cancel)
    plan.new_agreements = list(new_agreements.values())
    plan.agreement_names = {a.id: a.name for a in by_id.values() if a.name}
    return plan


def adopt_found(plan: Plan, found: dict[str, list[FoundAddition]], agreements_read: set[int]) -> Plan:
    """SPEC §10, exactly once against ConnectWise itself: a create whose marker ConnectWise
    already holds (on its agreement, or where an earlier attempt posted) becomes an adoption,
    or, for a persistent Addition holding other values, an update of the one found."""
    creates: list[CreateAddition] = []
    adoptions = list(plan.adoptions)
    updates = list(plan.updates)
    for create in plan.creates:
        places = [create.agreement] if isinstance(create.agreement, int) else []
        places += list(create.earlier_agreements)
        candidates = [f for f in found.get(create.marker, []) if f.agreement_id in places]
        if not candidates:
            creates.append(create)
            continue
        hit = min(candidates, key=lambda f: (places.index(f.agreement_id), f.addition_id))
        values = create.values
        if create.subscription_id:
            # a persistent Addition must end up holding this period's values
            if hit.values is not None and not create.effective_date_typed:
                values = replace(values, effective_date=hit.values.effective_date)  # the subscription's start
            changes = values.changes_from(hit.values)
            if changes:
                updates.append(UpdateAddition(create.subscription_id, create.marker, create.line_ids, hit.agreement_id,
                                              hit.addition_id, values, changes, create.customer, create.currency,
                                              adopted=True, company_id=create.company_id,
                                              billing_cycle=create.billing_cycle, before=hit.values))
                continue
        differs = tuple(sorted(values.changes_from(hit.values))) if hit.values is not None else ()
        adoptions.append(AdoptAddition(create.marker, create.line_ids, hit.agreement_id, hit.addition_id, values,
                                       create.company_id, create.customer, create.currency, create.subscription_id,
                                       create.billing_cycle, differs, hit.values))
    used = {c.agreement.contract_id for c in creates if isinstance(c.agreement, NewAgreement)}
    return replace(plan, creates=creates, updates=updates, adoptions=adoptions,
                   new_agreements=[a for a in plan.new_agreements if a.contract_id in used],
                   agreements_read=tuple(sorted(agreements_read)))
