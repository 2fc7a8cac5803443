"""Undo a sync run (SPEC §15): `prepare_undo` reads the run's journal and what ConnectWise holds
now and gives the plan (rules/undo_plan.py); a person confirms its fingerprint; `run_undo`
executes it, or raises PlanChanged when the plan is not what was confirmed.

An undo is a run of its own, held to the sync's guarantees:
- It is recorded (kind "undo", naming the run it undoes) and claims, in one write
  transaction, the lines, subscriptions and contracts it touches before anything is sent;
  rows a sync or another undo holds stop it before it sends anything.
- Every DELETE and PATCH is journaled (pending) before it is sent, naming the entry it
  reverts. When the answer is lost (a timeout, a dropped connection, a kill), the Addition is
  read back before anything is sent again: a DELETE ConnectWise took is never sent twice, and
  the next undo finds what an interrupted one did.
- An entry an undo reverted is never reverted again: undoing twice does nothing the second time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cw_tui.rules import undo_plan as rules
from cw_tui.rules.additions import AdditionValues
from cw_tui.rules.undo_plan import UndoItem, UndoPlan
from cw_tui.services import system_log
from cw_tui.services.connectwise import (
    AuthenticationFailed,
    ConnectWiseClient,
    ConnectWiseError,
    NotFound,
    PermissionDenied,
    RequestRejected,
)
from cw_tui.services.connectwise.conditions import condition
from cw_tui.services.system_log import Category, Level
from cw_tui.store import DATABASE_ERRORS, Store, SyncRun, journal, now_utc
from cw_tui.store import undo as store_undo
from cw_tui.sync.claims import hold_run, owner_name, release_stale_claims, run_alive
from cw_tui.sync.errors import PlanChanged
from cw_tui.sync.plan import ADDITION_FIELDS, read_markers, values_in_connectwise
from cw_tui.sync.run import all_or_stop

ATTEMPTS = 3  # sends of one item, each after a look at what ConnectWise holds


class UndoRefused(Exception):
    """The run cannot be undone now (it does not exist, is still running, is an undo, or a
    sync holds part of it); nothing was sent."""


@dataclass
class UndoResult:
    run_id: int  # the undo run
    undoes_run_id: int
    period: str | None
    fingerprint: str = ""
    deleted: int = 0
    restored: int = 0
    ended: int = 0
    agreements_deleted: int = 0
    released: int = 0  # items with nothing to send whose lines returned
    refused: int = 0
    kept: int = 0
    errors: int = 0
    lines_not_synced: int = 0
    api_calls: int = 0
    duration_s: float = 0.0
    error_messages: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("deleted", "restored", "ended", "agreements_deleted", "released",
                                               "refused", "kept", "errors", "lines_not_synced")}

    def as_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "undoes_run_id": self.undoes_run_id, "period": self.period,
                "fingerprint": self.fingerprint, **self.counts(), "api_calls": self.api_calls,
                "duration_s": round(self.duration_s, 3), "error_messages": self.error_messages}


def _target(store: Store, run_id: int) -> journal.RunDetail:
    detail = journal.run_detail(store, run_id, alive=lambda owner, _since: run_alive(owner))
    if detail is None:
        raise UndoRefused(f"there is no run {run_id}: `cw-tui runs` lists them")
    kind = store_undo.run_kind(store, run_id)
    if kind == "undo":
        raise UndoRefused(f"run {run_id} is an undo: sync {detail.run.period or 'the month'} again instead")
    if kind != "sync":
        raise UndoRefused(f"run {run_id} is a {kind}, not a sync: only a sync's writes can be undone")
    if detail.run.state == "running":
        raise UndoRefused(f"run {run_id} is still running: undo it when it has finished")
    return detail


async def _held(client: ConnectWiseClient, places: dict[int, int]) -> dict[int, AdditionValues | None]:
    """addition id -> what ConnectWise holds (None: not there). One paged read of cw-tui's
    markers per agreement; an Addition not found by its marker (a person changed its serial
    number) is looked up by its ID before it counts as gone."""
    found = await read_markers(client, set(places.values()))
    held: dict[int, AdditionValues | None] = dict.fromkeys(places)
    for group in found.values():
        for place in group:
            if place.addition_id in held:
                held[place.addition_id] = place.values
    missing = [a for a, v in held.items() if v is None]
    for addition_id, values in zip(missing, await asyncio.gather(*(_one(client, places[a], a) for a in missing)),
                                   strict=True):
        held[addition_id] = values
    return held


async def _one(client: ConnectWiseClient, agreement_id: int, addition_id: int) -> AdditionValues | None:
    try:
        found = await client.additions(agreement_id, condition("id", "=", addition_id), fields=ADDITION_FIELDS)
    except NotFound:
        return None  # the agreement is gone, and with it the Addition
    return values_in_connectwise(found[0]) if found else None


async def _invoiced_through(client: ConnectWiseClient, agreement_ids: set[int]) -> dict[int, tuple[int, int] | None]:
    """agreement id -> the last month ConnectWise invoiced it (API-NOTES §2.7a: invoices of type
    Agreement, dated in the month they bill)."""
    async def one(agreement_id: int) -> tuple[int, int] | None:
        try:
            invoices = await client.invoices(agreement_id=agreement_id)
        except NotFound:
            return None
        months = [(int(i.date[:4]), int(i.date[5:7])) for i in invoices if i.date and len(i.date) >= 7]
        return max(months) if months else None

    ordered = sorted(agreement_ids)
    return dict(zip(ordered, await asyncio.gather(*(one(a) for a in ordered)), strict=True))


async def _agreements_now(client: ConnectWiseClient, created: list[rules.Written], deleting: dict[int, set[int]],
                          invoiced: dict[int, tuple[int, int] | None]) -> dict[int, rules.AgreementNow]:
    async def one(agreement_id: int) -> rules.AgreementNow:
        try:
            agreement = await client.agreement(agreement_id)
            additions = await client.additions(agreement_id, fields="id")
        except NotFound:
            return rules.AgreementNow(False)
        others = [a.id for a in additions if a.id not in deleting.get(agreement_id, set())]
        return rules.AgreementNow(True, agreement.name or "", agreement.type.id if agreement.type else None,
                                  agreement.company.id if agreement.company else None, len(others),
                                  invoiced.get(agreement_id) is not None)

    ids = sorted({w.agreement_id for w in created if w.agreement_id is not None})
    return dict(zip(ids, await asyncio.gather(*(one(a) for a in ids)), strict=True))


async def _unresolved(client: ConnectWiseClient, detail: journal.RunDetail) -> list[rules.Written]:
    """The run's creates whose outcome is still not known (it was killed, an answer was lost):
    the ones ConnectWise holds count as created by the run (they are undone too)."""
    unknown = [a for a in detail.actions if a.action == "create" and a.outcome in ("pending", "unknown")
               and a.marker and a.agreement_id is not None]
    if not unknown:
        return []
    found = await read_markers(client, {a.agreement_id for a in unknown if a.agreement_id is not None})
    done_markers = {a.marker for a in detail.actions if a.outcome == "done"}
    result = []
    for a in unknown:
        hit = next((f for f in found.get(a.marker or "", []) if f.agreement_id == a.agreement_id), None)
        if hit is None or a.marker in done_markers:
            continue
        done_markers.add(a.marker)  # the first unknown attempt is the one that created it
        result.append(rules.Written(a.id, "create", a.marker, a.agreement_id, hit.addition_id, a.subscription_id,
                                    a.customer, a.currency, a.line_ids, None, journal.values_from_json(a.after), a.sent))
    return result


async def prepare_undo(store: Store, client: ConnectWiseClient, run_id: int, *, end_invoiced: bool = False,
                       resolved_by: int | None = None) -> UndoPlan:
    """The undo plan of sync run `run_id`, from its journal and what ConnectWise holds now.
    Sends nothing and writes nothing but the release of dead runs' claims."""
    release_stale_claims(store, resolved_by=resolved_by)
    detail = _target(store, run_id)
    unresolved = await _unresolved(client, detail)
    written = store_undo.written(detail.actions) + unresolved
    ids = [w.id for w in written]
    undone = store_undo.undone_by(store, ids)
    later = store_undo.later_changes(store, run_id, written)
    lines = store_undo.lines_by_addition(store, run_id)
    places = {w.addition_id: w.agreement_id for w in written
              if w.addition_id is not None and w.agreement_id is not None and w.id not in undone}
    held = await _held(client, places)
    agreements = {w.agreement_id for w in written if w.agreement_id is not None and w.id not in undone}
    invoiced = await _invoiced_through(client, agreements)
    created = [w for w in written if w.action == "new_agreement" and w.id not in undone]
    deleting: dict[int, set[int]] = {}
    for w in written:
        if w.action == "create" and w.agreement_id is not None and w.addition_id is not None:
            deleting.setdefault(w.agreement_id, set()).add(w.addition_id)
    agreements_now = await _agreements_now(client, created, deleting, invoiced) if created else {}
    return rules.plan_undo(run_id, detail.run.period, written, undone=undone, later=later, held=held,
                           invoiced_through=invoiced, agreements=agreements_now, lines_by_addition=lines,
                           end_invoiced=end_invoiced)


