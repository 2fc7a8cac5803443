"""The read-only detail of one invoice line (issue 12): every Platform field, the effective
mapping and where each part comes from (SPEC §6, §8), the charge dates and the rule behind each
(SPEC §9), and once synced what the store holds of the post: the Addition, the agreement, the
marker, what was sent and when. Plain data: the screen only renders it (through safe_text).
No textual here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from cw_tui.rules.additions import cw_datetime, descriptions, marker
from cw_tui.rules.charge_dates import Badge
from cw_tui.rules.display import LINE_MAPPING, SYNC_STATUS, iso_utc
from cw_tui.rules.mapping import LineMappingFacts, mapping_status
from cw_tui.rules.sync_plan import agreement_name, number_text
from cw_tui.rules.vocabulary import BillingCycle, ChargeType
from cw_tui.services import settings
from cw_tui.store import (
    Agreement,
    Company,
    Contract,
    InvoiceLine,
    Offer,
    Organization,
    Product,
    Store,
    SubscriptionAddition,
    SyncRun,
    utc_to_text,
)
from cw_tui.store.changes import Stamp


@dataclass(frozen=True)
class Field:
    label: str
    value: str
    note: str = ""  # where the value comes from, or what it means


@dataclass
class LineDetail:
    line_id: str
    title: str
    sync_status: str  # as the grid shows it: Not Synced | Synced | Error | Posting…
    sections: list[tuple[str, list[Field]]] = field(default_factory=list)

    def value(self, section: str, label: str) -> Field:
        """One field (for tests and for a caller that wants one figure)."""
        fields = dict(self.sections)[section]
        return next(f for f in fields if f.label == label)


def _money(value: Decimal | None) -> str:
    return "" if value is None else number_text(value, money=True)


def _quantity(value: Decimal | None) -> str:
    return "" if value is None else number_text(value)


def _total(value: Decimal) -> str:
    """To the cent; the exact figure beside it when the Platform's has more decimals."""
    cents = f"{value:,.2f}"
    return cents if value == value.quantize(Decimal("0.01")) else f"{cents} (exactly {number_text(value)})"


def company_text(company_id: int | None) -> str:
    """A cached ConnectWise company as a detail view names it (the line and the organization detail)."""
    if company_id is None:
        return ""
    company = Company.get_or_none(Company.id == company_id)
    if company is None:
        return f"#{company_id} (not in the cached ConnectWise companies)"
    status = f", {company.status_name}" if company.status_name else ""
    return f"{company.name} (#{company.id}{status})"


def _product(product_id: int | None) -> str:
    if product_id is None:
        return ""
    product = Product.get_or_none(Product.id == product_id)
    if product is None:
        return f"#{product_id} (not in the cached catalog)"
    return f"{product.description} (#{product.id}{', inactive' if product.inactive else ''})"


def agreement_text(agreement_id: int | None) -> str:
    """A cached ConnectWise agreement as a detail view names it, with its state when not active."""
    if agreement_id is None:
        return ""
    agreement = Agreement.get_or_none(Agreement.id == agreement_id)
    if agreement is None:
        return f"#{agreement_id} (not in ConnectWise any more)"
    state = "" if agreement.status == "Active" and not agreement.cancelled else f", {agreement.status}"
    return f"{agreement.name} (#{agreement.id}{state})"


def _effective_agreement(line: InvoiceLine, contract: Contract | None, organization: Organization | None,
                         company_id: int | None, organizations_on_company: int, type_name: str,
                         type_id: int | None) -> Field:
    """SPEC §8: which agreement receives the line, and by which rule."""
    if line.override_agreement_id is not None:
        return Field("PSA Agreement", agreement_text(line.override_agreement_id), "this line (its own PSA Agreement)")
    if contract is not None and contract.agreement_id is not None:
        return Field("PSA Agreement", agreement_text(contract.agreement_id), f"contract {contract.platform_id}")
    if company_id is None:
        return Field("PSA Agreement", "", "none yet: map the organization (or this line) to a company first")
    if organizations_on_company > 1:
        return Field("PSA Agreement", "", f"none: the company is mapped from {organizations_on_company} organizations, "
                                          "so choose the agreement for this line or its contract (SPEC §8 rule 5)")
    own = [a for a in Agreement.select().where(Agreement.company_id == company_id)
           if a.status == "Active" and not a.cancelled]
    of_type = [a for a in own if a.type_id == type_id]
    if len(of_type) == 1:
        return Field("PSA Agreement", agreement_text(of_type[0].id),
                     f"proposed: the company's one active {type_name} agreement (SPEC §8 rule 3)")
    name = agreement_name(organization.name if organization else line.organization_id, line.contract_id)
    named = sorted(a.id for a in own if a.name == name)
    if named:
        return Field("PSA Agreement", agreement_text(named[0]), "the company's agreement of this contract's name "
                                                           "(created by an earlier sync)")
    return Field("PSA Agreement", f"New agreement ({type_name})",
                 f"created on sync for contract {line.contract_id}, named {name!r} (SPEC §8 rule 4)")


