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

from cw_tui.rules.additions import MARKER_PREFIX, AdditionValues, marker
from cw_tui.rules.charge_dates import Badge
from cw_tui.rules.mapping import MappingStatus
from cw_tui.rules.sync_plan import (
    AgreementInfo,
    CancelAddition,
    CreateAddition,
    NewAgreement,
    PersistentAddition,
    Plan,
    PlanLine,
    UnchangedAddition,
    UpdateAddition,
    plan_sync,
)
from cw_tui.rules.vocabulary import BillingCycle, ChargeType
from cw_tui.services import settings, system_log
from cw_tui.services.connectwise import ConnectWiseClient, ConnectWiseError, OutcomeUnknown
from cw_tui.services.connectwise.conditions import condition
from cw_tui.services.connectwise.models import Addition
from cw_tui.services.connectwise_data import CacheShrinkRefused, refresh_agreements
from cw_tui.services.money import from_micros, to_micros
from cw_tui.services.repository import LINE_MAPPING_JOINS, LINE_MAPPING_STATUS
from cw_tui.services.store import (
    Agreement,
    Company,
    Contract,
    InvoiceLine,
    Store,
    SubscriptionAddition,
    SyncRun,
    now_utc,
    utc_to_text,
)
from cw_tui.services.system_log import Category, Level

STALE_AFTER = timedelta(hours=6)  # a claim this old is abandoned even if its process looks alive
_CHUNK = 500
CENT = Decimal("0.01")


class SyncNotReady(Exception):
    """Configuration missing (agreement type); nothing was sent."""


@dataclass
class SyncResult:
    run_id: int
    period: str
    created: int = 0
    updated: int = 0
    cancelled: int = 0
    agreements_created: int = 0
    unchanged: int = 0
    skipped: int = 0
    errors: int = 0
    synced_lines: int = 0
    api_calls: int = 0
    duration_s: float = 0.0
    totals: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "created": self.created, "updated": self.updated, "cancelled": self.cancelled,
            "agreements_created": self.agreements_created, "skipped": self.skipped, "errors": self.errors,
            "api_calls": self.api_calls, "duration_s": round(self.duration_s, 3),
            "period": self.period, "unchanged": self.unchanged, "synced_lines": self.synced_lines,
            "totals": totals_json(self.totals),
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
           COALESCE(l.override_agreement_id, c.agreement_id), l.sync_status
    FROM invoice_line l {LINE_MAPPING_JOINS}
    WHERE l.period = ?