class _Undo:
    def __init__(self, store: Store, client: ConnectWiseClient, run: SyncRun, owner: str, result: UndoResult,
                 progress: Callable[[int, int], None] | None):
        self.store, self.client, self.run, self.owner, self.result = store, client, run, owner, result
        self.progress = progress
        self.person = journal.who()
        self.done = 0
        self.total = 0
        self.unresolved_creates: set[int] = set()  # entries of the run whose create was found by a look

    def tick(self) -> None:
        self.done += 1
        if self.progress:
            self.progress(self.done, self.total)

    def begin(self, item: UndoItem, action: str, **fields: Any) -> int:
        return journal.begin(self.store, self.run.id, self.run.period, action, person=self.person, undoes_id=item.entry_id,
                             marker=item.marker, agreement_id=item.agreement_id, addition_id=item.addition_id,
                             subscription_id=item.subscription_id, customer=item.customer, currency=item.currency,
                             line_ids=item.line_ids, **fields)

    def error(self, item: UndoItem, entry: int | None, error: ConnectWiseError, *, looked: bool) -> None:
        if entry is not None:
            journal.failed(self.store, entry, outcome="error" if looked or isinstance(error, RequestRejected) else "unknown",
                           status=error.status, code=error.code, message=system_log.redact(error.message))
        what = f"addition {item.addition_id}" if item.addition_id else f"agreement {item.agreement_id}"
        message = f"Could not undo {item.action} of {what}: {system_log.redact(error.message)}"
        self.result.errors += 1
        self.result.error_messages.append(message[:300])
        system_log.write(self.store, Level.ERROR, Category.SYNC, message[:200], error.details())

    def earlier_attempts(self, item: UndoItem) -> None:
        """An interrupted undo's attempt of this item: did it apply? (The plan read ConnectWise.)"""
        if item.entry_id is not None:
            store_undo.resolve_attempts(self.store, item.entry_id, self.run.id, applied=item.kind == rules.RELEASE)
        if item.entry_id in self.unresolved_creates:
            journal.resolve_unknown(self.store, item.marker or "", self.run.id, found_addition=item.addition_id,
                                    agreement_id=item.agreement_id, looked_at=[item.agreement_id] if item.agreement_id else None)

    async def look(self, item: UndoItem) -> AdditionValues | None:
        assert item.agreement_id is not None and item.addition_id is not None
        return await _one(self.client, item.agreement_id, item.addition_id)

    async def send(self, item: UndoItem, action: str, request: Callable[[], Awaitable[Any]],
                   applied: Callable[[AdditionValues | None], bool], final: tuple[type[ConnectWiseError], ...],
                   **fields: Any) -> int | None:
        """Journal, send, and on a lost or odd answer read the Addition back: `applied(what it
        holds)` says whether ConnectWise took it; if not, send again (at most ATTEMPTS times).
        `final` errors are ConnectWise's refusal: not looked at, not retried. Returns the done
        entry, or None when it failed (recorded)."""
        for attempt in range(ATTEMPTS):
            entry = self.begin(item, action, **fields)
            try:
                await request()
                return entry
            except ConnectWiseError as error:
                if isinstance(error, final):
                    self.error(item, entry, error, looked=False)
                    return None
                try:
                    now = await self.look(item)  # a lost answer, a retry answered 404: did it apply?
                except ConnectWiseError as second:
                    self.error(item, entry, second, looked=False)
                    return None
                if applied(now):
                    return entry
                journal.failed(self.store, entry, status=error.status, code=error.code,
                               message=f"not applied: {system_log.redact(error.message)}"[:2000])
                if attempt == ATTEMPTS - 1:
                    self.error(item, None, error, looked=True)
        return None

    async def delete(self, item: UndoItem) -> None:
        self.earlier_attempts(item)
        agreement_id, addition_id = item.agreement_id, item.addition_id
        assert agreement_id is not None and addition_id is not None
        entry = await self.send(item, "delete", lambda: self.client.delete_addition(agreement_id, addition_id),
                                lambda now: now is None, (RequestRejected, PermissionDenied, AuthenticationFailed),
                                before=item.held)
        if entry is None:
            return
        self.result.lines_not_synced += store_undo.deleted(self.store, self.owner, entry, addition_id=addition_id,
                                                           subscription_id=item.subscription_id, line_ids=item.line_ids)
        self.result.deleted += 1

    async def patch(self, item: UndoItem, action: str) -> None:
        """A restore (the values held before) or an end (a cancelled date after the invoiced months)."""
        self.earlier_attempts(item)
        agreement_id, addition_id = item.agreement_id, item.addition_id
        assert agreement_id is not None and addition_id is not None and item.restore_to is not None
        entry = await self.send(item, action, lambda: self.client.patch_addition(agreement_id, addition_id, item.changes),
                                lambda now: now == item.restore_to,
                                (RequestRejected, NotFound, PermissionDenied, AuthenticationFailed),
                                sent=item.changes, before=item.held, after=item.restore_to)
        if entry is None:
            return
        lines = item.line_ids if action == "restore" else ()
        self.result.lines_not_synced += store_undo.restored(self.store, self.owner, entry, subscription_id=item.subscription_id,
                                                            values=item.restore_to, line_ids=lines)
        if action == "restore":
            self.result.restored += 1
        else:
            self.result.ended += 1

    def release(self, item: UndoItem) -> None:
        """Nothing to send: the lines return to Not Synced (and a gone Addition's record goes)."""
        self.earlier_attempts(item)
        if item.reason == "gone" and item.action == "create" and item.addition_id is not None:
            changed = store_undo.deleted(self.store, self.owner, 0, addition_id=item.addition_id,
                                         subscription_id=item.subscription_id, line_ids=item.line_ids)
        else:
            restore = item.held if item.reason == "same" else None
            changed = store_undo.restored(self.store, self.owner, None, subscription_id=item.subscription_id,
                                          values=restore, line_ids=item.line_ids)
        self.result.lines_not_synced += changed
        self.result.released += 1

    async def delete_agreement(self, item: UndoItem) -> None:
        assert item.agreement_id is not None
        try:
            left = await self.client.additions(item.agreement_id, fields="id")
        except NotFound:
            left = []
        except ConnectWiseError as error:
            self.error(item, None, error, looked=False)
            return
        if left:  # something is on it now (an Addition this undo could not delete, or a person's)
            self.result.kept += 1
            system_log.write(self.store, Level.INFO, Category.SYNC, f"Agreement {item.agreement_id} kept",
                             f"undo run {self.run.id}: it still holds {len(left)} additions")
            return
        entry = self.begin(item, "delete_agreement", contract_id=None)
        try:
            await self.client.delete_agreement(item.agreement_id)
        except ConnectWiseError as error:
            if not isinstance(error, NotFound):
                self.error(item, entry, error, looked=isinstance(error, RequestRejected))
                return
        store_undo.agreement_deleted(self.store, entry, item.agreement_id)
        self.result.agreements_deleted += 1


