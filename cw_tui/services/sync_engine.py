"""The sync engine (SPEC §7-§11, §15): plan, post exactly once, reconcile.

Exactly once, whatever happens:
- A line is claimed in the store (one write transaction; SQLite serialises writers, so two
  processes never claim the same line) before any request is made for it.
- The agreement a request goes to is recorded before the request. When the outcome is
  unknown (a timeout or a dropped connection after ConnectWise took the POST), or a claim
  was left behind by a killed process, the marker (`serialNumber`) is looked up on that
  agreement before anything is posted again.
- A line becomes Synced only with the ID of the Addition that holds it; synced lines are
  never posted again, and re-loads never touch them.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import peewee as pw

from cw_tui.rules.additions import MARKER_PREFIX, VALUE_FIELDS, AdditionValues, marker
from cw_tui.rules.charge_dates import Badge
from cw_tui.rules.mapping import MappingStatus
from cw_tui.rules.sync_plan import (
    AdoptAddition,
    AgreementInfo,
    CancelAddition,
    CreateAddition,
    FoundAddition,
    NewAgreement,
    PeriodState,
    PersistentAddition,
    Plan,
    PlanLine,
    UnchangedAddition,
    UpdateAddition,
    adopt_found,
    period_state,
    plan_sync,
)
from cw_tui.rules.vocabulary import BillingCycle, ChargeType
from cw_tui.services import settings, system_log
from cw_tui.services.connectwise import ConnectWiseClient, ConnectWiseError, NotFound, OutcomeUnknown
from cw_tui.services.connectwise.conditions import condition
from cw_tui.services.connectwise.models import Addition
from cw_tui.services.connectwise_data import CacheShrinkRefused, refresh_agreements
from cw_tui.store.money import from_micros
from cw_tui.store.line_sql import LINE_MAPPING_JOINS, LINE_MAPPING_STATUS
from cw_tui.store import (
    DATABASE_ERRORS,
    Agreement,
    Company,
    Contract,
    InvoiceLine,
    LoadedPeriod,
    PeriodNewSubscription,
    Store,
    SubscriptionAddition,
    SyncRun,
    now_utc,
    process_alive,
    utc_to_text,
)
from cw_tui.services.system_log import Category, Level

STALE_AFTER = timedelta(hours=6)  # a claim this old is abandoned even if its process looks alive
SYNCED_BATCH = 200  # posted lines recorded per transaction
FLUSH_EVERY_S = 0.25  # ... or at least this often, so the grid shows each line's status as it goes
_CHUNK = 500
CENT = Decimal("0.01")


class SyncNotReady(Exception):
    """Configuration missing (agreement type); nothing was sent."""


class PlanChanged(Exception):
    """SPEC §10: the plan a person confirmed is not what the run would do now (the store or
    ConnectWise changed); nothing was sent. `plan` is the new plan, when there is one."""

    def __init__(self, message: str, plan: Plan | None = None):
        super().__init__(message)
        self.plan = plan


@dataclass
class SyncResult:
    run_id: int
    period: str
    created: int = 0
    updated: int = 0
    cancelled: int = 0
    agreements_created: int = 0
    unchanged: int = 0
    adopted: int = 0  # found in ConnectWise and taken over: nothing posted
    skipped: int = 0
    errors: int = 0
    synced_lines: int = 0
    fingerprint: str = ""
    api_calls: int = 0
    duration_s: float = 0.0
    totals: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "created": self.created, "updated": self.updated, "cancelled": self.cancelled,
            "agreements_created": self.agreements_created, "skipped": self.skipped, "errors": self.errors,
            "api_calls": self.api_calls, "duration_s": round(self.duration_s, 3),
            "period": self.period, "unchanged": self.unchanged, "adopted": self.adopted, "synced_lines": self.synced_lines,
            "fingerprint": self.fingerprint, "totals": totals_json(self.totals),
        }


def totals_json(totals: dict[tuple[str, str], Any]) -> list[dict[str, Any]]:
    rows = []
    for (customer, currency), total in sorted(totals.items()):
        values = total if isinstance(total, dict) else vars(total)
        rows.append({"customer": customer, "currency": currency, **{k: (str(v.quantize(CENT)) if isinstance(v, Decimal) else v)
                                                                      for k, v in values.items()}})
    return rows


# ---------------------------------------------------------------- reading the store


_LINE_SQL = f"""
    SELECT l.line_id, l.invoice_date, l.organization_id, COALESCE(o.name, l.organization_id), l.contract_id,
           l.subscription_id, l.subscription_name, COALESCE(f.name, l.offer_id), l.charge_type, l.billing_cycle,
           l.quantity, l.unit_price, l.unit_cost, l.currency, l.charge_start, l.charge_start_badge, l.charge_end,
           {LINE_MAPPING_STATUS}, COALESCE(l.override_company_id, o.company_id), COALESCE(l.override_product_id, f.product_id),
           COALESCE(l.override_agreement_id, c.agreement_id), l.sync_status, l.posted_agreement_id
    FROM invoice_line l {LINE_MAPPING_JOINS}
    WHERE l.period = ?