def _start_note(line: InvoiceLine, config: settings.Configuration) -> str:
    if line.charge_start_badge == Badge.USER:
        return "User Updated: typed by a person; it wins over rules"
    if line.charge_start_badge == Badge.SYSTEM:
        cycle = BillingCycle(line.billing_cycle)
        return (f"System Updated: a rule applied when the line was loaded (the {cycle.value} start rule is now "
                f"{config.rules.start_rule(cycle).label!r})")
    return "Default: the Platform's charge start date"


def _end_note(line: InvoiceLine, config: settings.Configuration) -> str:
    charge_type = ChargeType(line.charge_type)
    if line.charge_end_badge == Badge.USER:
        return "User Updated: typed by a person; it wins over rules"
    if line.charge_end_badge == Badge.SYSTEM:
        return (f"System Updated: a rule applied when the line was loaded (the {charge_type.value} end rule is now "
                f"{config.rules.end_rule(charge_type).label!r})")
    if charge_type.recurring:
        return "Default: recurring lines are sent without an end date"
    return "Default: one-time lines end on the last day of their start month"


def line_detail(store: Store, line_id: str) -> LineDetail | None:
    line = InvoiceLine.get_or_none(InvoiceLine.line_id == line_id)
    if line is None:
        return None
    config = settings.load_configuration(store)
    organization = Organization.get_or_none(Organization.platform_id == line.organization_id)
    offer = Offer.get_or_none(Offer.platform_id == line.offer_id)
    contract = Contract.get_or_none(Contract.platform_id == line.contract_id)
    charge_type = ChargeType(line.charge_type)
    charge_name = config.charge_type_name(charge_type)
    type_name = config.agreement_type.name if config.agreement_type else "the configured type"
    type_id = config.agreement_type.id if config.agreement_type else None
    org_name = organization.name if organization else line.organization_id
    offer_name = offer.name if offer else line.offer_id

    platform = [
        Field("Line ID", line.line_id),
        Field("Invoice", f"{line.invoice_number} of {line.invoice_date.isoformat()}", f"status {line.invoice_status}"),
        Field("Organization", org_name, " · ".join(x for x in (
            line.organization_id, organization and organization.reference and f"reference {organization.reference}",
            organization and f"status {organization.status}") if x)),
        Field("Contract", line.contract_id, f"billing day {contract.billing_day}, {contract.currency}"
              + (f", {contract.contract_type}" if contract.contract_type else "") if contract else ""),
        Field("Subscription", line.subscription_name, line.subscription_id),
        Field("Offer", offer_name, " · ".join(x for x in (
            line.offer_id, offer and (f"external ID {offer.external_id}" if offer.external_id else "external ID n/a"),
            offer and offer.vendor and f"vendor {offer.vendor}") if x)),
        Field("Charge type", charge_type.value, ("recurring" if charge_type.recurring else "one-time")
              + (f"; shown in ConnectWise as {charge_name!r}" if charge_name != charge_type.value else "")),
        Field("Billing cycle", line.billing_cycle),
        Field("Quantity", _quantity(line.quantity)),
        Field("Unit price", f"{_money(line.unit_price)} {line.currency}"),
        Field("Unit cost", f"{_money(line.unit_cost)} {line.currency}"),
        Field("Total", f"{_total(line.total)} {line.currency}", "quantity × unit price"),
        Field("Platform start", line.platform_charge_start.isoformat()),
        Field("Platform end", line.platform_charge_end.isoformat() if line.platform_charge_end else "none"),
        Field("Loaded", iso_utc(utc_to_text(line.loaded_at))),
    ]

    org_company = organization.company_id if organization else None
    company_id = line.override_company_id if line.override_company_id is not None else org_company
    offer_product = offer.product_id if offer else None
    product_id = line.override_product_id if line.override_product_id is not None else offer_product
    on_company = (Organization.select().where(Organization.company_id == company_id).count()
                  if company_id is not None else 0)
    facts = LineMappingFacts(bool(organization and organization.excluded), org_company, offer_product,
                             contract.agreement_id if contract else None, line.override_company_id,
                             line.override_product_id, line.override_agreement_id, max(on_company, 1))
    status = LINE_MAPPING[mapping_status(facts).value]
    mapping = [
        Field("Mapping Status", status, "organization excluded from sync: its lines are never posted"
              if status == "Excluded" else ""),
        Field("PSA Organization", company_text(company_id) or "not mapped",
              "this line (its own PSA Organization)" if line.override_company_id is not None
              else f"organization {org_name}" if org_company is not None else "map the organization (Organizations tab)"),
        Field("PSA Product", _product(product_id) or "not mapped",
              "this line (its own PSA Product)" if line.override_product_id is not None
              else f"offer {offer_name}" if offer_product is not None else "map the offer (Products tab)"),
        _effective_agreement(line, contract, organization, company_id, on_company, type_name, type_id),
    ]

    dates = [
        Field("Charge Start Date", line.charge_start.isoformat(), _start_note(line, config)),
        Field("Charge End Date", line.charge_end.isoformat() if line.charge_end else "none", _end_note(line, config)),
    ]

    sections = [("Platform", platform), ("Mapping", mapping), ("Charge dates", dates),
                ("ConnectWise", _sync(line, charge_name, offer_name, product_id)),
                ("Changed by", _changes(line, organization, offer, contract)), ("Journal", _journal(store, line.line_id))]
    title = f"{line.subscription_name} · {charge_name} · {org_name}"
    return LineDetail(line.line_id, title, SYNC_STATUS.get(line.sync_status, line.sync_status), sections)