async def run_undo(store: Store, client: ConnectWiseClient, run_id: int, *, expect_plan: str | None = None,
                   end_invoiced: bool = False, progress: Callable[[int, int], None] | None = None,
                   trigger: str = "cli") -> UndoResult:
    """Undo sync run `run_id` (see the module's docstring). With `expect_plan` (the fingerprint a
    person confirmed) a plan that differs sends nothing and raises PlanChanged."""
    started = time.monotonic()
    calls_before = client.api_calls
    detail = _target(store, run_id)
    with store.atomic():
        run = SyncRun.create(kind="undo", period=detail.run.period, started_at=now_utc(), state="running",
                             who=journal.who(), trigger=trigger, undoes_run_id=run_id)
        owner = owner_name(run.id)
        run.owner = owner
        run.save()
        alive = hold_run(store, run.id)  # on PostgreSQL: alive for every other cw-tui while held
    try:
        return await _undo(store, client, run, owner, detail, started, calls_before, expect_plan=expect_plan,
                           end_invoiced=end_invoiced, progress=progress)
    finally:
        alive.release()


async def _undo(store: Store, client: ConnectWiseClient, run: SyncRun, owner: str, detail: journal.RunDetail,
                started: float, calls_before: int, *, expect_plan: str | None, end_invoiced: bool,
                progress: Callable[[int, int], None] | None) -> UndoResult:
    run_id = detail.run.id
    result = UndoResult(run.id, run_id, detail.run.period)
    system_log.write(store, Level.INFO, Category.SYNC, f"Undo of run {run_id} started", f"undo run {run.id}")
    state = _Undo(store, client, run, owner, result, progress)
    try:
        subscriptions = sorted({a.subscription_id for a in detail.actions if a.subscription_id})
        contracts = sorted({a.contract_id for a in detail.actions if a.contract_id})
        busy = store_undo.claim(store, owner, run_id, subscriptions, contracts)
        if busy:
            raise UndoRefused(f"another run is working on part of run {run_id} ({'; '.join(busy)}): nothing was sent; "
                              "undo it when that run has finished")
        plan = await prepare_undo(store, client, run_id, end_invoiced=end_invoiced, resolved_by=run.id)
        result.fingerprint = run.fingerprint = plan.fingerprint
        if expect_plan is not None and plan.fingerprint != expect_plan:
            raise PlanChanged(f"the undo plan of run {run_id} changed since it was shown (it was {expect_plan}, it is "
                              f"now {plan.fingerprint}): nothing was sent; review the new plan")
        state.unresolved_creates = _unknown_ids(detail)
        result.refused = len(plan.refused)
        result.kept = len(plan.of(rules.KEEP))
        for item in plan.refused:
            system_log.write(store, Level.WARNING, Category.SYNC,
                             f"Undo of run {run_id}: {item.action} of addition {item.addition_id} refused ({item.reason})",
                             f"{item.detail}{'; instead: ' + item.alternative if item.alternative else ''}")
        for item in plan.of(rules.RELEASE):
            state.release(item)
        sends = [i for i in plan.sends if i.kind != rules.DELETE_AGREEMENT]
        state.total = len(plan.sends)

        async def one(item: UndoItem) -> None:
            if item.kind == rules.DELETE:
                await state.delete(item)
            else:
                await state.patch(item, "restore" if item.kind == rules.RESTORE else "end")
            state.tick()

        await all_or_stop([one(i) for i in sends])
        for item in plan.of(rules.DELETE_AGREEMENT):
            await state.delete_agreement(item)
            state.tick()
    except (UndoRefused, PlanChanged) as refused:
        store_undo.release(store, owner)
        _finish(run, "failed", result, client.api_calls - calls_before, started, note=str(refused))
        system_log.write(store, Level.WARNING, Category.SYNC, f"Undo of run {run_id} refused", str(refused))
        raise
    except BaseException as error:
        try:
            store_undo.release(store, owner)
            journal.pending_to_unknown(store, [run.id], "the undo stopped before this request's outcome was known; "
                                                        "the next undo of the run reads ConnectWise first")
            stopped = isinstance(error, (KeyboardInterrupt, asyncio.CancelledError, SystemExit))
            message = system_log.redact(getattr(error, "message", None) or str(error))
            _finish(run, "interrupted" if stopped else "failed", result, client.api_calls - calls_before, started,
                    note=f"stopped: {type(error).__name__} {message}"[:500])
        except DATABASE_ERRORS:
            pass  # a row left running shows interrupted once this process is gone
        raise
    store_undo.release(store, owner)
    _finish(run, "finished", result, client.api_calls - calls_before, started,
            note=f"{result.errors} items failed" if result.errors else None)
    system_log.write(
        store, Level.WARNING if result.errors or result.refused else Level.INFO, Category.SYNC,
        f"Undo of run {run_id} finished: {result.deleted} deleted, {result.restored} restored, {result.refused} refused, "
        f"{result.errors} errors",
        f"undo run {run.id}: {result.lines_not_synced} lines back to Not Synced, {result.ended} ended, "
        f"{result.agreements_deleted} agreements deleted, {result.released} with nothing to send; {result.api_calls} "
        f"API calls in {result.duration_s:.1f} s; plan {result.fingerprint}",
    )
    return result


def _unknown_ids(detail: journal.RunDetail) -> set[int]:
    return {a.id for a in detail.actions if a.action == "create" and a.outcome in ("pending", "unknown")}


def _finish(run: SyncRun, state: str, result: UndoResult, api_calls: int, started: float, note: str | None = None) -> None:
    result.api_calls = api_calls
    result.duration_s = time.monotonic() - started
    run.state = state
    run.finished_at = now_utc()
    run.api_calls = api_calls
    run.duration_s = result.duration_s
    run.errors = result.errors
    run.synced_lines = result.lines_not_synced
    run.counts = json.dumps(result.counts(), sort_keys=True)
    run.note = note[:500] if note else None
    run.save()