"""


def plan_lines(store: Store, period: str) -> list[PlanLine]:
    result = []
    for row in store.db.execute_sql(_LINE_SQL, (period,)):
        (line_id, invoice_date, org_id, org_name, contract_id, sub_id, sub_name, offer_name, charge_type, cycle,
         quantity, unit_price, unit_cost, currency, start, start_badge, end, status, company_id, product_id,
         agreement_id, sync_status, posted_agreement_id) = row
        result.append(PlanLine(
            line_id, date.fromisoformat(invoice_date), org_id, org_name, contract_id, sub_id, sub_name, offer_name,
            ChargeType(charge_type), BillingCycle(cycle), from_micros(quantity), from_micros(unit_price),
            from_micros(unit_cost), currency, date.fromisoformat(start), start_badge == Badge.USER,
            date.fromisoformat(end) if end else None, MappingStatus(status), company_id, org_name, product_id,
            agreement_id, sync_status, posted_agreement_id,
        ))
    return result


def cached_agreements(store: Store) -> dict[int, list[AgreementInfo]]:
    result: dict[int, list[AgreementInfo]] = defaultdict(list)
    for a in Agreement.select():
        result[a.company_id].append(AgreementInfo(a.id, a.company_id, a.type_id, a.status == "Active" and not a.cancelled,
                                                  a.name))
    return result


def _values_of(row: SubscriptionAddition) -> AdditionValues | None:
    if row.product_id is None or row.quantity is None or row.effective_date is None:
        return None
    return AdditionValues(row.product_id, row.quantity, row.unit_price, row.unit_cost, row.effective_date,
                          row.cancelled_date, row.description or "", row.invoice_description or "")


def persistent_additions(store: Store) -> dict[str, PersistentAddition]:
    names = dict(Company.select(Company.id, Company.name).tuples())
    return {
        row.subscription_id: PersistentAddition(
            row.subscription_id, row.agreement_id, row.addition_id, row.state, BillingCycle(row.billing_cycle),
            _values_of(row), row.last_period, row.company_id, row.currency, names.get(row.company_id, ""),
        )
        for row in SubscriptionAddition.select()
    }


def period_state_of(store: Store, period: str, today: date) -> PeriodState:
    """Open or closed, from the period's last load (SPEC §7)."""
    loaded = LoadedPeriod.get_or_none(LoadedPeriod.period == period)
    new_subscriptions = frozenset(r[0] for r in PeriodNewSubscription.select(PeriodNewSubscription.subscription_id)
                                  .where(PeriodNewSubscription.period == period).tuples())
    return period_state(period, today, loaded.new_lines if loaded else None, new_subscriptions)


def build_plan(store: Store, period: str, *, only_lines: set[str] | None = None, today: date | None = None) -> Plan:
    """The plan from the store alone: what ConnectWise already holds is not known yet
    (`prepare_plan` reads it)."""
    config = settings.load_configuration(store)
    if config.agreement_type is None:
        raise SyncNotReady("choose an Agreement Type first: `cw-tui configure --agreement-type NAME`")
    names = {t: config.charge_type_name(t) for t in ChargeType}
    state = period_state_of(store, period, today or now_utc().date())
    return plan_sync(period, plan_lines(store, period), cached_agreements(store), persistent_additions(store),
                     config.agreement_type.id, names, only_lines=only_lines, state=state)


ADDITION_FIELDS = ("id,agreementId,serialNumber,product/id,quantity,unitPrice,unitCost,effectiveDate,cancelledDate,"
                   "description,invoiceDescription")


def _cw_date(text: str | None) -> date | None:
    return date.fromisoformat(text[:10]) if text else None


def values_in_connectwise(addition: Addition) -> AdditionValues | None:
    """What an Addition holds, in the plan's terms (None when ConnectWise left a field out)."""
    if addition.product is None or addition.product.id is None or addition.quantity is None or not addition.effectiveDate:
        return None
    return AdditionValues(addition.product.id, addition.quantity, addition.unitPrice or Decimal(0), addition.unitCost or Decimal(0),
                          _cw_date(addition.effectiveDate), _cw_date(addition.cancelledDate),  # type: ignore[arg-type]
                          addition.description or "", addition.invoiceDescription or "")


async def read_markers(client: ConnectWiseClient, agreement_ids: set[int]) -> dict[str, list[FoundAddition]]:
    """Every cw-tui marker on these agreements: one paged read per agreement, at most eight
    at once (the client's bound)."""
    async def one(agreement_id: int) -> list[Addition]:
        try:
            return await client.additions(agreement_id, condition("serialNumber", "like", f"{MARKER_PREFIX}*"),
                                          fields=ADDITION_FIELDS)
        except NotFound:
            return []  # the agreement is gone: nothing of ours is on it

    ordered = sorted(agreement_ids)
    found: dict[str, list[FoundAddition]] = defaultdict(list)
    for agreement_id, additions in zip(ordered, await asyncio.gather(*(one(a) for a in ordered))):
        by_marker: dict[str, list[Addition]] = defaultdict(list)
        for addition in additions:
            if addition.serialNumber:
                by_marker[addition.serialNumber].append(addition)
        for serial, group in by_marker.items():
            group.sort(key=lambda a: a.id)
            first = group[0]
            found[serial].append(FoundAddition(serial, first.id, agreement_id, values_in_connectwise(first),
                                               tuple(a.id for a in group[1:])))
    return found


async def prepare_plan(store: Store, client: ConnectWiseClient, period: str, *, only_lines: set[str] | None = None,
                       today: date | None = None, accepted: CacheShrinkRefused | None = None) -> Plan:
    """The plan a person sees and a run executes: today's agreements, the store's lines, and
    what ConnectWise already holds on the target agreements (adopted, never posted again).
    `today` (UTC) says whether the period's month has ended; `accepted` is a shrunk
    agreements list a person accepted (it is applied instead of fetching again)."""
    release_stale_claims(store)
    if accepted is not None:
        accepted.accept()
    else:
        await refresh_agreements(store, client)
    plan = build_plan(store, period, only_lines=only_lines, today=today)
    wanted = plan.agreements_to_read()
    found = await read_markers(client, wanted)
    for serial, places in found.items():
        doubled = [f for f in places if f.duplicates] + (places[1:] if len(places) > 1 else [])
        if doubled:
            ids = sorted({f.addition_id for f in places} | {d for f in places for d in f.duplicates})
            system_log.write(store, Level.ERROR, Category.SYNC, f"Marker {serial} is on {len(ids)} additions",
                             f"additions {', '.join(map(str, ids))} on agreements "
                             f"{', '.join(sorted({str(f.agreement_id) for f in places}))}; cw-tui adopts the first "
                             "and posts no other: remove the extra ones in ConnectWise")
    return adopt_found(plan, found, wanted)


