"""The journal of every write to ConnectWise, run history, and the reads reconciliation needs
(SPEC §10, §15). Pure queries answering plain dataclasses and dicts: no textual, no model
leaves this module. The sync engine writes through the `begin`/`done`/`failed`/... functions
below; the CLI (`cw-tui runs`, `cw-tui reconcile`) and the app read through the others.

Reads (for the CLI and the screens)

    list_runs(store, period=None, *, kind=None, alive=None) -> list[RunSummary]
        Runs, newest first: syncs and undos (`kind` "sync" or "undo": only those); `period`
        "YYYY-MM" limits them to one month. A run still marked
        running whose process is gone shows `state == "interrupted"` (until a later run
        releases its claims and records it as interrupted for good, `resolved_run_id` set).
        `alive(owner, started_at)` is the liveness check; by default the store's own
        (`owner_alive`, the one sync/claims.py uses).
    run_detail(store, run_id, *, alive=None) -> RunDetail | None
        A run's summary and every journal entry it wrote (`actions`), oldest first, plus the
        entries of earlier runs it resolved (`resolved`).
    journal_for_line(store, line_id) -> list[JournalAction]
        Every journal entry that touched an invoice line (line detail), oldest first.
    run_actions_source(run_id)
        The shared SQL grid's source over one run's actions: store/journal_reads.py gives
        the columns their display; its SQL is RUN_ACTIONS_FROM / RUN_ACTION_COLUMNS below.
    entry(store, journal_id) -> JournalAction | None

    RunSummary: id, period, state, stored_state, who, trigger, fingerprint, started_at,
        finished_at (aware UTC datetimes), duration_s, created, updated, cancelled, adopted,
        unchanged, agreements_created, skipped, errors, synced_lines, api_calls,
        totals {currency: Decimal}, note, resolved_run_id, actions {outcome: count}, kind (sync |
        undo), undoes_run_id (an undo: the run it undoes), counts (an undo's tallies: deleted,
        restored, ended, agreements_deleted, released, refused, kept, errors, lines_not_synced),
        undone_by (a sync: its finished undo runs, oldest first) and undone ("", "undone" or
        "partly undone": the newest of them refused items or had errors).
    JournalAction: id, run_id, period, action (create | update | cancel | adopt |
        new_agreement), marker, agreement_id, addition_id, subscription_id, contract_id,
        customer, currency, line_ids (tuple), sent / before / after (dicts of JSON values:
        Decimals as text, dates as YYYY-MM-DD, or None), amount (Decimal | None), outcome
        (pending | done | error | unknown), error_status, error_code, error_message,
        written_at, finished_at, resolved_at, resolved_run_id, resolution, who.

Reads for reconciliation (sync/reconcile.py)

    posted_for_month(store, period) -> dict[marker, Posted]
    last_posted(store, markers) -> dict[marker, Posted]
    journal_markers(store) -> set[str]
    lines_not_posted(store, period) -> list[NotPosted]
    invoiced(store, period) -> dict[(customer, currency), (lines, Decimal amount)]

Writes (the sync engine's; each commits at once, before the request it records goes out)

    begin(store, run, action, ...) -> int, begin_many(store, run, period, entries) -> [int],
    done(...), failed(...), unknown(...),
    resolve_unknown(...), credit_adoption(...), pending_to_unknown(store, run_id),
    who() -> the person: $CW_TUI_USER, else the OS user.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from cw_tui.rules.additions import VALUE_FIELDS, AdditionValues, marker
from cw_tui.rules.money import from_micros
from cw_tui.rules.vocabulary import ChargeType
from cw_tui.store.database import Store, owner_alive
from cw_tui.store.fields import UTCDateTimeField, now_utc
from cw_tui.store.line_sql import LINE_MAPPING_JOINS, LINE_MAPPING_STATUS
from cw_tui.store.models import JournalEntry, JournalLine, SyncRun

ACTIONS = ("create", "update", "cancel", "adopt", "new_agreement",
           "delete", "restore", "end", "delete_agreement")  # the last four: an undo's (store/undo.py)
OUTCOMES = ("pending", "done", "error", "unknown")
RUN_STATES = ("running", "finished", "interrupted", "failed")
TRIGGERS = ("app", "cli", "scheduled")
_CHUNK = 500
_UTC = UTCDateTimeField()


def who() -> str:
    """The person a run and its writes are attributed to: $CW_TUI_USER, else the OS user."""
    name = os.environ.get("CW_TUI_USER", "").strip()
    if name:
        return name[:100]
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a bare container)
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


# --- values as JSON (Decimal as text, dates ISO)

def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def values_json(values: AdditionValues | None) -> dict[str, Any] | None:
    """An Addition's values in the journal's terms (VALUE_FIELDS; Decimals as text)."""
    if values is None:
        return None
    return {name: _plain(getattr(values, name)) for name in VALUE_FIELDS}


def values_from_json(data: dict[str, Any] | None) -> AdditionValues | None:
    if not data:
        return None
    return AdditionValues(int(data["product_id"]), Decimal(data["quantity"]), Decimal(data["unit_price"]),
                          Decimal(data["unit_cost"]), date.fromisoformat(data["effective_date"]),
                          date.fromisoformat(data["cancelled_date"]) if data.get("cancelled_date") else None,
                          data.get("description") or "", data.get("invoice_description") or "")


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(_plain(value), sort_keys=True, separators=(",", ":"))


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


# --- writes (the sync engine's)

def _entry(run_id: int, period: str | None, action: str, *, person: str, line_ids: Iterable[str] = (),
           marker: str | None = None, agreement_id: int | None = None, addition_id: int | None = None,
           subscription_id: str | None = None, contract_id: str | None = None, customer: str = "", currency: str = "",
           sent: Any = None, before: AdditionValues | dict | None = None, after: AdditionValues | None = None,
           outcome: str = "pending", undoes_id: int | None = None) -> tuple[dict[str, Any], list[str]]:
    """A journal row's columns, and its lines."""
    assert action in ACTIONS and outcome in OUTCOMES
    before_json = values_json(before) if isinstance(before, AdditionValues) else before
    now = now_utc()
    row = dict(run_id=run_id, period=period, action=action, marker=marker, agreement_id=agreement_id,
               addition_id=addition_id, subscription_id=subscription_id, contract_id=contract_id, customer=customer or "",
               currency=currency or "", sent=_dump(sent), before=_dump(before_json), after=_dump(values_json(after)),
               amount=after.amount if after is not None else None, outcome=outcome, written_at=now,
               finished_at=now if outcome != "pending" else None, who=person, undoes_id=undoes_id)
    return row, sorted(set(line_ids))


