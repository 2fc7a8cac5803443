"""The store's side of undoing a sync run (SPEC §15; the plan is rules/undo_plan.py, the run
sync/undo.py): the run's journal in the plan's terms, what earlier undos and later runs did,
the undo's claims, and what each reverted item changes in the store. Each write is its own
short transaction, committed with the journal entry it belongs to.

Claims: an undo holds the lines the run synced (they stay Synced while claimed), the
subscriptions whose persistent Addition it touches and the contracts whose agreement it may
delete, with the same `claimed_by` columns a sync uses: a sync never takes a claimed row, and
an undo never starts on rows a sync (or another undo) holds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import peewee as pw

from cw_tui.rules.additions import VALUE_FIELDS, AdditionValues
from cw_tui.rules.undo_plan import Later, Written
from cw_tui.rules.words import plural
from cw_tui.store.database import Store
from cw_tui.store.fields import now_utc, utc_to_text
from cw_tui.store.journal import JournalAction, values_from_json
from cw_tui.store.models import Agreement, Contract, InvoiceLine, JournalEntry, SubscriptionAddition, SyncRun

CHUNK = 500
_LATER_WORDS = {"create": "posted it again", "update": "updated it", "cancel": "cancelled it", "adopt": "adopted it"}


def _chunks(items: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _in(store: Store, sql: str, keys: list[Any], *params: Any) -> list[tuple]:
    """`sql` with `{keys}` standing for a placeholder list, run chunk by chunk."""
    rows: list[tuple] = []
    for chunk in _chunks(sorted(set(keys))):
        rows += store.db.execute_sql(sql.format(keys=",".join("?" * len(chunk))), [*params, *chunk]).fetchall()
    return rows


def written(actions: Iterable[JournalAction]) -> list[Written]:
    """A run's done entries in the plan's terms."""
    return [Written(a.id, a.action, a.marker, a.agreement_id, a.addition_id, a.subscription_id, a.customer, a.currency,
                    a.line_ids, values_from_json(a.before), values_from_json(a.after), a.sent)
            for a in actions if a.outcome == "done" and a.action in ("create", "update", "cancel", "adopt", "new_agreement")]


def undone_by(store: Store, entry_ids: list[int]) -> dict[int, int]:
    """entry id -> the undo run whose done entry reverted it."""
    return {undoes: run_id for undoes, run_id in _in(
        store, "SELECT undoes_id, run_id FROM journal WHERE outcome = 'done' AND undoes_id IN ({keys})", entry_ids)}


def later_changes(store: Store, run_id: int, entries: list[Written]) -> dict[int, Later]:
    """entry id -> the later run standing in the way: a done write of the same marker by a
    later run that no undo reverted, or lines of a later run synced onto the same Addition."""
    by_marker: dict[str, list[Written]] = defaultdict(list)
    for w in entries:
        if w.marker:
            by_marker[w.marker].append(w)
    result: dict[int, Later] = {}
    rows = _in(store, "SELECT j.id, j.run_id, j.period, j.action, j.marker FROM journal j WHERE j.outcome = 'done' "
                      "AND j.action IN ('create', 'update', 'cancel', 'adopt') AND j.run_id != ? AND j.marker IN ({keys}) "
                      "AND NOT EXISTS (SELECT 1 FROM journal u WHERE u.undoes_id = j.id AND u.outcome = 'done') "
                      "ORDER BY j.id", list(by_marker), run_id)
    for journal_id, later_run, period, action, marker_ in rows:
        for w in by_marker.get(marker_, []):
            if journal_id > w.id and w.id not in result:
                result[w.id] = Later(later_run, period, _LATER_WORDS.get(action, action))
    additions = {w.addition_id: w for w in entries if w.addition_id is not None}
    for addition_id, later_run, period, count in _in(
            store, "SELECT addition_id, posted_run_id, period, COUNT(*) FROM invoice_line WHERE sync_status = 'synced' "
                   "AND posted_run_id > ? AND addition_id IN ({keys}) GROUP BY addition_id, posted_run_id, period "
                   "ORDER BY posted_run_id", list(additions), run_id):
        w = additions[addition_id]
        if w.id not in result:
            result[w.id] = Later(later_run, period, f"synced {count} lines of {period} onto it")
    return result


def lines_by_addition(store: Store, run_id: int) -> dict[int, tuple[str, ...]]:
    """addition id -> the lines this run synced onto it that are still Synced."""
    result: dict[int, list[str]] = defaultdict(list)
    for addition_id, line_id in store.db.execute_sql(
            "SELECT addition_id, line_id FROM invoice_line WHERE posted_run_id = ? AND sync_status = 'synced' "
            "AND addition_id IS NOT NULL ORDER BY line_id", (run_id,)):
        result[addition_id].append(line_id)
    return {k: tuple(v) for k, v in result.items()}


def run_kind(store: Store, run_id: int) -> str | None:
    row = SyncRun.get_or_none(SyncRun.id == run_id)
    return row.kind if row is not None else None


# --- claims

def claim(store: Store, owner: str, run_id: int, subscription_ids: list[str], contract_ids: list[str]) -> list[str]:
    """Claims, in one write transaction, the lines run `run_id` synced and the subscriptions
    and contracts the undo touches. Returns what others hold (empty: all claimed); then
    nothing is kept."""
    stamp = utc_to_text(now_utc())
    busy: list[str] = []
    with store.atomic("IMMEDIATE"):
        cursor = store.db.cursor()
        cursor.execute("UPDATE invoice_line SET claimed_by = ?, claimed_at = ? WHERE posted_run_id = ? "
                       "AND sync_status = 'synced' AND claimed_by IS NULL", (owner, stamp, run_id))
        for (holder, count) in cursor.execute(
                "SELECT claimed_by, COUNT(*) FROM invoice_line WHERE posted_run_id = ? AND sync_status = 'synced' "
                "AND claimed_by IS NOT NULL AND claimed_by != ? GROUP BY claimed_by", (run_id, owner)).fetchall():
            busy.append(f"{plural(count, 'of its lines', 'of its lines')} ({_holder(holder)})")
        S = SubscriptionAddition
        for chunk in _chunks(sorted(set(subscription_ids))):
            S.update(claimed_by=owner, claimed_at=now_utc()).where(S.subscription_id.in_(chunk) & S.claimed_by.is_null()).execute()
            for (holder, count) in S.select(S.claimed_by, _count()).where(
                    S.subscription_id.in_(chunk) & S.claimed_by.is_null(False) & (S.claimed_by != owner)
            ).group_by(S.claimed_by).tuples():
                busy.append(f"{plural(count, 'subscription')} ({_holder(holder)})")
        C = Contract
        for chunk in _chunks(sorted(set(contract_ids))):
            C.update(agreement_claimed_by=owner, agreement_claimed_at=now_utc()).where(
                C.platform_id.in_(chunk) & C.agreement_claimed_by.is_null()).execute()
            for (holder, count) in C.select(C.agreement_claimed_by, _count()).where(
                    C.platform_id.in_(chunk) & C.agreement_claimed_by.is_null(False) & (C.agreement_claimed_by != owner)
            ).group_by(C.agreement_claimed_by).tuples():
                busy.append(f"{plural(count, 'contract')} ({_holder(holder)})")
    if busy:
        release(store, owner)
    return busy


def _count() -> Any:
    return pw.fn.COUNT(pw.SQL("*"))


def _holder(owner: str | None) -> str:
    """"run 12 on host-a": whose claim it is, in a person's words."""
    host, _, rest = (owner or "").partition("|")
    run = rest.rpartition("|")[2]
    return f"run {run} on {host}" if run else (owner or "another run")