# ---------------------------------------------------------------- claims


def owner_name(run_id: int) -> str:
    return f"{socket.gethostname()}|{os.getpid()}|{run_id}"


def _owner_alive(owner: str, claimed_at: datetime | None, now: datetime) -> bool:
    if claimed_at is not None and now - claimed_at > STALE_AFTER:
        return False
    try:
        host, pid_text, _ = owner.split("|", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True  # another machine's run: trust it until it is stale
    return pid == os.getpid() or process_alive(pid)


def _free_side_claims(owner: str) -> None:
    """Free `owner`'s claims on subscriptions and contracts (call inside a transaction).
    A contract's agreement_claimed_at stays: the next run then looks the agreement up by
    name before creating one, in case this owner created it and died before recording it."""
    SubscriptionAddition.update(claimed_by=None, claimed_at=None).where(SubscriptionAddition.claimed_by == owner).execute()
    Contract.update(agreement_claimed_by=None).where(Contract.agreement_claimed_by == owner).execute()


def release_stale_claims(store: Store, now: datetime | None = None) -> int:
    """Claims of runs that died. Their lines become Error (and are retried, marker looked up
    first, since their target agreement is recorded); their other claims are freed."""
    now = now or now_utc()
    released = 0
    owners = {
        (owner, claimed_at)
        for owner, claimed_at in store.db.execute_sql(
            "SELECT claimed_by, MIN(claimed_at) FROM invoice_line WHERE claimed_by IS NOT NULL GROUP BY claimed_by "
            "UNION SELECT claimed_by, MIN(claimed_at) FROM subscription_addition WHERE claimed_by IS NOT NULL GROUP BY claimed_by "
            "UNION SELECT agreement_claimed_by, MIN(agreement_claimed_at) FROM contract WHERE agreement_claimed_by IS NOT NULL "
            "GROUP BY agreement_claimed_by"
        )
    }
    field_ = InvoiceLine.claimed_at
    for owner, claimed_at_text in owners:
        claimed_at = field_.python_value(claimed_at_text) if claimed_at_text else None
        if _owner_alive(owner, claimed_at, now):
            continue
        with store.atomic("IMMEDIATE"):
            released += (
                InvoiceLine.update(sync_status="error", claimed_by=None, claimed_at=None,
                                   last_error="a sync was interrupted while posting this line; the next sync checks "
                                              "ConnectWise for it before posting")
                .where((InvoiceLine.claimed_by == owner) & (InvoiceLine.sync_status == "claimed")).execute()
            )
            InvoiceLine.update(claimed_by=None, claimed_at=None).where(InvoiceLine.claimed_by == owner).execute()
            _free_side_claims(owner)
    return released


def _claim_lines(store: Store, owner: str, line_ids: list[str], now: datetime) -> set[str]:
    stamp = utc_to_text(now)
    with store.atomic("IMMEDIATE"):
        cursor = store.db.cursor()
        for start in range(0, len(line_ids), _CHUNK):
            chunk = line_ids[start : start + _CHUNK]
            cursor.execute(
                f"UPDATE invoice_line SET sync_status = 'claimed', claimed_by = ?, claimed_at = ? "
                f"WHERE sync_status IN ('not_synced', 'error') AND claimed_by IS NULL "
                f"AND line_id IN ({','.join('?' * len(chunk))})",
                [owner, stamp, *chunk],
            )
        return {r[0] for r in cursor.execute("SELECT line_id FROM invoice_line WHERE claimed_by = ? AND sync_status = 'claimed'", (owner,))}


# ---------------------------------------------------------------- running


class _Run:
    def __init__(self, store: Store, client: ConnectWiseClient, period: str, run: SyncRun, owner: str,
                 progress: Callable[[int, int], None] | None):
        self.store = store
        self.client = client
        self.period = period
        self.run = run
        self.owner = owner
        self.progress = progress
        self.result = SyncResult(run.id, period)
        self.totals: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: {"creates": 0, "updates": 0, "cancels": 0,
                                                                                  "lines": 0, "amount": Decimal(0)})
        self.agreement_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.agreement_ids: dict[str, tuple[int, bool]] = {}
        self.done = 0
        self.total = 0
        self._synced: list[tuple] = []  # lines posted, waiting for `flush`
        self._flushed_at = time.monotonic()

    # --- store writes (each its own short transaction: durable as it goes)

    def _lines(self, line_ids: tuple[str, ...]):  # noqa: ANN202 - a peewee expression
        return InvoiceLine.line_id.in_(list(line_ids)) & (InvoiceLine.claimed_by == self.owner)

    def target_recorded(self, line_ids: tuple[str, ...], agreement_id: int) -> None:
        with self.store.atomic():
            InvoiceLine.update(posted_agreement_id=agreement_id, posted_run_id=self.run.id).where(self._lines(line_ids)).execute()

    def synced(self, line_ids: tuple[str, ...], addition_id: int, agreement_id: int) -> None:
        """Recorded in batches (one transaction every SYNCED_BATCH lines or FLUSH_EVERY_S):
        a line posted but not yet recorded when the process dies is still claimed, with its
        agreement recorded, so the next run finds its marker there and adopts it."""
        stamp = utc_to_text(now_utc())
        self._synced.extend((addition_id, agreement_id, self.run.id, stamp, line_id, self.owner) for line_id in line_ids)
        self.result.synced_lines += len(line_ids)
        if len(self._synced) >= SYNCED_BATCH or time.monotonic() - self._flushed_at >= FLUSH_EVERY_S:
            self.flush()

    def flush_quietly(self) -> None:
        """On the way out of a failed run: record what was posted if the database lets us;
        if not, those lines stay claimed and the next run adopts them."""
        try:
            self.flush()
        except DATABASE_ERRORS:
            pass

    def flush(self) -> None:
        self._flushed_at = time.monotonic()
        if not self._synced:
            return
        rows, self._synced = self._synced, []
        with self.store.atomic():
            self.store.db.cursor().executemany(
                "UPDATE invoice_line SET sync_status = 'synced', addition_id = ?, posted_agreement_id = ?, "
                "posted_run_id = ?, last_error = NULL, last_sync_at = ?, claimed_by = NULL, claimed_at = NULL "
                "WHERE line_id = ? AND claimed_by = ?", rows)

    def failed(self, line_ids: tuple[str, ...], message: str, details: str) -> None:
        message = system_log.redact(message)
        with self.store.atomic():
            InvoiceLine.update(sync_status="error", last_error=message[:2000], last_sync_at=now_utc(),
                               claimed_by=None, claimed_at=None).where(self._lines(line_ids)).execute()
            for line_id in line_ids:
                system_log.write(self.store, Level.ERROR, Category.SYNC, f"Line {line_id} failed: {message[:200]}", details)
        self.result.errors += len(line_ids)

    def tick(self) -> None:
        self.done += 1
        if self.progress:
            self.progress(self.done, self.total)

    def count(self, kind: str, customer: str, currency: str, lines: int, amount: Decimal | None = None) -> None:
        total = self.totals[(customer, currency)]
        total[kind] += 1
        total["lines"] += lines
        if amount is not None:
            total["amount"] += amount

    # --- ConnectWise

    async def find(self, agreement_id: int, serial: str) -> Addition | None:
        found = await self.client.additions(agreement_id, condition("serialNumber", "=", serial))
        if len(found) > 1:
            system_log.write(self.store, Level.ERROR, Category.SYNC, f"Marker {serial} is on {len(found)} additions",
                             f"agreement {agreement_id}: additions {', '.join(str(a.id) for a in found)}")
        return found[0] if found else None

    async def agreement_for(self, new: NewAgreement) -> tuple[int, bool]:
        """SPEC §8 rule 4, once per contract across runs and processes. Returns the agreement
        and whether this call created it (else ConnectWise may already hold lines on it)."""
        async with self.agreement_locks[new.contract_id]:
            if new.contract_id in self.agreement_ids:
                return self.agreement_ids[new.contract_id]
            contract = Contract.get_by_id(new.contract_id)
            if contract.agreement_id:
                self.agreement_ids[new.contract_id] = (contract.agreement_id, False)
                return contract.agreement_id, False
            # a claim time left by an earlier run that died means it may have created it already
            attempted = contract.agreement_claimed_at is not None
            with self.store.atomic("IMMEDIATE"):
                claimed = Contract.update(agreement_claimed_by=self.owner, agreement_claimed_at=now_utc()).where(
                    (Contract.platform_id == new.contract_id)
                    & (Contract.agreement_claimed_by.is_null() | (Contract.agreement_claimed_by == self.owner))
                    & Contract.agreement_id.is_null()
                ).execute()
            if not claimed:
                contract = Contract.get_by_id(new.contract_id)
                if contract.agreement_id:
                    return contract.agreement_id, False
                raise ConnectWiseError(f"another sync is creating the agreement of contract {new.contract_id}; "
                                       "this line is posted by the next sync")
            agreement_id = await self._existing_agreement(new) if attempted else None
            fresh = agreement_id is None
            if agreement_id is None:
                company = Company.get_or_none(Company.id == new.company_id)
                contact = company.default_contact_id if company else None
                if contact is None:
                    raise ConnectWiseError(f"company {new.company_id} has no default contact in ConnectWise; "
                                           "an agreement needs one")
                body = {"name": new.name, "type": {"id": new.type_id}, "company": {"id": new.company_id},
                        "contact": {"id": contact}, "startDate": f"{first_day_text(self.period)}T00:00:00Z"}
                try:
                    created = await self.client.create_agreement(body)
                    agreement_id = created.id
                except OutcomeUnknown:
                    agreement_id = await self._existing_agreement(new)
                    fresh = False
                    if agreement_id is None:
                        created = await self.client.create_agreement(body)
                        agreement_id, fresh = created.id, True
                self.result.agreements_created += 1
                system_log.write(self.store, Level.INFO, Category.SYNC, f"Created agreement {new.name}",
                                 f"agreement {agreement_id} for company {new.company_id}, contract {new.contract_id}")
            with self.store.atomic():
                Contract.update(agreement_id=agreement_id, agreement_claimed_by=None, agreement_claimed_at=None).where(
                    Contract.platform_id == new.contract_id).execute()
                Agreement.insert(id=agreement_id, name=new.name, company_id=new.company_id, type_id=new.type_id,
                                 status="Active", cancelled=False, synced_at=now_utc()).on_conflict_ignore().execute()
            self.agreement_ids[new.contract_id] = (agreement_id, fresh)
            return agreement_id, fresh

    async def _existing_agreement(self, new: NewAgreement) -> int | None:
        found = await self.client.agreements(company_id=new.company_id, conditions=condition("name", "=", new.name))
        return found[0].id if found else None

    async def create(self, action: CreateAddition) -> None:
        """The plan read the target agreement's markers before the run: only an agreement
        this run did not create itself just now is looked at again before posting."""
        try:
            if isinstance(action.agreement, int):
                agreement_id, looked_up = action.agreement, False
            else:
                agreement_id, fresh = await self.agreement_for(action.agreement)
                looked_up = not fresh
        except ConnectWiseError as error:
            self.failed(action.line_ids, f"could not get an agreement: {error.message}", error.details())
            return
        if not isinstance(action.agreement, int):
            self.target_recorded(action.line_ids, agreement_id)  # known targets were recorded with the claim
        if action.subscription_id:
            self._subscription_pending(action, agreement_id)
        body = action.values.body(action.marker)
        try:
            addition = await self.find(agreement_id, action.marker) if looked_up else None
            for attempt in range(3):
                if addition is not None:
                    break
                try:
                    addition = await self.client.create_addition(agreement_id, body)
                except OutcomeUnknown:
                    # ConnectWise may have it: look before posting again
                    addition = await self.find(agreement_id, action.marker)
                    if attempt == 2 and addition is None:
                        raise
        except OutcomeUnknown as error:
            self.failed(action.line_ids, f"{error.message}; the next sync checks ConnectWise before posting again",
                        error.details())
            return
        except ConnectWiseError as error:
            self.failed(action.line_ids, error.message, error.details())
            return
        assert addition is not None
        if action.subscription_id:
            self._subscription_active(action.subscription_id, agreement_id, addition.id, action.values, action.company_id,
                                      action.currency, action.billing_cycle)
        self.synced(action.line_ids, addition.id, agreement_id)
        self.result.created += 1
        self.count("creates", action.customer, action.currency, len(action.line_ids), action.values.amount)

    def adopt(self, action: AdoptAddition) -> None:
        """ConnectWise already holds it: record it, send nothing."""
        if action.subscription_id:
            self._subscription_active(action.subscription_id, action.agreement_id, action.addition_id, action.values,
                                      action.company_id, action.currency, action.billing_cycle)
        self.synced(action.line_ids, action.addition_id, action.agreement_id)
        self.result.adopted += 1
        if action.differs:
            system_log.write(self.store, Level.WARNING, Category.SYNC,
                             f"Line {', '.join(action.line_ids)} was already in ConnectWise with other values",
                             f"addition {action.addition_id} on agreement {action.agreement_id} ({action.marker}) holds "
                             f"other {', '.join(action.differs)} than the line; it was adopted as it is, nothing was "
                             "posted: check it in ConnectWise")

    def _subscription_pending(self, action: CreateAddition, agreement_id: int) -> None:
        with self.store.atomic():
            SubscriptionAddition.insert(
                subscription_id=action.subscription_id, marker=action.marker, agreement_id=agreement_id, state="pending",
                billing_cycle=action.billing_cycle.value, company_id=action.company_id, currency=action.currency,
                claimed_by=self.owner, claimed_at=now_utc(), created_run_id=self.run.id, updated_at=now_utc(),
            ).on_conflict(conflict_target=[SubscriptionAddition.subscription_id],
                          update={SubscriptionAddition.agreement_id: agreement_id, SubscriptionAddition.claimed_by: self.owner,
                                  SubscriptionAddition.claimed_at: now_utc()}).execute()

    def _subscription_active(self, subscription_id: str, agreement_id: int, addition_id: int, values: AdditionValues,
                             company_id: int | None, currency: str, cycle: BillingCycle | None) -> None:
        """The subscription's persistent Addition holds `values` now (a row is made for one
        adopted from ConnectWise)."""
        S = SubscriptionAddition
        fields: dict[str, Any] = dict(agreement_id=agreement_id, addition_id=addition_id, state="active",
                                      claimed_by=None, claimed_at=None, updated_at=now_utc(),
                                      **{name: getattr(values, name) for name in VALUE_FIELDS})
        if company_id is not None:
            fields["company_id"] = company_id
        if currency:
            fields["currency"] = currency
        if cycle is not None:
            fields["billing_cycle"] = cycle.value
        with self.store.atomic():
            S.insert(subscription_id=subscription_id, marker=marker("S", subscription_id), created_run_id=self.run.id,
                     last_period=self.period, **fields).on_conflict(
                conflict_target=[S.subscription_id],
                update={**{getattr(S, k): v for k, v in fields.items()},
                        S.last_period: pw.fn.MAX(pw.fn.COALESCE(S.last_period, self.period), self.period)},
            ).execute()

    async def update(self, action: UpdateAddition) -> None:
        try:
            addition = await self.client.patch_addition(action.agreement_id, action.addition_id, action.changes)
        except ConnectWiseError as error:
            self.failed(action.line_ids, error.message, error.details())
            return
        self._subscription_active(action.subscription_id, action.agreement_id, addition.id, action.values,
                                  action.company_id, action.currency, action.billing_cycle if action.adopted else None)
        self.synced(action.line_ids, addition.id, action.agreement_id)
        self.result.updated += 1
        if action.adopted:
            self.result.adopted += 1
        self.count("updates", action.customer, action.currency, len(action.line_ids), action.values.amount)

    def unchanged(self, action: UnchangedAddition) -> None:
        with self.store.atomic():
            SubscriptionAddition.update(last_period=self.period).where(
                (SubscriptionAddition.subscription_id == action.subscription_id)
                & (SubscriptionAddition.last_period < self.period)).execute()
        self.synced(action.line_ids, action.addition_id, action.agreement_id)
        self.result.unchanged += 1

    async def cancel(self, action: CancelAddition) -> None:
        try:
            await self.client.patch_addition(action.agreement_id, action.addition_id,
                                             {"cancelledDate": f"{action.cancelled_date.isoformat()}T00:00:00Z"})
        except ConnectWiseError as error:
            system_log.write(self.store, Level.ERROR, Category.SYNC,
                             f"Could not cancel the addition of subscription {action.subscription_id}", error.details())
            self.result.errors += 1
            return
        with self.store.atomic():
            SubscriptionAddition.update(state="cancelled", cancelled_date=action.cancelled_date, updated_at=now_utc(),
                                        claimed_by=None, claimed_at=None).where(
                SubscriptionAddition.subscription_id == action.subscription_id).execute()
        system_log.write(self.store, Level.INFO, Category.SYNC,
                         f"Cancelled the addition of subscription {action.subscription_id}",
                         f"addition {action.addition_id} on agreement {action.agreement_id}: cancelled "
                         f"{action.cancelled_date.isoformat()}; no recurring line in {self.period}")
        self.result.cancelled += 1
        self.count("cancels", action.customer, action.currency, 0)