def begin(store: Store, run_id: int, period: str | None, action: str, **fields: Any) -> int:
    """A journal entry, committed before its request is sent (outcome pending); an adoption,
    which sends nothing, is written done. Returns its id. A failure here raises: the caller
    sends nothing. (`fields`: those of `_entry`, `person` among them.)"""
    return begin_many(store, run_id, period, [(action, fields)])[0]


def begin_many(store: Store, run_id: int, period: str | None, entries: list[tuple[str, dict[str, Any]]]) -> list[int]:
    """Journal entries (action, fields as `begin` takes them) committed together, in one
    transaction: their ids, in order. The sync writes the entries of requests about to go out
    at once this way (a group commit: none is sent before it returns). On PostgreSQL the rows
    go in one pipelined batch, not one round trip each."""
    if not entries:
        return []
    built = [_entry(run_id, period, action, **fields) for action, fields in entries]
    names = list(built[0][0])
    columns = [JournalEntry._meta.fields[name] for name in names]
    rows = [tuple(column.db_value(row[name]) for column, name in zip(columns, names, strict=True)) for row, _ in built]
    sql = (f"INSERT INTO journal ({', '.join(c.column_name for c in columns)}) "
           f"VALUES ({', '.join('?' for _ in columns)})")
    with store.atomic():
        cursor = store.db.cursor()
        if store.is_postgres:
            cursor.executemany(sql + " RETURNING id", rows, returning=True)
            ids = []
            while True:
                ids.append(cursor.fetchone()[0])
                if not cursor.nextset():
                    break
        else:
            ids = []
            for row in rows:
                cursor.execute(sql, row)
                ids.append(cursor.lastrowid)
        lines = [(journal_id, lid) for journal_id, (_, line_ids) in zip(ids, built, strict=True) for lid in line_ids]
        for start in range(0, len(lines), _CHUNK):
            JournalLine.insert_many(lines[start : start + _CHUNK], fields=[JournalLine.journal_id, JournalLine.line_id]).execute()
    return ids