def release(store: Store, owner: str) -> None:
    """The undo's claims go back (its lines not yet reverted stay Synced)."""
    with store.atomic():
        InvoiceLine.update(claimed_by=None, claimed_at=None).where(InvoiceLine.claimed_by == owner).execute()
        SubscriptionAddition.update(claimed_by=None, claimed_at=None).where(SubscriptionAddition.claimed_by == owner).execute()
        Contract.update(agreement_claimed_by=None, agreement_claimed_at=None).where(
            Contract.agreement_claimed_by == owner).execute()


# --- what a reverted item changes (each with its journal entry, in one transaction)

def _lines_not_synced(owner: str, line_ids: Iterable[str]) -> int:
    """Back to Not Synced; the people's edits (overrides, charge dates) stay."""
    changed = 0
    for chunk in _chunks(sorted(set(line_ids))):
        changed += InvoiceLine.update(sync_status="not_synced", addition_id=None, posted_agreement_id=None,
                                      posted_run_id=None, last_error=None, claimed_by=None, claimed_at=None).where(
            InvoiceLine.line_id.in_(chunk) & (InvoiceLine.claimed_by == owner) & (InvoiceLine.sync_status == "synced")
        ).execute()
    return changed


def _last_period(subscription_id: str) -> None:
    """A subscription's last synced period, from the lines still Synced onto its Addition."""
    S = SubscriptionAddition
    row = InvoiceLine.select(InvoiceLine.period).where(
        (InvoiceLine.subscription_id == subscription_id) & (InvoiceLine.sync_status == "synced")
    ).order_by(InvoiceLine.period.desc()).first()
    S.update(last_period=row.period if row else None).where(S.subscription_id == subscription_id).execute()


