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
- The journal (store/journal.py) gets one entry per write, committed before its request is
  sent, then completed with the outcome (the entries of requests going out together are
  committed in one transaction: _JournalBatch). If the journal cannot be written, nothing
  more is sent: the run stops.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import peewee as pw

from cw_tui.rules.additions import VALUE_FIELDS, AdditionValues, marker
from cw_tui.rules.sync_plan import (
    AdoptAddition,
    CancelAddition,
    CreateAddition,
    NewAgreement,
    UnchangedAddition,
    UpdateAddition,
)
from cw_tui.rules.vocabulary import BillingCycle
from cw_tui.services import system_log
from cw_tui.services.connectwise import (
    ConnectWiseClient,
    ConnectWiseError,
    OutcomeUnknown,
)
from cw_tui.services.connectwise.conditions import condition
from cw_tui.services.connectwise.models import Addition
from cw_tui.services.connectwise_data import CacheShrinkRefused
from cw_tui.services.system_log import Category, Level
from cw_tui.store import (
    DATABASE_ERRORS,
    Agreement,
    Company,
    Contract,
    InvoiceLine,
    Store,
    SubscriptionAddition,
    SyncRun,
    journal,
    now_utc,
    sync_reads,
    utc_to_text,
)
from cw_tui.sync.claims import (
    _CHUNK,
    _claim_lines,
    _claim_subscriptions,
    _free_side_claims,
    _release_own_claims,
    hold_run,
    owner_name,
)
from cw_tui.sync.errors import AgreementUnavailable, PlanChanged
from cw_tui.sync.plan import prepare_plan, read_markers, values_in_connectwise
from cw_tui.sync.results import SyncResult

SYNCED_BATCH = 200  # posted lines recorded per transaction
FLUSH_EVERY_S = 0.25  # ... or at least this often, so the grid shows each line's status as it goes
JOURNAL_BATCH = 500  # journal entries of requests about to go out, committed per transaction