def done_many(store: Store, rows: list[tuple[int, int | None]]) -> None:
    """Creates ConnectWise answered, recorded in one statement: (journal id, addition id) each.
    Recorded with the lines they synced (the engine batches both): an entry the process did
    not get to record stays pending, and the next run resolves it by the marker."""
    if not rows:
        return
    stamp = _UTC.db_value(now_utc())
    with store.atomic():
        p = store.db.param  # the database's placeholder: '?' in SQLite, '%s' in PostgreSQL
        store.db.cursor().executemany(
            f"UPDATE journal SET outcome = 'done', addition_id = COALESCE({p}, addition_id), finished_at = {p} WHERE id = {p}",
            [(addition_id, stamp, journal_id) for journal_id, addition_id in rows])


def unresolved_markers(store: Store) -> set[str]:
    """Markers with a create whose outcome is not known yet (pending or unknown)."""
    return {r[0] for r in store.db.execute_sql(
        "SELECT DISTINCT marker FROM journal WHERE action = 'create' AND outcome IN ('pending', 'unknown') "
        "AND marker IS NOT NULL")}


def done(store: Store, journal_id: int, *, addition_id: int | None = None, agreement_id: int | None = None,
         after: AdditionValues | None = None, note: str | None = None) -> None:
    """The request's outcome: ConnectWise holds it (`addition_id`, or the agreement created)."""
    fields: dict[Any, Any] = {JournalEntry.outcome: "done", JournalEntry.finished_at: now_utc()}
    if addition_id is not None:
        fields[JournalEntry.addition_id] = addition_id
    if agreement_id is not None:
        fields[JournalEntry.agreement_id] = agreement_id
    if after is not None:
        fields[JournalEntry.after] = _dump(values_json(after))
        fields[JournalEntry.amount] = after.amount
    if note:
        fields[JournalEntry.resolution] = note
    with store.atomic():
        JournalEntry.update(fields).where(JournalEntry.id == journal_id).execute()


def failed(store: Store, journal_id: int, *, outcome: str = "error", status: int | None = None, code: str | None = None,
           message: str = "") -> None:
    """ConnectWise refused the request (error, with its status, code and message), or its
    outcome is not known (unknown: the next run looks the marker up)."""
    assert outcome in ("error", "unknown")
    with store.atomic():
        JournalEntry.update(outcome=outcome, error_status=status, error_code=(code or None), error_message=message[:2000],
                            finished_at=now_utc()).where(JournalEntry.id == journal_id).execute()


def _unresolved(marker_: str, agreements: Iterable[int] | None) -> Any:
    where = (JournalEntry.marker == marker_) & JournalEntry.outcome.in_(("pending", "unknown")) \
        & (JournalEntry.action == "create")
    if agreements is not None:
        where &= JournalEntry.agreement_id.in_(list(agreements))
    return where


def resolve_unknown(store: Store, marker_: str, run_id: int, *, found_addition: int | None,
                    agreement_id: int | None = None, looked_at: Iterable[int] | None = None) -> int:
    """Creates of this marker whose outcome was not known, now that a look in ConnectWise
    answered: found (done, with the Addition) or not there (error: it was never posted).
    Returns how many were resolved."""
    if not JournalEntry.select(JournalEntry.id).where(_unresolved(marker_, looked_at)).exists():
        return 0  # the usual case: no write transaction
    with store.atomic():
        rows = list(JournalEntry.select(JournalEntry.id).where(_unresolved(marker_, looked_at))
                    .order_by(JournalEntry.id).tuples())
        if not rows:
            return 0
        ids = [r[0] for r in rows]
        now = now_utc()
        if found_addition is not None:
            # the first unknown attempt is the one that created it; any later ones did not
            first, rest = ids[0], ids[1:]
            JournalEntry.update(outcome="done", addition_id=found_addition, resolved_at=now, resolved_run_id=run_id,
                                resolution=f"found in ConnectWise as addition {found_addition} (run {run_id})",
                                **({"agreement_id": agreement_id} if agreement_id else {})).where(
                JournalEntry.id == first).execute()
            ids = rest
        if ids:
            JournalEntry.update(outcome="error", resolved_at=now, resolved_run_id=run_id,
                                error_message="not in ConnectWise when looked up",
                                resolution=f"not in ConnectWise when run {run_id} looked: it was never posted").where(
                JournalEntry.id.in_(ids)).execute()
    return len(rows)


def _same(a: AdditionValues | None, b: AdditionValues | None) -> bool:
    return a is not None and b is not None and a == b