def first_day_text(period: str) -> str:
    return f"{period}-01"


def _claim_subscriptions(store: Store, owner: str, subscription_ids: list[str]) -> set[str]:
    """Subscriptions another run is working on (a different period at the same time) are left."""
    if not subscription_ids:
        return set()
    with store.atomic("IMMEDIATE"):
        for start in range(0, len(subscription_ids), _CHUNK):
            chunk = subscription_ids[start : start + _CHUNK]
            SubscriptionAddition.update(claimed_by=owner, claimed_at=now_utc()).where(
                SubscriptionAddition.subscription_id.in_(chunk) & SubscriptionAddition.claimed_by.is_null()).execute()
        busy = {
            r[0] for r in SubscriptionAddition.select(SubscriptionAddition.subscription_id).where(
                SubscriptionAddition.subscription_id.in_(subscription_ids)
                & SubscriptionAddition.claimed_by.is_null(False) & (SubscriptionAddition.claimed_by != owner)).tuples()
        }
    return busy


async def run_sync(store: Store, client: ConnectWiseClient, period: str, *, only_lines: set[str] | None = None,
                   progress: Callable[[int, int], None] | None = None, expect_plan: str | None = None,
                   today: date | None = None) -> SyncResult:
    """Post the period's plan. With `expect_plan` (the fingerprint a person confirmed), a
    plan that differs sends nothing and raises PlanChanged with the new plan."""
    started = time.monotonic()
    calls_before = client.api_calls
    now = now_utc()
    run = SyncRun.create(kind="sync", period=period, started_at=now, state="running")
    owner = owner_name(run.id)
    run.owner = owner
    run.save()
    system_log.write(store, Level.INFO, Category.SYNC, f"Sync of {period} started", f"run {run.id}")
    state = _Run(store, client, period, run, owner, progress)
    try:
        plan = await prepare_plan(store, client, period, only_lines=only_lines, today=today)
        state.result.fingerprint = plan.fingerprint
        if expect_plan is not None and plan.fingerprint != expect_plan:
            raise PlanChanged(f"the plan of {period} changed since it was shown (it was {expect_plan}, it is now "
                              f"{plan.fingerprint}): nothing was sent; review the new plan", plan)
        for skip in plan.skips:
            system_log.write(store, Level.WARNING, Category.SYNC, f"Line {skip.line_id} skipped: {skip.reason}",
                             f"period {period}; map it (or include its organization) and sync again")
        state.result.skipped = len(plan.skips)
        if plan.deferred_cancels:
            system_log.write(store, Level.INFO, Category.SYNC,
                             f"{len(plan.deferred_cancels)} cancellations wait until {period} closes",
                             f"{period} is open: {plan.state.reason() if plan.state else ''}; nothing was cancelled")
        actions = (*plan.creates, *plan.updates, *plan.unchanged, *plan.adoptions)
        wanted = [lid for a in actions for lid in a.line_ids]
        claimed = _claim_lines(store, owner, wanted, now)
        subscriptions = [a.subscription_id for a in (*plan.creates, *plan.adoptions) if a.subscription_id] \
            + [u.subscription_id for u in plan.updates] + [c.subscription_id for c in plan.cancels]
        busy = _claim_subscriptions(store, owner, subscriptions)
        if expect_plan is not None and (set(wanted) - claimed or busy):
            _release_own_claims(store, owner)
            raise PlanChanged(f"another sync is posting part of the plan of {period}: nothing was sent; "
                              "look at the plan again when it has finished")

        def mine(line_ids: tuple[str, ...], subscription_id: str | None = None) -> bool:
            return all(lid in claimed for lid in line_ids) and subscription_id not in busy

        creates = [c for c in plan.creates if mine(c.line_ids, c.subscription_id)]
        updates = [u for u in plan.updates if mine(u.line_ids, u.subscription_id)]
        unchanged = [u for u in plan.unchanged if mine(u.line_ids)]
        adoptions = [a for a in plan.adoptions if mine(a.line_ids, a.subscription_id)]
        cancels = [c for c in plan.cancels if c.subscription_id not in busy]
        # lines claimed for an action this run drops (partly owned by another run) are released
        kept = {lid for a in (*creates, *updates, *unchanged, *adoptions) for lid in a.line_ids}
        with store.atomic():
            leftover = list(claimed - kept)
            for start in range(0, len(leftover), _CHUNK):
                InvoiceLine.update(sync_status="not_synced", claimed_by=None, claimed_at=None).where(
                    InvoiceLine.line_id.in_(leftover[start : start + _CHUNK]) & (InvoiceLine.claimed_by == owner)).execute()
        # where each request goes, recorded before any is sent (one transaction for the run)
        by_agreement: dict[int, list[str]] = defaultdict(list)
        for action in creates:
            if isinstance(action.agreement, int):
                by_agreement[action.agreement].extend(action.line_ids)
        with store.atomic():
            for agreement_id, line_ids in by_agreement.items():
                for start in range(0, len(line_ids), _CHUNK):
                    InvoiceLine.update(posted_agreement_id=agreement_id, posted_run_id=run.id).where(
                        InvoiceLine.line_id.in_(line_ids[start : start + _CHUNK]) & (InvoiceLine.claimed_by == owner)).execute()
        state.total = len(creates) + len(updates) + len(cancels)
        for action in unchanged:
            state.unchanged(action)
        for adoption in adoptions:
            state.adopt(adoption)
        if adoptions:
            system_log.write(store, Level.INFO, Category.SYNC,
                             f"{len(adoptions)} additions of {period} were already in ConnectWise: adopted, not posted",
                             "; ".join(f"{a.marker} = addition {a.addition_id} on agreement {a.agreement_id}"
                                       for a in adoptions[:50]))

        async def create(action: CreateAddition) -> None:
            await state.create(action)
            state.tick()

        async def update(action: UpdateAddition) -> None:
            await state.update(action)
            state.tick()

        async def cancel(action: CancelAddition) -> None:
            await state.cancel(action)
            state.tick()

        await asyncio.gather(*(create(a) for a in creates), *(update(a) for a in updates), *(cancel(a) for a in cancels))
        state.flush()
    except PlanChanged:
        _release_own_claims(store, owner)
        system_log.write(store, Level.WARNING, Category.SYNC, f"Sync of {period} refused: the plan changed",
                         f"run {run.id}: expected plan {expect_plan}; nothing was sent")
        _finish(run, "refused", client.api_calls - calls_before)
        raise
    except (ConnectWiseError, CacheShrinkRefused) as error:
        # ConnectWise could not be read at all, or its agreements list shrank (before posting):
        # nothing was claimed for posting
        state.flush_quietly()
        _release_own_claims(store, owner)
        system_log.write(store, Level.ERROR, Category.SYNC, f"Sync of {period} failed: {error.message}", error.details())
        _finish(run, "failed", client.api_calls - calls_before)
        raise
    except BaseException:
        state.flush_quietly()  # what was posted is Synced, not released
        _release_own_claims(store, owner)
        raise
    with store.atomic():
        _free_side_claims(owner)
    result = state.result
    result.api_calls = client.api_calls - calls_before
    result.duration_s = time.monotonic() - started
    result.totals = {k: dict(v) for k, v in state.totals.items()}
    for name in ("created", "updated", "cancelled", "agreements_created", "skipped", "errors"):
        setattr(run, name, getattr(result, name))
    _finish(run, "ok" if result.errors == 0 else "partial", result.api_calls)
    system_log.write(
        store, Level.WARNING if result.errors else Level.INFO, Category.SYNC,
        f"Sync of {period} finished: {result.created} created, {result.updated} updated, {result.cancelled} cancelled, "
        f"{result.adopted} already in ConnectWise, {result.errors} errors",
        f"run {run.id}: {result.synced_lines} lines synced, {result.unchanged} subscriptions unchanged, "
        f"{result.agreements_created} agreements created, {result.skipped} lines skipped; {result.api_calls} API calls "
        f"in {result.duration_s:.1f} s; plan {result.fingerprint}",
    )
    return result