def deleted(store: Store, owner: str, journal_id: int, *, addition_id: int, subscription_id: str | None,
            line_ids: Iterable[str]) -> int:
    """An Addition the undo deleted (or found gone): its entry done, its lines Not Synced, its
    subscription's record gone (the next sync creates it again). Returns the lines changed."""
    with store.atomic():
        if journal_id:
            _done(journal_id)
        changed = _lines_not_synced(owner, line_ids)
        if subscription_id:
            SubscriptionAddition.delete().where((SubscriptionAddition.subscription_id == subscription_id)
                                                & (SubscriptionAddition.addition_id == addition_id)).execute()
    return changed


def restored(store: Store, owner: str, journal_id: int | None, *, subscription_id: str | None,
             values: AdditionValues | None, line_ids: Iterable[str]) -> int:
    """An Addition back to `values` (a restore or an end; None: the lines only): its entry
    done, its lines Not Synced, its subscription's record holding those values again."""
    with store.atomic():
        if journal_id:
            _done(journal_id)
        changed = _lines_not_synced(owner, line_ids)
        if subscription_id and values is not None:
            S = SubscriptionAddition
            fields: dict[Any, Any] = {getattr(S, name): getattr(values, name) for name in VALUE_FIELDS}
            fields[S.state] = "cancelled" if values.cancelled_date is not None else "active"
            fields[S.updated_at] = now_utc()
            S.update(fields).where(S.subscription_id == subscription_id).execute()
        if subscription_id:
            _last_period(subscription_id)
    return changed


def _done(journal_id: int) -> None:
    JournalEntry.update(outcome="done", finished_at=now_utc()).where(JournalEntry.id == journal_id).execute()


def agreement_deleted(store: Store, journal_id: int, agreement_id: int) -> None:
    """An agreement the undo deleted: no contract maps to it any more (the next sync creates
    one again), and it leaves the cache."""
    with store.atomic():
        _done(journal_id)
        Contract.update(agreement_id=None, agreement_claimed_by=None, agreement_claimed_at=None).where(
            Contract.agreement_id == agreement_id).execute()
        Agreement.delete().where(Agreement.id == agreement_id).execute()


def resolve_attempts(store: Store, entry_id: int, run_id: int, applied: bool) -> int:
    """Earlier undo attempts of this entry whose outcome was not known (a timeout, a killed
    undo), now that ConnectWise was read: applied (done) or never applied (error)."""
    where = (JournalEntry.undoes_id == entry_id) & JournalEntry.outcome.in_(("pending", "unknown")) \
        & (JournalEntry.run_id != run_id)
    if not JournalEntry.select(JournalEntry.id).where(where).exists():
        return 0
    with store.atomic():
        return JournalEntry.update(
            outcome="done" if applied else "error", resolved_at=now_utc(), resolved_run_id=run_id,
            resolution=(f"ConnectWise held what it meant when undo run {run_id} looked" if applied
                        else f"not applied in ConnectWise when undo run {run_id} looked"),
            **({} if applied else {"error_message": "not applied in ConnectWise"}),
        ).where(where).execute()