def resolve_unknown_changes(store: Store, marker_: str, run_id: int, held: AdditionValues | None) -> int:
    """Updates and cancels of this marker whose outcome was not known, now that ConnectWise's
    values were read: applied (done) when it holds what they sent, else never applied (error)."""
    rows = list(JournalEntry.select(JournalEntry.id, JournalEntry.after).where(
        (JournalEntry.marker == marker_) & (JournalEntry.outcome == "unknown")
        & JournalEntry.action.in_(("update", "cancel"))).order_by(JournalEntry.id).tuples())
    if not rows:
        return 0
    now = now_utc()
    with store.atomic():
        for journal_id, after in rows:
            if _same(values_from_json(_load(after)), held):
                JournalEntry.update(outcome="done", resolved_at=now, resolved_run_id=run_id,
                                    resolution=f"ConnectWise held its values when run {run_id} looked").where(
                    JournalEntry.id == journal_id).execute()
            else:
                JournalEntry.update(outcome="error", resolved_at=now, resolved_run_id=run_id,
                                    error_message="not applied in ConnectWise",
                                    resolution=f"ConnectWise did not hold its values when run {run_id} looked").where(
                    JournalEntry.id == journal_id).execute()
    return len(rows)


def resolve_unknown_agreement(store: Store, contract_id: str, run_id: int, found: int | None) -> int:
    """New agreements of this contract whose outcome was not known, once looked up by name."""
    unresolved = (JournalEntry.contract_id == contract_id) & (JournalEntry.action == "new_agreement") \
        & JournalEntry.outcome.in_(("pending", "unknown"))
    if not JournalEntry.select(JournalEntry.id).where(unresolved).exists():
        return 0
    with store.atomic():
        query = JournalEntry.update(
            outcome="done" if found else "error", resolved_at=now_utc(), resolved_run_id=run_id,
            **({"agreement_id": found} if found else {"error_message": "not in ConnectWise when looked up"}),
            resolution=(f"found in ConnectWise as agreement {found} (run {run_id})" if found
                        else f"not in ConnectWise when run {run_id} looked: it was never created"),
        ).where(unresolved)
        return query.execute()


def credit_adoption(store: Store, run_id: int, period: str | None, *, person: str, marker_: str, agreement_id: int,
                    addition_id: int, line_ids: Iterable[str], values: AdditionValues | None, customer: str,
                    currency: str, subscription_id: str | None, maybe_unresolved: bool = True) -> int | None:
    """An Addition found in ConnectWise and taken over: an earlier attempt of ours whose
    outcome was unknown is resolved as its creator; else, unless the journal already names
    its creator, an adopt entry is written (done). One entry per Addition creates or adopts it.
    `maybe_unresolved` False: the caller knows no create of this marker awaits its outcome."""
    if maybe_unresolved and resolve_unknown(store, marker_, run_id, found_addition=addition_id,
                                            agreement_id=agreement_id, looked_at=[agreement_id]):
        return None
    known = JournalEntry.select(JournalEntry.id).where(
        (JournalEntry.addition_id == addition_id) & (JournalEntry.outcome == "done")
        & JournalEntry.action.in_(("create", "adopt"))).first()
    if known is not None:
        return None
    return begin(store, run_id, period, "adopt", person=person, line_ids=line_ids, marker=marker_, agreement_id=agreement_id,
                 addition_id=addition_id, subscription_id=subscription_id, customer=customer, currency=currency,
                 after=values, outcome="done")


def pending_to_unknown(store: Store, run_ids: Iterable[int], message: str) -> int:
    """Entries still pending when their run ended or died: their outcome is not known."""
    ids = list(run_ids)
    if not ids:
        return 0
    with store.atomic():
        return JournalEntry.update(outcome="unknown", error_message=message, finished_at=now_utc()).where(
            JournalEntry.run_id.in_(ids) & (JournalEntry.outcome == "pending")).execute()


def mark_interrupted(store: Store, owners: Iterable[str], resolved_by: int | None) -> list[int]:
    """The sync runs of these dead owners: interrupted for good, resolved by `resolved_by`;
    their pending entries become unknown. Returns their ids."""
    owners = list(owners)
    if not owners:
        return []
    runs = [r[0] for r in SyncRun.select(SyncRun.id).where(
        SyncRun.owner.in_(owners) & (SyncRun.state == "running") & SyncRun.kind.in_(("sync", "undo"))).tuples()]
    if not runs:
        return []
    with store.atomic():
        SyncRun.update(state="interrupted", resolved_run_id=resolved_by,
                       note=f"the process stopped while posting; run {resolved_by} released its claims" if resolved_by
                       else "the process stopped while posting").where(SyncRun.id.in_(runs)).execute()
    pending_to_unknown(store, runs, "the run stopped before this request's outcome was known; the next sync looks "
                                    "the marker up in ConnectWise")
    return runs


