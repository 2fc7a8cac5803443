"""Claims: a line, subscription or contract is claimed in the store (one write transaction)
before any request is made for it; claims of runs that died are released, their lines
turned Error so that the next run looks their marker up first."""

from __future__ import annotations

import os
import socket
from datetime import datetime

from cw_tui.store import (
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
from cw_tui.store.database import owner_alive

_CHUNK = sync_reads.CHUNK


def owner_name(run_id: int) -> str:
    return f"{socket.gethostname()}|{os.getpid()}|{run_id}"


def hold_run(store: Store, run_id: int):
    """What tells every other cw-tui, on any machine, that run `run_id` is alive, for as long
    as it is held: call it in the transaction that creates the run's row, release it when the
    run ends (`.release()`, or as a context manager). On PostgreSQL the run's advisory lock on
    a connection of its own: a killed process, here or on another host, frees it at once, so
    the next run releases that run's claims. On SQLite nothing (the PID says it)."""
    return store.hold_run(run_id)


def _owner_alive(owner: str, claimed_at: datetime | None, now: datetime) -> bool:
    return owner_alive(owner, claimed_at, now)


def _free_side_claims(owner: str) -> None:
    """Free `owner`'s claims on subscriptions and contracts (call inside a transaction).
    A contract's agreement_claimed_at stays: the next run then looks the agreement up by
    name before creating one, in case this owner created it and died before recording it."""
    SubscriptionAddition.update(claimed_by=None, claimed_at=None).where(SubscriptionAddition.claimed_by == owner).execute()
    Contract.update(agreement_claimed_by=None).where(Contract.agreement_claimed_by == owner).execute()


def run_alive(owner: str | None) -> bool:
    """Whether a run's process still works on it (run history shows the others interrupted)."""
    return owner_alive(owner)


def release_stale_claims(store: Store, now: datetime | None = None, resolved_by: int | None = None) -> int:
    """Claims of runs that died. Their lines become Error (and are retried, marker looked up
    first, since their target agreement is recorded); their other claims are freed. Sync
    runs whose process is gone are recorded interrupted (resolved by `resolved_by`), and
    their journal entries still pending become unknown."""
    now = now or now_utc()
    released = 0
    owners = sync_reads.claim_owners(store)
    field_ = InvoiceLine.claimed_at
    dead = {r.owner for r in SyncRun.select(SyncRun.owner).where(SyncRun.kind.in_(("sync", "undo")) & (SyncRun.state == "running")
                                                                  & SyncRun.owner.is_null(False))
            if not run_alive(r.owner)}
    for owner, claimed_at_text in owners:
        claimed_at = field_.python_value(claimed_at_text) if claimed_at_text else None
        if _owner_alive(owner, claimed_at, now):
            continue
        dead.add(owner)
        with store.atomic("IMMEDIATE"):
            released += (
                InvoiceLine.update(sync_status="error", claimed_by=None, claimed_at=None,
                                   last_error="a sync was interrupted while posting this line; the next sync checks "
                                              "ConnectWise for it before posting")
                .where((InvoiceLine.claimed_by == owner) & (InvoiceLine.sync_status == "claimed")).execute()
            )
            InvoiceLine.update(claimed_by=None, claimed_at=None).where(InvoiceLine.claimed_by == owner).execute()
            _free_side_claims(owner)
    journal.mark_interrupted(store, sorted(dead), resolved_by)
    return released


def _claim_lines(store: Store, owner: str, line_ids: list[str], now: datetime) -> set[str]:
    return sync_reads.claim_lines(store, owner, line_ids, utc_to_text(now))


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