class _JournalBatch:
    """A group commit of journal entries: the entries that requests about to go out asked for
    in one turn of the event loop are written in one transaction (on PostgreSQL one round trip,
    not four per entry), and each request waits for its entry's commit before it is sent. A
    request stopped while it waits has no entry and is never sent; a write that fails fails
    every request of its batch: none is sent, and the run stops."""

    def __init__(self, write: Callable[[list[tuple[str, dict[str, Any]]]], list[int]]) -> None:
        self._write = write
        self._waiting: list[tuple[str, dict[str, Any], asyncio.Future]] = []
        self._scheduled = False

    async def begin(self, action: str, fields: dict[str, Any]) -> int:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.append((action, fields, future))
        if not self._scheduled:  # after the other tasks of this turn have asked for theirs
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._waiting = self._waiting[:JOURNAL_BATCH], self._waiting[JOURNAL_BATCH:]
        self._scheduled = bool(self._waiting)
        if self._waiting:
            asyncio.get_running_loop().call_soon(self._flush)
        batch = [b for b in batch if not b[2].done()]  # cancelled while waiting: not written, never sent
        if not batch:
            return
        try:
            ids = self._write([(action, fields) for action, fields, _ in batch])
        except Exception as error:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (*_, future), journal_id in zip(batch, ids, strict=True):
            if not future.done():
                future.set_result(journal_id)


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
        self._done: list[tuple[int, int | None]] = []  # journal entries answered, recorded with them
        self._flushed_at = time.monotonic()
        self.person = journal.who()
        self.unresolved = journal.unresolved_markers(store)  # creates of earlier runs whose outcome is not known
        # what ConnectWise holds on the Additions to update or cancel, read before the run sends
        self.held: dict[int, AdditionValues | None] = {}
        self._journal = _JournalBatch(lambda entries: journal.begin_many(store, run.id, period, entries))

    # --- the journal (each entry committed before its request; a failure stops the run)

    async def journal_begin(self, action: str, **fields: Any) -> int:
        """The entry of a request, committed (with the others of this turn) before it is sent."""
        return await self._journal.begin(action, {"person": self.person, **fields})

    def journal_error(self, entry: int, error: ConnectWiseError) -> None:
        journal.failed(self.store, entry, outcome="unknown" if isinstance(error, OutcomeUnknown) else "error",
                       status=error.status, code=error.code, message=system_log.redact(error.message))

    # --- store writes (each its own short transaction: durable as it goes)

    def _lines(self, line_ids: tuple[str, ...]):
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
        if not self._synced and not self._done:
            return
        rows, self._synced = self._synced, []
        answered, self._done = self._done, []
        with self.store.atomic():
            sync_reads.mark_synced(self.store, rows)
            journal.done_many(self.store, answered)

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
                raise AgreementUnavailable(f"another sync is creating the agreement of contract {new.contract_id}; "
                                           "this line is posted by the next sync")
            agreement_id = await self._existing_agreement(new) if attempted else None
            if attempted:
                journal.resolve_unknown_agreement(self.store, new.contract_id, self.run.id, agreement_id)
            fresh = agreement_id is None
            if agreement_id is None:
                company = Company.get_or_none(Company.id == new.company_id)
                contact = company.default_contact_id if company else None
                if contact is None:
                    raise AgreementUnavailable(f"company {new.company_id} has no default contact in ConnectWise; "
                                               "an agreement needs one")
                body = {"name": new.name, "type": {"id": new.type_id}, "company": {"id": new.company_id},
                        "contact": {"id": contact}, "startDate": f"{first_day_text(self.period)}T00:00:00Z"}
                agreement_id, fresh = await self._create_agreement(new, body)
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

    async def _create_agreement(self, new: NewAgreement, body: dict[str, Any]) -> tuple[int, bool]:
        """POST the agreement (journaled); a lost answer is looked up by name before a second POST."""
        for attempt in range(2):
            entry = await self.journal_begin("new_agreement", contract_id=new.contract_id, customer=new.name, sent=body)
            try:
                created = await self.client.create_agreement(body)
            except ConnectWiseError as error:
                self.journal_error(entry, error)
                if not isinstance(error, OutcomeUnknown) or attempt == 1:
                    raise
                found = await self._existing_agreement(new)
                journal.resolve_unknown_agreement(self.store, new.contract_id, self.run.id, found)
                if found is not None:
                    return found, False
                continue
            journal.done(self.store, entry, agreement_id=created.id)
            return created.id, True
        raise AssertionError("unreachable")

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
        except (ConnectWiseError, AgreementUnavailable) as error:
            self.failed(action.line_ids, f"could not get an agreement: {error.message}", error.details())
            return
        if not isinstance(action.agreement, int):
            self.target_recorded(action.line_ids, agreement_id)  # known targets were recorded with the claim
        if action.subscription_id:
            self._subscription_pending(action, agreement_id)
        body = action.values.body(action.marker)
        looked_at = {agreement_id, *action.earlier_agreements}
        entry: int | None = None  # the journal entry of the request in flight
        try:
            addition = await self.find(agreement_id, action.marker) if looked_up else None
            if addition is not None:
                self._credit(action, agreement_id, addition)
            elif action.marker in self.unresolved:
                # the plan looked for the marker where earlier attempts went: they never posted it
                journal.resolve_unknown(self.store, action.marker, self.run.id, found_addition=None, looked_at=looked_at)
            for attempt in range(3):
                if addition is not None:
                    break
                entry = await self.journal_begin("create", line_ids=action.line_ids, marker=action.marker,
                                                 agreement_id=agreement_id, subscription_id=action.subscription_id,
                                                 customer=action.customer, currency=action.currency, sent=body,
                                                 after=action.values)
                try:
                    addition = await self.client.create_addition(agreement_id, body)
                    if action.subscription_id:  # before the subscription is recorded active (its own transaction)
                        journal.done(self.store, entry, addition_id=addition.id)
                    else:
                        self._done.append((entry, addition.id))  # recorded with the lines it synced
                    entry = None
                except OutcomeUnknown as error:
                    self.journal_error(entry, error)
                    entry = None
                    # ConnectWise may have it: look before posting again
                    addition = await self.find(agreement_id, action.marker)
                    journal.resolve_unknown(self.store, action.marker, self.run.id,
                                            found_addition=addition.id if addition is not None else None,
                                            agreement_id=agreement_id, looked_at=[agreement_id])
                    if attempt == 2 and addition is None:
                        raise
        except OutcomeUnknown as error:
            self.failed(action.line_ids, f"{error.message}; the next sync checks ConnectWise before posting again",
                        error.details())
            return
        except ConnectWiseError as error:
            if entry is not None:
                self.journal_error(entry, error)
            self.failed(action.line_ids, error.message, error.details())
            return
        assert addition is not None
        if action.subscription_id:
            self._subscription_active(action.subscription_id, agreement_id, addition.id, action.values, action.company_id,
                                      action.currency, action.billing_cycle)
        self.synced(action.line_ids, addition.id, agreement_id)
        self.result.created += 1
        self.count("creates", action.customer, action.currency, len(action.line_ids), action.values.amount)

    def _credit(self, action: CreateAddition | AdoptAddition, agreement_id: int, addition: Addition) -> None:
        """An Addition found in ConnectWise under the action's marker, taken over (journal)."""
        journal.credit_adoption(self.store, self.run.id, self.period, person=self.person, marker_=action.marker,
                                agreement_id=agreement_id, addition_id=addition.id, line_ids=action.line_ids,
                                values=values_in_connectwise(addition) or action.values, customer=action.customer,
                                currency=action.currency, subscription_id=action.subscription_id)  # found by a look: check all

    def adopt(self, action: AdoptAddition) -> None:
        """ConnectWise already holds it: record it, send nothing."""
        journal.credit_adoption(self.store, self.run.id, self.period, person=self.person, marker_=action.marker,
                                agreement_id=action.agreement_id, addition_id=action.addition_id, line_ids=action.line_ids,
                                values=action.held or action.values, customer=action.customer, currency=action.currency,
                                subscription_id=action.subscription_id, maybe_unresolved=action.marker in self.unresolved)
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
                        S.last_period: _later_period(S.last_period, self.period)},
            ).execute()

    def before_values(self, addition_id: int, planned: AdditionValues | None, adopted: bool) -> AdditionValues | None:
        """What ConnectWise holds on the Addition before a PATCH: as read during the plan's
        adoption, else as read at the start of the run."""
        if adopted and planned is not None:
            return planned
        return self.held.get(addition_id, planned)

    def _known_addition(self, marker_: str, agreement_id: int, addition_id: int) -> None:
        """The store records this subscription's Addition (it does so only once ConnectWise
        answered): a create of an earlier run still awaiting its outcome created it."""
        if marker_ in self.unresolved:
            journal.resolve_unknown(self.store, marker_, self.run.id, found_addition=addition_id, agreement_id=agreement_id,
                                    looked_at=[agreement_id])

    async def update(self, action: UpdateAddition) -> None:
        before = self.before_values(action.addition_id, action.before, action.adopted)
        if action.adopted:  # found in ConnectWise, unknown to the store: taken over, then updated
            journal.credit_adoption(self.store, self.run.id, self.period, person=self.person, marker_=action.marker,
                                    agreement_id=action.agreement_id, addition_id=action.addition_id,
                                    line_ids=action.line_ids, values=before, customer=action.customer,
                                    currency=action.currency, subscription_id=action.subscription_id,
                                    maybe_unresolved=action.marker in self.unresolved)
        else:
            self._known_addition(action.marker, action.agreement_id, action.addition_id)
        journal.resolve_unknown_changes(self.store, action.marker, self.run.id, before)
        entry = await self.journal_begin("update", line_ids=action.line_ids, marker=action.marker,
                                         agreement_id=action.agreement_id, addition_id=action.addition_id,
                                         subscription_id=action.subscription_id, customer=action.customer,
                                         currency=action.currency, sent=action.changes, before=before, after=action.values)
        try:
            addition = await self.client.patch_addition(action.agreement_id, action.addition_id, action.changes)
        except ConnectWiseError as error:
            self.journal_error(entry, error)
            self.failed(action.line_ids, error.message, error.details())
            return
        journal.done(self.store, entry)  # `after` stays what cw-tui meant it to hold
        self._subscription_active(action.subscription_id, action.agreement_id, addition.id, action.values,
                                  action.company_id, action.currency, action.billing_cycle if action.adopted else None)
        self.synced(action.line_ids, addition.id, action.agreement_id)
        self.result.updated += 1
        if action.adopted:
            self.result.adopted += 1
        self.count("updates", action.customer, action.currency, len(action.line_ids), action.values.amount)

    def unchanged(self, action: UnchangedAddition) -> None:
        self._known_addition(marker("S", action.subscription_id), action.agreement_id, action.addition_id)
        with self.store.atomic():
            SubscriptionAddition.update(last_period=self.period).where(
                (SubscriptionAddition.subscription_id == action.subscription_id)
                & (SubscriptionAddition.last_period < self.period)).execute()
        self.synced(action.line_ids, action.addition_id, action.agreement_id)
        self.result.unchanged += 1

    async def cancel(self, action: CancelAddition, recorded: AdditionValues | None) -> None:
        before = self.before_values(action.addition_id, recorded, False)
        journal.resolve_unknown_changes(self.store, action.marker, self.run.id, before)
        sent = {"cancelledDate": f"{action.cancelled_date.isoformat()}T00:00:00Z"}
        base = recorded or before  # what cw-tui last meant it to hold, ended
        entry = await self.journal_begin("cancel", marker=action.marker, agreement_id=action.agreement_id,
                                         addition_id=action.addition_id, subscription_id=action.subscription_id,
                                         customer=action.customer, currency=action.currency, sent=sent, before=before,
                                         after=replace(base, cancelled_date=action.cancelled_date) if base else None)
        try:
            await self.client.patch_addition(action.agreement_id, action.addition_id, sent)
        except ConnectWiseError as error:
            self.journal_error(entry, error)
            system_log.write(self.store, Level.ERROR, Category.SYNC,
                             f"Could not cancel the addition of subscription {action.subscription_id}", error.details())
            self.result.errors += 1
            return
        journal.done(self.store, entry)
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