# --- reads

@dataclass(frozen=True)
class JournalAction:
    id: int
    run_id: int
    period: str | None
    action: str
    marker: str | None
    agreement_id: int | None
    addition_id: int | None
    subscription_id: str | None
    contract_id: str | None
    customer: str
    currency: str
    line_ids: tuple[str, ...]
    sent: Any
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    amount: Decimal | None
    outcome: str
    error_status: int | None
    error_code: str | None
    error_message: str | None
    written_at: datetime
    finished_at: datetime | None
    resolved_at: datetime | None
    resolved_run_id: int | None
    resolution: str | None
    who: str
    undoes_id: int | None = None  # an undo's entry: the entry it reverts

    def as_json(self) -> dict[str, Any]:
        return {k: _plain(v) if not isinstance(v, datetime) else _iso(v) for k, v in vars(self).items()}


@dataclass(frozen=True)
class RunSummary:
    id: int
    period: str | None
    state: str  # as shown: a running run whose process is gone is interrupted
    stored_state: str
    who: str
    trigger: str
    fingerprint: str
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    created: int
    updated: int
    cancelled: int
    adopted: int
    unchanged: int
    agreements_created: int
    skipped: int
    errors: int
    synced_lines: int
    api_calls: int
    totals: dict[str, Decimal]
    note: str
    resolved_run_id: int | None
    actions: dict[str, int] = field(default_factory=dict)  # outcome -> journal entries
    kind: str = "sync"  # sync | undo
    undoes_run_id: int | None = None  # an undo: the run it undoes
    counts: dict[str, int] = field(default_factory=dict)  # an undo's tallies (UNDO_COUNTS)
    undone_by: tuple[int, ...] = ()  # a sync: the finished undo runs of it, oldest first
    undone: str = ""  # a sync: "undone" or "partly undone" (by the newest of undone_by), else ""

    def as_json(self) -> dict[str, Any]:
        data = {k: _plain(v) if not isinstance(v, datetime) else _iso(v) for k, v in vars(self).items()}
        data["duration_s"] = round(self.duration_s, 3) if self.duration_s is not None else None
        data["undone_by"] = list(self.undone_by)
        if self.kind != "sync":
            del data["undone_by"], data["undone"]
        return data

    @property
    def undone_text(self) -> str:
        """A sync a finished undo reverted: "undone by #12" or "partly undone by #12"."""
        return f"{self.undone} by #{self.undone_by[-1]}" if self.undone and self.undone_by else ""


@dataclass(frozen=True)
class RunDetail:
    run: RunSummary
    actions: list[JournalAction]
    resolved: list[JournalAction]  # earlier runs' unknown outcomes this run resolved

    def as_json(self) -> dict[str, Any]:
        return {"run": self.run.as_json(), "actions": [a.as_json() for a in self.actions],
                "resolved": [a.as_json() for a in self.resolved]}


def _iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


OwnerAlive = Callable[[str | None, datetime | None], bool]


def _shown_state(run: SyncRun, alive: OwnerAlive) -> str:
    if run.state == "running" and not alive(run.owner, run.started_at):
        return "interrupted"
    if run.state in ("ok", "partial"):
        return "finished"
    if run.state == "refused":
        return "failed"
    return run.state


# an undo run's tallies (sync_run.counts), in this order in words
UNDO_COUNTS = ("deleted", "restored", "ended", "agreements_deleted", "released", "refused", "kept", "errors",
               "lines_not_synced")


def undo_counts(stored: str | None) -> dict[str, int]:
    loaded = _load(stored) if stored else None
    if not isinstance(loaded, dict):
        return {}
    return {k: int(v) for k, v in loaded.items() if isinstance(v, int)}


def _partly(counts: dict[str, int]) -> bool:
    return bool(counts.get("refused") or counts.get("errors"))


def _undos(store: Store, sync_ids: list[int]) -> dict[int, list[tuple[int, bool]]]:
    """sync run id -> its finished undo runs, oldest first: (undo run id, refused items or had errors)."""
    result: dict[int, list[tuple[int, bool]]] = {}
    for start in range(0, len(sync_ids), _CHUNK):
        chunk = sync_ids[start : start + _CHUNK]
        query = (SyncRun.select(SyncRun.id, SyncRun.undoes_run_id, SyncRun.counts, SyncRun.errors)
                 .where((SyncRun.kind == "undo") & (SyncRun.state == "finished") & SyncRun.undoes_run_id.in_(chunk))
                 .order_by(SyncRun.id).tuples())
        for undo_id, target, stored, errors in query:
            result.setdefault(target, []).append((undo_id, bool(errors) or _partly(undo_counts(stored))))
    return result