def _stamp(row) -> str:
    return Stamp(row.changed_by, row.changed_at).text() if row is not None else ""


NOBODY = "nobody by hand yet"


def _changes(line: InvoiceLine, organization, offer, contract) -> list[Field]:
    """Who changed what the line's posting depends on, and when (team mode): the line itself,
    its organization's and offer's mappings, its contract's agreement, and its load."""
    return [
        Field("This line", _stamp(line) or NOBODY, "its own PSA fields or charge dates (edit, bulk update)"),
        Field("Organization", _stamp(organization) or NOBODY, "its mapping or inclusion in sync"),
        Field("Offer", _stamp(offer) or NOBODY, "its mapping"),
        Field("Contract", _stamp(contract) or NOBODY, "its agreement"),
        Field("Loaded", load_stamp(line.period, line.loaded_at), "the load that last refreshed it from the Platform"),
    ]


def load_stamp(period: str, loaded_at) -> str:
    """Who ran the load that wrote a line loaded at `loaded_at` (its run, services/activity.py)."""
    run = (SyncRun.select(SyncRun.who).where((SyncRun.kind == "invoices") & SyncRun.period.contains(period)
                                             & (SyncRun.started_at <= loaded_at + timedelta(seconds=5))
                                             & (SyncRun.state == "ok") & SyncRun.who.is_null(False))
           .order_by(SyncRun.id.desc()).first())
    when = f"{loaded_at:%Y-%m-%d %H:%M:%S} UTC"
    return f"{run.who} at {when}" if run is not None else when