def _later_period(column: pw.Field, period: str) -> pw.Node:
    """The later of a stored period and `period` (YYYY-MM text sorts as time): a CASE, which
    both SQLite and PostgreSQL take (two-argument MAX is SQLite's only)."""
    return pw.Case(None, [((column.is_null() | (column < period)), period)], column)


def first_day_text(period: str) -> str:
    return f"{period}-01"


async def run_sync(store: Store, client: ConnectWiseClient, period: str, *, only_lines: set[str] | None = None,
                   progress: Callable[[int, int], None] | None = None, expect_plan: str | None = None,
                   today: date | None = None, trigger: str = "app") -> SyncResult:
    """Post the period's plan. With `expect_plan` (the fingerprint a person confirmed), a
    plan that differs sends nothing and raises PlanChanged with the new plan. `trigger` says
    what started the run (app | cli | scheduled), for run history."""
    started = time.monotonic()
    calls_before = client.api_calls
    now = now_utc()
    with store.atomic():
        run = SyncRun.create(kind="sync", period=period, started_at=now, state="running", who=journal.who(),
                             trigger=trigger)
        owner = owner_name(run.id)
        run.owner = owner
        run.save()
        alive = hold_run(store, run.id)  # before the row is seen: never running without it
    try:
        return await _post(store, client, period, run, owner, started, calls_before, now, only_lines=only_lines,
                           progress=progress, expect_plan=expect_plan, today=today)
    finally:
        alive.release()