def _finish(run: SyncRun, state: str, api_calls: int) -> None:
    run.state = state
    run.finished_at = now_utc()
    run.api_calls = api_calls
    run.save()


def _release_own_claims(store: Store, owner: str) -> None:
    """Claims of this run whose request was never sent go back; with a recorded target they
    become Error so that the next run looks the marker up first."""
    with store.atomic():
        InvoiceLine.update(sync_status="not_synced", claimed_by=None, claimed_at=None).where(
            (InvoiceLine.claimed_by == owner) & (InvoiceLine.sync_status == "claimed") & InvoiceLine.posted_agreement_id.is_null()).execute()
        InvoiceLine.update(sync_status="error", claimed_by=None, claimed_at=None,
                           last_error="the sync stopped before this line's outcome was known; the next sync checks ConnectWise first").where(
            (InvoiceLine.claimed_by == owner) & (InvoiceLine.sync_status == "claimed")).execute()
        _free_side_claims(owner)


def periods_to_sync(store: Store) -> list[str]:
    return [r[0] for r in store.db.execute_sql(
        "SELECT DISTINCT period FROM invoice_line WHERE sync_status IN ('not_synced', 'error') ORDER BY period")]


# ---------------------------------------------------------------- reconcile


@dataclass
class Mismatch:
    kind: str  # missing | duplicate | amount | foreign
    marker: str
    customer: str
    currency: str
    detail: str