"""


def plan_lines(store: Store, period: str) -> list[PlanLine]:
    result = []
    for row in store.db.execute_sql(_LINE_SQL, (period,)):
        (line_id, invoice_date, org_id, org_name, contract_id, sub_id, sub_name, offer_name, charge_type, cycle,
         quantity, unit_price, unit_cost, currency, start, start_badge, end, status, company_id, product_id,
         agreement_id, sync_status) = row
        result.append(PlanLine(
            line_id, date.fromisoformat(invoice_date), org_id, org_name, contract_id, sub_id, sub_name, offer_name,
            ChargeType(charge_type), BillingCycle(cycle), from_micros(quantity), from_micros(unit_price),
            from_micros(unit_cost), currency, date.fromisoformat(start), start_badge == Badge.USER,
            date.fromisoformat(end) if end else None, MappingStatus(status), company_id, org_name, product_id,
            agreement_id, sync_status,
        ))
    return result


def cached_agreements(store: Store) -> dict[int, list[AgreementInfo]]:
    result: dict[int, list[AgreementInfo]] = defaultdict(list)
    for a in Agreement.select():
        result[a.company_id].append(AgreementInfo(a.id, a.company_id, a.type_id, a.status == "Active" and not a.cancelled))
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


def build_plan(store: Store, period: str, *, only_lines: set[str] | None = None) -> Plan:
    config = settings.load_configuration(store)
    if config.agreement_type is None:
        raise SyncNotReady("choose an Agreement Type first: `cw-tui configure --agreement-type NAME`")
    names = {t: config.charge_type_name(t) for t in ChargeType}
    return plan_sync(period, plan_lines(store, period), cached_agreements(store), persistent_additions(store),
                     config.agreement_type.id, names, only_lines=only_lines)


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
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        self.agreement_ids: dict[str, int] = {}
        self.done = 0
        self.total = 0

    # --- store writes (each its own short transaction: durable as it goes)

    def _lines(self, line_ids: tuple[str, ...]):  # noqa: ANN202 - a peewee expression
        return InvoiceLine.line_id.in_(list(line_ids)) & (InvoiceLine.claimed_by == self.owner)

    def target_recorded(self, line_ids: tuple[str, ...], agreement_id: int) -> None:
        with self.store.atomic():
            InvoiceLine.update(posted_agreement_id=agreement_id, posted_run_id=self.run.id).where(self._lines(line_ids)).execute()

    def synced(self, line_ids: tuple[str, ...], addition_id: int, agreement_id: int) -> None:
        with self.store.atomic():
            InvoiceLine.update(sync_status="synced", addition_id=addition_id, posted_agreement_id=agreement_id,
                               posted_run_id=self.run.id, last_error=None, last_sync_at=now_utc(),
                               claimed_by=None, claimed_at=None).where(self._lines(line_ids)).execute()
        self.result.synced_lines += len(line_ids)

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

    async def agreement_for(self, new: NewAgreement) -> int:
        """SPEC §8 rule 4, once per contract across runs and processes."""
        async with self.agreement_locks[new.contract_id]:
            if new.contract_id in self.agreement_ids:
                return self.agreement_ids[new.contract_id]
            contract = Contract.get_by_id(new.contract_id)
            if contract.agreement_id:
                self.agreement_ids[new.contract_id] = contract.agreement_id
                return contract.agreement_id
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
                    return contract.agreement_id
                raise ConnectWiseError(f"another sync is creating the agreement of contract {new.contract_id}; "
                                       "this line is posted by the next sync")
            agreement_id = await self._existing_agreement(new) if attempted else None
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
                    if agreement_id is None:
                        created = await self.client.create_agreement(body)
                        agreement_id = created.id
                self.result.agreements_created += 1
                system_log.write(self.store, Level.INFO, Category.SYNC, f"Created agreement {new.name}",
                                 f"agreement {agreement_id} for company {new.company_id}, contract {new.contract_id}")
            with self.store.atomic():
                Contract.update(agreement_id=agreement_id, agreement_claimed_by=None, agreement_claimed_at=None).where(
                    Contract.platform_id == new.contract_id).execute()
                Agreement.insert(id=agreement_id, name=new.name, company_id=new.company_id, type_id=new.type_id,
                                 status="Active", cancelled=False, synced_at=now_utc()).on_conflict_ignore().execute()
            self.agreement_ids[new.contract_id] = agreement_id
            return agreement_id

    async def _existing_agreement(self, new: NewAgreement) -> int | None:
        found = await self.client.agreements(company_id=new.company_id, conditions=condition("name", "=", new.name))
        return found[0].id if found else None

    async def create(self, action: CreateAddition, looked_up: bool) -> None:
        try:
            agreement_id = action.agreement if isinstance(action.agreement, int) else await self.agreement_for(action.agreement)
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
        with self.store.atomic():
            row = SubscriptionAddition.get_by_id(subscription_id)
            row.agreement_id, row.addition_id, row.state = agreement_id, addition_id, "active"
            for name in ("product_id", "quantity", "unit_price", "unit_cost", "effective_date", "cancelled_date",
                         "description", "invoice_description"):
                setattr(row, name, getattr(values, name))
            if company_id is not None:
                row.company_id = company_id
            row.currency = currency or row.currency
            if cycle is not None:
                row.billing_cycle = cycle.value
            row.last_period = max(row.last_period or self.period, self.period)
            row.claimed_by = row.claimed_at = None
            row.updated_at = now_utc()
            row.save()

    async def update(self, action: UpdateAddition) -> None:
        try:
            addition = await self.client.patch_addition(action.agreement_id, action.addition_id, action.changes)
        except ConnectWiseError as error:
            self.failed(action.line_ids, error.message, error.details())
            return
        self._subscription_active(action.subscription_id, action.agreement_id, addition.id, action.values, None,
                                  action.currency, None)
        self.synced(action.line_ids, addition.id, action.agreement_id)
        self.result.updated += 1
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
                   progress: Callable[[int, int], None] | None = None) -> SyncResult:
    started = time.monotonic()
    calls_before = client.api_calls
    now = now_utc()
    run = SyncRun.create(kind="sync", period=period, started_at=now, state="running")
    owner = owner_name(run.id)
    run.owner = owner
    run.save()
    system_log.write(store, Level.INFO, Category.SYNC, f"Sync of {period} started", f"run {run.id}")
    release_stale_claims(store, now)
    state = _Run(store, client, period, run, owner, progress)
    try:
        await refresh_agreements(store, client)
        plan = build_plan(store, period, only_lines=only_lines)
        for skip in plan.skips:
            system_log.write(store, Level.WARNING, Category.SYNC, f"Line {skip.line_id} skipped: {skip.reason}",
                             f"period {period}; map it (or include its organization) and sync again")
        state.result.skipped = len(plan.skips)
        wanted = [lid for c in plan.creates for lid in c.line_ids] + [lid for u in plan.updates for lid in u.line_ids] \
            + [lid for u in plan.unchanged for lid in u.line_ids]
        # which of these lines an earlier attempt may have posted: they are looked up first
        previously = set()
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            previously.update(r[0] for r in InvoiceLine.select(InvoiceLine.line_id).where(
                InvoiceLine.line_id.in_(chunk) & InvoiceLine.posted_agreement_id.is_null(False)).tuples())
        claimed = _claim_lines(store, owner, wanted, now)
        subscriptions = [c.subscription_id for c in plan.creates if c.subscription_id] + [u.subscription_id for u in plan.updates] \
            + [c.subscription_id for c in plan.cancels]
        busy = _claim_subscriptions(store, owner, subscriptions)

        def mine(line_ids: tuple[str, ...], subscription_id: str | None = None) -> bool:
            return all(lid in claimed for lid in line_ids) and subscription_id not in busy

        creates = [c for c in plan.creates if mine(c.line_ids, c.subscription_id)]
        updates = [u for u in plan.updates if mine(u.line_ids, u.subscription_id)]
        unchanged = [u for u in plan.unchanged if mine(u.line_ids)]
        cancels = [c for c in plan.cancels if c.subscription_id not in busy]
        # lines claimed for an action this run drops (partly owned by another run) are released
        kept = {lid for a in (*creates, *updates, *unchanged) for lid in a.line_ids}
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

        pending = {r[0] for r in SubscriptionAddition.select(SubscriptionAddition.subscription_id).where(
            SubscriptionAddition.state == "pending").tuples()}

        async def create(action: CreateAddition) -> None:
            # an earlier attempt recorded a target: ConnectWise may already hold this one
            looked_up = any(lid in previously for lid in action.line_ids) or action.subscription_id in pending
            await state.create(action, looked_up)
            state.tick()

        async def update(action: UpdateAddition) -> None:
            await state.update(action)
            state.tick()

        async def cancel(action: CancelAddition) -> None:
            await state.cancel(action)
            state.tick()

        await asyncio.gather(*(create(a) for a in creates), *(update(a) for a in updates), *(cancel(a) for a in cancels))
    except (ConnectWiseError, CacheShrinkRefused) as error:
        # ConnectWise could not be read at all, or its agreements list shrank (before posting):
        # nothing was claimed for posting
        _release_own_claims(store, owner)
        system_log.write(store, Level.ERROR, Category.SYNC, f"Sync of {period} failed: {error.message}", error.details())
        run.state = "failed"
        run.finished_at = now_utc()
        run.api_calls = client.api_calls - calls_before
        run.save()
        raise
    except BaseException:
        _release_own_claims(store, owner)
        raise
    with store.atomic():
        _free_side_claims(owner)
    result = state.result
    result.api_calls = client.api_calls - calls_before
    result.duration_s = time.monotonic() - started
    result.totals = {k: dict(v) for k, v in state.totals.items()}
    run.finished_at = now_utc()
    run.state = "ok" if result.errors == 0 else "partial"
    for name in ("created", "updated", "cancelled", "agreements_created", "skipped", "errors", "api_calls"):
        setattr(run, name, getattr(result, name))
    run.save()
    system_log.write(
        store, Level.WARNING if result.errors else Level.INFO, Category.SYNC,
        f"Sync of {period} finished: {result.created} created, {result.updated} updated, {result.cancelled} cancelled, "
        f"{result.errors} errors",
        f"run {run.id}: {result.synced_lines} lines synced, {result.unchanged} subscriptions unchanged, "
        f"{result.agreements_created} agreements created, {result.skipped} lines skipped; {result.api_calls} API calls "
        f"in {result.duration_s:.1f} s",
    )
    return result


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


async def reconcile(store: Store, client: ConnectWiseClient, period: str) -> ReconcileReport:
    """Compare what the period's synced lines say ConnectWise holds with what it holds."""
    report = ReconcileReport(period)
    expected: dict[str, dict[str, Any]] = {}  # marker -> expected
    rows = store.db.execute_sql(
        "SELECT l.line_id, l.charge_type, l.subscription_id, l.quantity, l.unit_price, l.currency, l.posted_agreement_id, "
        "COALESCE(o.name, l.organization_id) FROM invoice_line l LEFT JOIN organization o ON o.platform_id = l.organization_id "
        "WHERE l.period = ? AND l.sync_status = 'synced'", (period,))
    subscriptions = {s.subscription_id: s for s in SubscriptionAddition.select()}
    for line_id, charge_type, sub_id, quantity, price, currency, agreement_id, customer in rows:
        if ChargeType(charge_type).recurring:
            sub = subscriptions.get(sub_id)
            if sub is None:
                continue
            key = marker("S", sub_id)
            expected.setdefault(key, {"customer": customer, "currency": currency, "agreement": sub.agreement_id,
                                      "amount": (sub.quantity or 0) * (sub.unit_price or 0), "lines": 0})
            expected[key]["lines"] += 1
        else:
            expected[marker("L", line_id)] = {"customer": customer, "currency": currency, "agreement": agreement_id,
                                              "amount": from_micros(quantity) * from_micros(price), "lines": 1}
    agreement_ids = sorted({e["agreement"] for e in expected.values() if e["agreement"]})
    found: dict[str, list[Addition]] = defaultdict(list)
    for agreement_id in agreement_ids:
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
        amount = sum(((a.quantity or 0) * (a.unitPrice or 0) for a in additions), Decimal(0))
        row["found_count"] += len(additions)
        row["found_amount"] += amount
        if abs(amount - exp["amount"]) > Decimal("0.005"):
            report.mismatches.append(Mismatch("amount", key, exp["customer"], exp["currency"],
                                              f"expected {exp['amount']:.2f}, ConnectWise holds {amount:.2f}"))
    for key, additions in sorted(found.items()):
        if key not in expected and key not in known:
            for a in additions:
                report.mismatches.append(Mismatch("foreign", key, "", "",
                                                  f"addition {a.id} on agreement {a.agreementId} has a cw-tui marker "
                                                  "that matches no synced line or subscription"))
    return report


def money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):,}"