def _summary(run: SyncRun, alive: OwnerAlive, outcomes: dict[str, int],
             undos: list[tuple[int, bool]] | None = None) -> RunSummary:
    totals = {k: Decimal(v) for k, v in (_load(run.totals) or {}).items()} if run.kind != "undo" else {}
    undos = undos or []
    undone = ("partly undone" if undos[-1][1] else "undone") if undos else ""
    return RunSummary(
        run.id, run.period, _shown_state(run, alive), run.state, run.who or "", run.trigger or "", run.fingerprint or "",
        run.started_at, run.finished_at, run.duration_s, run.created, run.updated, run.cancelled, run.adopted, run.unchanged,
        run.agreements_created, run.skipped, run.errors, run.synced_lines, run.api_calls, totals, run.note or "",
        run.resolved_run_id, outcomes, run.kind, run.undoes_run_id, undo_counts(run.counts) if run.kind == "undo" else {},
        tuple(u for u, _ in undos), undone,
    )


def _outcomes(store: Store, run_ids: list[int]) -> dict[int, dict[str, int]]:
    result: dict[int, dict[str, int]] = {}
    for start in range(0, len(run_ids), _CHUNK):
        chunk = run_ids[start : start + _CHUNK]
        for run_id, outcome, count in store.db.execute_sql(
                f"SELECT run_id, outcome, COUNT(*) FROM journal WHERE run_id IN ({','.join('?' * len(chunk))}) "
                "GROUP BY run_id, outcome", chunk):
            result.setdefault(run_id, {})[outcome] = count
    return result


def _default_alive(owner: str | None, since: datetime | None) -> bool:
    # a run's start is no claim time: a long run is not stale while its process lives
    return owner_alive(owner)


RUN_KINDS = ("sync", "undo")  # what run history lists (a load or a cache refresh is a run too, but not of history)


def list_runs(store: Store, period: str | None = None, *, kind: str | None = None,
              alive: OwnerAlive | None = None) -> list[RunSummary]:
    """Runs, newest first (see the module's docstring)."""
    query = SyncRun.select().where(SyncRun.kind.in_(RUN_KINDS) if kind is None else SyncRun.kind == kind)
    if period:
        query = query.where(SyncRun.period == period)
    runs = list(query.order_by(SyncRun.id.desc()))
    outcomes = _outcomes(store, [r.id for r in runs])
    undos = _undos(store, [r.id for r in runs if r.kind == "sync"])
    return [_summary(r, alive or _default_alive, outcomes.get(r.id, {}), undos.get(r.id)) for r in runs]


_ENTRY_COLUMNS = ("id, run_id, period, action, marker, agreement_id, addition_id, subscription_id, contract_id, customer, "
                  "currency, sent, before, after, amount, outcome, error_status, error_code, error_message, written_at, "
                  "finished_at, resolved_at, resolved_run_id, resolution, who, undoes_id")


def _actions(store: Store, where: str, params: tuple) -> list[JournalAction]:
    rows = list(store.db.execute_sql(f"SELECT {_ENTRY_COLUMNS} FROM journal j WHERE {where} ORDER BY j.id", params))
    lines: dict[int, list[str]] = {}
    ids = [r[0] for r in rows]
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        for journal_id, line_id in store.db.execute_sql(
                f"SELECT journal_id, line_id FROM journal_line WHERE journal_id IN ({','.join('?' * len(chunk))}) "
                "ORDER BY line_id", chunk):
            lines.setdefault(journal_id, []).append(line_id)
    result = []
    for row in rows:
        (id_, run_id, period, action, marker_, agreement_id, addition_id, subscription_id, contract_id, customer, currency,
         sent, before, after, amount, outcome, status, code, message, written, finished, resolved, resolved_run, resolution,
         person, undoes) = row
        result.append(JournalAction(
            id_, run_id, period, action, marker_, agreement_id, addition_id, subscription_id, contract_id, customer, currency,
            tuple(lines.get(id_, ())), _load(sent), _load(before), _load(after),
            from_micros(amount) if amount is not None else None, outcome, status, code, message,
            _UTC.python_value(written), _UTC.python_value(finished), _UTC.python_value(resolved), resolved_run, resolution,
            person, undoes,
        ))
    return result