async def _post(store: Store, client: ConnectWiseClient, period: str, run: SyncRun, owner: str, started: float,
                calls_before: int, now: datetime, *, only_lines: set[str] | None, progress: Callable[[int, int], None] | None,
                expect_plan: str | None, today: date | None) -> SyncResult:
    system_log.write(store, Level.INFO, Category.SYNC, f"Sync of {period} started", f"run {run.id}")
    state = _Run(store, client, period, run, owner, progress)
    try:
        plan = await prepare_plan(store, client, period, only_lines=only_lines, today=today, run_id=run.id)
        state.result.fingerprint = plan.fingerprint
        run.fingerprint = plan.fingerprint
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
        await _read_held(state, updates, cancels)
        recorded: dict[str, Any] = {}
        if cancels:
            persistent = sync_reads.persistent_additions(store)
            recorded = {c.subscription_id: persistent.get(c.subscription_id) for c in cancels}
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
            held = recorded.get(action.subscription_id)
            await state.cancel(action, held.values if held is not None else None)
            state.tick()

        await all_or_stop([*(create(a) for a in creates), *(update(a) for a in updates), *(cancel(a) for a in cancels)])
        state.flush()
    except PlanChanged:
        _release_own_claims(store, owner)
        system_log.write(store, Level.WARNING, Category.SYNC, f"Sync of {period} refused: the plan changed",
                         f"run {run.id}: expected plan {expect_plan}; nothing was sent")
        _finish(run, "failed", client.api_calls - calls_before, started, note="the plan changed: nothing was sent")
        raise
    except (ConnectWiseError, CacheShrinkRefused) as error:
        # ConnectWise could not be read at all, or its agreements list shrank (before posting):
        # nothing was claimed for posting
        state.flush_quietly()
        _release_own_claims(store, owner)
        system_log.write(store, Level.ERROR, Category.SYNC, f"Sync of {period} failed: {error.message}", error.details())
        _finish(run, "failed", client.api_calls - calls_before, started, note=system_log.redact(error.message))
        _unknown_quietly(store, run.id)
        raise
    except BaseException as error:
        state.flush_quietly()  # what was posted is Synced, not released
        _release_own_claims(store, owner)
        _unknown_quietly(store, run.id)
        try:  # stopped from outside (ctrl+c, the app closing): interrupted; anything else: failed
            stopped = isinstance(error, (KeyboardInterrupt, asyncio.CancelledError, SystemExit))
            _finish(run, "interrupted" if stopped else "failed", client.api_calls - calls_before, started,
                    note=f"stopped: {type(error).__name__} {system_log.redact(str(error))}"[:500])
        except DATABASE_ERRORS:
            pass  # a row left running is shown interrupted once this process is gone
        raise
    with store.atomic():
        _free_side_claims(owner)
    result = state.result
    result.api_calls = client.api_calls - calls_before
    result.duration_s = time.monotonic() - started
    result.totals = {k: dict(v) for k, v in state.totals.items()}
    for name in ("created", "updated", "cancelled", "agreements_created", "skipped", "errors", "adopted", "unchanged",
                 "synced_lines"):
        setattr(run, name, getattr(result, name))
    per_currency: dict[str, Decimal] = defaultdict(Decimal)
    for (_, currency), total in result.totals.items():
        per_currency[currency] += total["amount"]
    run.totals = json.dumps({c: str(a) for c, a in sorted(per_currency.items())})
    _finish(run, "finished", result.api_calls, started,
            note=f"{result.errors} lines failed" if result.errors else None)
    system_log.write(
        store, Level.WARNING if result.errors else Level.INFO, Category.SYNC,
        f"Sync of {period} finished: {result.created} created, {result.updated} updated, {result.cancelled} cancelled, "
        f"{result.adopted} already in ConnectWise, {result.errors} errors",
        f"run {run.id}: {result.synced_lines} lines synced, {result.unchanged} subscriptions unchanged, "
        f"{result.agreements_created} agreements created, {result.skipped} lines skipped; {result.api_calls} API calls "
        f"in {result.duration_s:.1f} s; plan {result.fingerprint}",
    )
    return result