@dataclass
class ReconcileReport:
    period: str
    per_customer: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)
    additions_read: int = 0


def _posted_for_period(store: Store, period: str) -> dict[str, dict[str, Any]]:
    """marker -> what cw-tui posted for `period`: a one-time line's own values; for a
    subscription, the values of its latest recurring charge of the period (what that
    period's sync left on the persistent Addition). Synced lines never change, so a later
    month's sync leaves this as it was."""
    rows = store.db.execute_sql(
        "SELECT l.line_id, l.charge_type, l.subscription_id, l.quantity, l.unit_price, l.currency, l.posted_agreement_id, "
        "COALESCE(o.name, l.organization_id), l.charge_start, l.invoice_date "
        "FROM invoice_line l LEFT JOIN organization o ON o.platform_id = l.organization_id "
        "WHERE l.period = ? AND l.sync_status = 'synced'", (period,))
    expected: dict[str, dict[str, Any]] = {}
    latest: dict[str, tuple] = {}
    for line_id, charge_type, sub_id, quantity, price, currency, agreement_id, customer, start, invoice_date in rows:
        amount = from_micros(quantity) * from_micros(price)
        if not ChargeType(charge_type).recurring:
            expected[marker("L", line_id)] = {"customer": customer, "currency": currency, "agreement": agreement_id,
                                              "amount": amount, "subscription": None}
            continue
        key = marker("S", sub_id)
        order = (start, invoice_date, line_id)
        entry = expected.setdefault(key, {"customer": customer, "currency": currency, "agreement": agreement_id,
                                          "amount": amount, "subscription": sub_id})
        if key not in latest or order > latest[key]:
            latest[key] = order
            entry.update(amount=amount, agreement=agreement_id)
    return expected