def run_detail(store: Store, run_id: int, *, alive: OwnerAlive | None = None) -> RunDetail | None:
    run = SyncRun.get_or_none(SyncRun.id == run_id)
    if run is None:
        return None
    outcomes = _outcomes(store, [run.id]).get(run.id, {})
    undos = _undos(store, [run.id]).get(run.id) if run.kind == "sync" else None
    return RunDetail(_summary(run, alive or _default_alive, outcomes, undos), _actions(store, "j.run_id = ?", (run_id,)),
                     _actions(store, "j.resolved_run_id = ? AND j.run_id != ?", (run_id, run_id)))


def entry(store: Store, journal_id: int) -> JournalAction | None:
    found = _actions(store, "j.id = ?", (journal_id,))
    return found[0] if found else None


def journal_for_line(store: Store, line_id: str) -> list[JournalAction]:
    """Every entry that touched the line: its own Addition's, or its subscription's
    persistent Addition's entries of the runs that posted this line (oldest first)."""
    return _actions(store, "j.id IN (SELECT journal_id FROM journal_line WHERE line_id = ?)", (line_id,))


# The shared grid's source over one run's actions (assembled in store/journal_reads.py):
# (key, title, SQL, kind); kind: text | number | money | time | filter (a text column filtered by value).
RUN_ACTIONS_FROM = "journal j"
RUN_ACTIONS_WHERE = "j.run_id = ?"
RUN_ACTION_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("id", "#", "j.id", "number"),
    ("action", "Action", "j.action", "filter"),
    ("outcome", "Outcome", "j.outcome", "filter"),
    ("customer", "Customer", "j.customer", "text"),
    ("currency", "Cur", "j.currency", "filter"),
    ("amount", "Amount", "j.amount", "money"),
    ("marker", "Marker", "j.marker", "text"),
    ("agreement", "Agreement", "j.agreement_id", "number"),
    ("addition", "Addition", "j.addition_id", "number"),
    ("lines", "Lines", "(SELECT COUNT(*) FROM journal_line jl WHERE jl.journal_id = j.id)", "number"),
    ("error", "Error", "COALESCE(j.error_message, '')", "text"),
    ("written", "Written", "j.written_at", "time"),
    ("who", "Who", "j.who", "text"),
)


# --- reconciliation's reads

@dataclass(frozen=True)
class Posted:
    """What the journal says cw-tui left on an Addition: its values after a done entry."""

    marker: str
    journal_id: int
    run_id: int
    period: str | None
    action: str
    agreement_id: int | None
    addition_id: int | None
    customer: str
    currency: str
    values: AdditionValues | None
    line_ids: tuple[str, ...] = ()

    @property
    def amount(self) -> Decimal:
        return self.values.amount if self.values is not None else Decimal(0)


_WRITES = ("create", "update", "adopt", "cancel")


def _fold(rows: Iterable[tuple]) -> dict[str, Posted]:
    """The latest state per marker from done entries in id order (an update's or cancel's
    `after` is the whole Addition, so the newest entry says it all; customer kept from the
    first entry that named one)."""
    result: dict[str, Posted] = {}
    for (journal_id, run_id, period, action, marker_, agreement_id, addition_id, customer, currency, after) in rows:
        if action == "delete":  # an undo deleted it: cw-tui no longer holds anything there
            result.pop(marker_, None)
            continue
        earlier = result.get(marker_)
        values = values_from_json(_load(after))
        if values is None and earlier is not None:
            values = earlier.values
        result[marker_] = Posted(marker_, journal_id, run_id, period, action, agreement_id or (earlier.agreement_id if earlier else None),
                                 addition_id or (earlier.addition_id if earlier else None),
                                 customer or (earlier.customer if earlier else ""), currency or (earlier.currency if earlier else ""),
                                 values)
    return result


_POSTED_SQL = ("SELECT j.id, j.run_id, j.period, j.action, j.marker, j.agreement_id, j.addition_id, j.customer, j.currency, "
               "j.after FROM journal j WHERE j.outcome = 'done' AND j.marker IS NOT NULL "
               "AND j.action IN ('create', 'update', 'adopt', 'cancel', 'delete', 'restore', 'end')")