def _sync(line: InvoiceLine, charge_name: str, offer_name: str, product_id: int | None) -> list[Field]:
    """What the store holds of the line's post: the Addition, where, when, and the values."""
    recurring = ChargeType(line.charge_type).recurring
    owner = marker("S", line.subscription_id) if recurring else marker("L", line.line_id)
    synced = line.sync_status == "synced"
    subscription = SubscriptionAddition.get_or_none(SubscriptionAddition.subscription_id == line.subscription_id) \
        if recurring else None
    fields = [Field("Status in PSA", SYNC_STATUS.get(line.sync_status, line.sync_status))]
    if line.last_error:
        fields.append(Field("Last error", line.last_error, "from ConnectWise; the next sync retries the line"))
    addition_id = line.addition_id or (subscription.addition_id if subscription else None)
    if addition_id:
        fields.append(Field("Addition ID", str(addition_id),
                            "the subscription's persistent Addition" if recurring else "this line's own Addition"))
    agreement_id = line.posted_agreement_id or (subscription.agreement_id if subscription else None)
    if agreement_id and (synced or line.sync_status in ("claimed", "error")):
        fields.append(Field("Posted to agreement" if synced else "Last posted (or tried) to", agreement_text(agreement_id)))
    fields.append(Field("Marker", owner, "serialNumber of the Addition: how cw-tui finds what it posted"))
    if line.last_sync_at:
        fields.append(Field("Synced at" if synced else "Last attempt", iso_utc(utc_to_text(line.last_sync_at))))
    if line.posted_run_id:
        run = SyncRun.get_or_none(SyncRun.id == line.posted_run_id)
        if run is not None:
            fields.append(Field("Sync run", f"#{run.id} of {run.period or ''}",
                                f"started {iso_utc(utc_to_text(run.started_at))}, {run.state}"))
    if recurring and subscription is not None and subscription.quantity is not None:
        fields.append(Field("Sent", "the subscription's Addition as cw-tui last wrote it",
                            f"for {subscription.last_period or 'an earlier period'}, state {subscription.state}"))
        fields += _values(subscription.product_id, subscription.quantity, subscription.unit_price, subscription.unit_cost,
                          cw_datetime(subscription.effective_date) if subscription.effective_date else "",
                          cw_datetime(subscription.cancelled_date) if subscription.cancelled_date else "",
                          subscription.description or "", subscription.invoice_description or "")
    elif product_id is not None:
        description, invoice = descriptions(offer_name, line.subscription_name, charge_name, line.charge_start, line.charge_end)
        fields.append(Field("Sent" if synced else "Would send", "rebuilt from the line, which never changes once synced (the Journal below has each write as it went out)"
                            if synced else "if posted now with today's mapping"))
        fields += _values(product_id, line.quantity, line.unit_price, line.unit_cost, cw_datetime(line.charge_start),
                          cw_datetime(line.charge_end) if line.charge_end else "", description, invoice)
    return fields


ACTION_NAMES = {"create": "created", "update": "updated", "cancel": "cancelled", "adopt": "adopted",
                "new_agreement": "new agreement"}


def _journal(store: Store, line_id: str) -> list[Field]:
    """Every write to ConnectWise that touched the line (store/journal.py), oldest first:
    when, run, action, outcome, Addition ID, who."""
    from cw_tui.store import journal

    entries = journal.journal_for_line(store, line_id)
    if not entries:
        return [Field("Writes", "none", "no write to ConnectWise has touched this line")]
    fields = []
    for e in entries:
        when = e.written_at.astimezone()
        outcome = e.outcome if e.outcome != "error" else "error" + (f" {e.error_status}" if e.error_status else "")
        addition = f"Addition {e.addition_id}" if e.addition_id else "no Addition"
        note = " · ".join(x for x in (
            f"by {e.who}" if e.who else "", f"agreement {e.agreement_id}" if e.agreement_id else "",
            f"{e.currency} {e.amount:,.2f}" if e.amount is not None else "",
            (e.error_message or "") if e.outcome == "error" else "",
            f"resolved: {e.resolution}" if e.resolution else "") if x)
        fields.append(Field(f"{when:%Y-%m-%d %H:%M} {when.tzname() or ''}".rstrip(),
                            f"run #{e.run_id} · {ACTION_NAMES.get(e.action, e.action)} · {outcome} · {addition}", note))
    return fields


def _values(product_id: int | None, quantity: Decimal | None, unit_price: Decimal | None, unit_cost: Decimal | None,
            effective: str, cancelled: str, description: str, invoice: str) -> list[Field]:
    return [
        Field("  product", _product(product_id)),
        Field("  quantity", _quantity(quantity)),
        Field("  unitPrice", _money(unit_price)),
        Field("  unitCost", _money(unit_cost)),
        Field("  effectiveDate", effective),
        Field("  cancelledDate", cancelled or "absent"),
        Field("  description", description),
        Field("  invoiceDescription", invoice),
    ]