def _finish(run: SyncRun, state: str, api_calls: int, started: float, note: str | None = None) -> None:
    run.state = state
    run.finished_at = now_utc()
    run.api_calls = api_calls
    run.duration_s = time.monotonic() - started
    run.note = note
    run.save()


def _unknown_quietly(store: Store, run_id: int) -> None:
    """Entries of a run that stopped with requests in flight: their outcome is not known."""
    try:
        journal.pending_to_unknown(store, [run_id], "the run stopped before this request's outcome was known; the next "
                                                    "sync looks the marker up in ConnectWise")
    except DATABASE_ERRORS:
        pass  # they stay pending; the next run turns them unknown once this process is gone


async def all_or_stop(jobs: list[Awaitable[None]]) -> None:
    """Every job at once (the client bounds the requests in flight); the first that fails
    (the journal or the store cannot be written, ...) stops the others: nothing more is sent."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _read_held(state: _Run, updates: list[UpdateAddition], cancels: list[CancelAddition]) -> None:
    """What ConnectWise holds on the Additions the run will PATCH (the journal's values held
    before): one paged read of cw-tui's markers per agreement. An adopted update's were read
    with the plan."""
    wanted = {u.addition_id: u.agreement_id for u in updates if not u.adopted}
    wanted.update({c.addition_id: c.agreement_id for c in cancels})
    if not wanted:
        return
    state.held.update(dict.fromkeys(wanted))
    found = await read_markers(state.client, set(wanted.values()))
    for places in found.values():
        for place in places:
            if place.addition_id in wanted:
                state.held[place.addition_id] = place.values