async def reconcile(store: Store, client: ConnectWiseClient, period: str) -> ReconcileReport:
    """Compare what cw-tui posted for the period with what ConnectWise holds now, per
    customer and currency (SPEC §15). A persistent Addition that a later month updated counts
    here at the values posted for this month, as long as ConnectWise still holds what cw-tui
    posted last; so a month's figures do not change when a later month is synced."""
    report = ReconcileReport(period)
    expected = _posted_for_period(store, period)
    subscriptions = {s.subscription_id: s for s in SubscriptionAddition.select()}
    agreement_ids = set()
    for key, exp in expected.items():
        sub = subscriptions.get(exp["subscription"]) if exp["subscription"] else None
        if sub is not None and sub.agreement_id:
            exp["agreement"] = sub.agreement_id
        if exp["agreement"]:
            agreement_ids.add(exp["agreement"])
    found: dict[str, list[Addition]] = defaultdict(list)
    for agreement_id in sorted(agreement_ids):
        for addition in await client.additions(agreement_id, condition("serialNumber", "like", f"{MARKER_PREFIX}*")):
            found[addition.serialNumber or ""].append(addition)
            report.additions_read += 1
    known_lines = {r[0] for r in store.db.execute_sql("SELECT line_id FROM invoice_line WHERE sync_status = 'synced'")}
    known = {marker("L", lid) for lid in known_lines} | {marker("S", s) for s in subscriptions}

    def tally(customer: str, currency: str) -> dict[str, Any]:
        return report.per_customer.setdefault((customer, currency), {"expected_count": 0, "expected_amount": Decimal(0),
                                                                     "found_count": 0, "found_amount": Decimal(0)})

    for key, exp in sorted(expected.items()):
        row = tally(exp["customer"], exp["currency"])
        row["expected_count"] += 1
        row["expected_amount"] += exp["amount"]
        additions = found.get(key, [])
        if not additions:
            report.mismatches.append(Mismatch("missing", key, exp["customer"], exp["currency"],
                                              f"no addition with this marker on agreement {exp['agreement']}"))
            continue
        if len(additions) > 1:
            report.mismatches.append(Mismatch("duplicate", key, exp["customer"], exp["currency"],
                                              f"{len(additions)} additions: {', '.join(str(a.id) for a in additions)}"))
        holds = sum(((a.quantity or 0) * (a.unitPrice or 0) for a in additions), Decimal(0))
        sub = subscriptions.get(exp["subscription"]) if exp["subscription"] else None
        superseded = sub is not None and sub.last_period is not None and sub.last_period > period
        # what cw-tui last left on this Addition: this month's values, or a later month's
        last_posted = (sub.quantity or 0) * (sub.unit_price or 0) if superseded else exp["amount"]
        row["found_count"] += len(additions)
        if len(additions) == 1 and abs(holds - last_posted) <= Decimal("0.005"):
            row["found_amount"] += exp["amount"]
            continue
        row["found_amount"] += holds  # a difference: what ConnectWise really holds
        if len(additions) == 1:
            later = f" (cw-tui last posted {last_posted:.2f} with {sub.last_period})" if superseded and sub else ""
            report.mismatches.append(Mismatch("amount", key, exp["customer"], exp["currency"],
                                              f"expected {last_posted:.2f}{later}, ConnectWise holds {holds:.2f}"))
    for key, additions in sorted(found.items()):
        if key not in expected and key not in known:
            for a in additions:
                report.mismatches.append(Mismatch("foreign", key, "", "",
                                                  f"addition {a.id} on agreement {a.agreementId} has a cw-tui marker "
                                                  "that matches no synced line or subscription"))
    return report


def totals_by_currency(per_customer: dict[tuple[str, str], dict[str, Any]]) -> dict[str, dict[str, Decimal]]:
    """Reconciliation totals per currency: amounts of different currencies are never added."""
    result: dict[str, dict[str, Decimal]] = {}
    for (_, currency), row in sorted(per_customer.items()):
        total = result.setdefault(currency, {"expected": Decimal(0), "found": Decimal(0)})
        total["expected"] += row["expected_amount"]
        total["found"] += row["found_amount"]
    return result


def money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):,}"