def _period_markers(store: Store, period: str) -> dict[str, list[str]]:
    """marker -> the period's synced lines it stands for."""
    result: dict[str, list[str]] = {}
    for line_id, charge_type, subscription_id in store.db.execute_sql(
            "SELECT line_id, charge_type, subscription_id FROM invoice_line WHERE period = ? AND sync_status = 'synced' "
            "ORDER BY line_id", (period,)):
        key = marker("S", subscription_id) if ChargeType(charge_type).recurring else marker("L", line_id)
        result.setdefault(key, []).append(line_id)
    return result


def posted_for_month(store: Store, period: str) -> dict[str, Posted]:
    """marker -> what cw-tui posted for `period`: for each marker of the period's synced
    lines, the done entries of runs of this period and earlier ones, folded in order. A later
    month's update or cancel of a persistent Addition leaves this as it was."""
    markers = _period_markers(store, period)
    if not markers:
        return {}
    keys = sorted(markers)
    rows: list[tuple] = []
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        rows += store.db.execute_sql(
            f"{_POSTED_SQL} AND (j.period IS NULL OR j.period <= ?) AND j.marker IN ({','.join('?' * len(chunk))})",
            [period, *chunk]).fetchall()
    rows.sort(key=lambda r: r[0])
    folded = _fold(rows)
    return {k: Posted(**{**vars(p), "line_ids": tuple(markers[k])}) for k, p in folded.items()}


def unjournaled_markers(store: Store, period: str) -> dict[str, list[str]]:
    """Markers of the period's synced lines that no done journal entry names (lines synced
    before the journal existed): reconciliation falls back to the lines' own values."""
    markers = _period_markers(store, period)
    posted = posted_for_month(store, period)
    return {k: v for k, v in markers.items() if k not in posted}


def last_posted(store: Store, markers: Iterable[str]) -> dict[str, Posted]:
    """marker -> what cw-tui last left on the Addition, whatever the month."""
    keys = sorted(set(markers))
    rows: list[tuple] = []
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        rows += store.db.execute_sql(f"{_POSTED_SQL} AND j.marker IN ({','.join('?' * len(chunk))})", chunk).fetchall()
    rows.sort(key=lambda r: r[0])
    return _fold(rows)


def journal_markers(store: Store) -> set[str]:
    """Every marker the journal names (any outcome): cw-tui has a record of these."""
    return {r[0] for r in store.db.execute_sql("SELECT DISTINCT marker FROM journal WHERE marker IS NOT NULL")}


@dataclass(frozen=True)
class NotPosted:
    line_id: str
    customer: str
    currency: str
    amount: Decimal
    reason: str  # unmapped | excluded | error | not synced yet
    detail: str


def lines_not_posted(store: Store, period: str) -> list[NotPosted]:
    """The period's lines that are not Synced, with why."""
    result = []
    for line_id, customer, currency, quantity, price, status, sync_status, last_error in store.db.execute_sql(
            f"SELECT l.line_id, o.name, l.currency, l.quantity, l.unit_price, {LINE_MAPPING_STATUS}, l.sync_status, "
            f"l.last_error FROM invoice_line l {LINE_MAPPING_JOINS} WHERE l.period = ? AND l.sync_status != 'synced' "
            "ORDER BY o.name, l.currency, l.line_id", (period,)):
        if sync_status == "error":
            reason, detail = "error", last_error or ""
        elif status == "unmapped":
            reason, detail = "unmapped", "no company, product or agreement to post it to"
        elif status == "excluded":
            reason, detail = "excluded", "its organization is excluded from sync"
        else:
            reason, detail = "not synced yet", "mapped; the next sync posts it" if sync_status != "claimed" else \
                "a sync is posting it"
        result.append(NotPosted(line_id, customer, currency, from_micros(quantity) * from_micros(price), reason, detail))
    return result


def invoiced(store: Store, period: str) -> dict[tuple[str, str], tuple[int, Decimal]]:
    """What the Platform invoiced, per (customer, currency): lines and amount (every loaded line)."""
    result: dict[tuple[str, str], tuple[int, Decimal]] = {}
    for customer, currency, quantity, price in store.db.execute_sql(
            "SELECT COALESCE(o.name, l.organization_id), l.currency, l.quantity, l.unit_price FROM invoice_line l "
            "LEFT JOIN organization o ON o.platform_id = l.organization_id WHERE l.period = ?", (period,)):
        lines, amount = result.get((customer, currency), (0, Decimal(0)))
        result[(customer, currency)] = (lines + 1, amount + from_micros(quantity) * from_micros(price))
    return result
