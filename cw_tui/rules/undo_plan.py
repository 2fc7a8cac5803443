"""The plan of an undo (SPEC §15): what undoing a sync run does to each Addition it wrote, and
what it refuses, item by item and with the reason. Pure: the store's journal and what
ConnectWise holds now come in as plain data (sync/undo.py reads them); nothing is sent here.

What undo does, from the run's journal entries:
- create: the Addition is deleted (its lines return to Not Synced);
- update, cancel: the Addition gets back the values it held before (a cancel loses its
  cancelled date again, or gets back the one it had);
- adopt: the Addition is left as it is (the run did not create it); its lines return to Not
  Synced, and the next sync adopts it again;
- lines the run synced onto an Addition it did not write (unchanged subscriptions) return to
  Not Synced, nothing sent;
- new_agreement: the agreement is deleted when it holds nothing else, has never been invoiced
  and still has the name, type and company cw-tui gave it; otherwise it stays.

Refused (the rest goes ahead): an Addition whose values in ConnectWise are not what the run left
(a person changed it), one in a month ConnectWise has already invoiced, one a later run changed
again (or whose later month's lines are synced onto it), and an update whose values before are
not known.
"""

from __future__ import annotations

import calendar
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from cw_tui.rules.additions import AdditionValues

# what an item does
DELETE = "delete"  # DELETE the Addition
RESTORE = "restore"  # PATCH back the values held before (an update's, or a cancel's cancelled date)
END = "end"  # PATCH a cancelled date after the invoiced months: what ConnectWise allows for an invoiced one
DELETE_AGREEMENT = "delete_agreement"
RELEASE = "release"  # nothing to send: the lines return to Not Synced (gone from ConnectWise, adopted, unchanged)
KEEP = "keep"  # nothing to send, nothing changes (an agreement that holds other things)
REFUSED = "refused"
SENDS = (DELETE, RESTORE, END, DELETE_AGREEMENT)
KINDS = (*SENDS, RELEASE, KEEP, REFUSED)

# why an item is refused
CHANGED = "changed in ConnectWise"
INVOICED = "invoiced"
LATER_RUN = "changed by a later run"
NO_BEFORE = "values before not known"
UNKNOWN = "outcome not known"


@dataclass(frozen=True)
class Written:
    """A journal entry of the run to undo, in plain terms."""

    id: int
    action: str  # create | update | cancel | adopt | new_agreement
    marker: str | None
    agreement_id: int | None
    addition_id: int | None
    subscription_id: str | None
    customer: str
    currency: str
    line_ids: tuple[str, ...]
    before: AdditionValues | None
    after: AdditionValues | None
    sent: Any = None


@dataclass(frozen=True)
class Later:
    """Why a later run stands in the way: it wrote the same marker again, or synced lines onto it."""

    run_id: int
    period: str | None
    what: str  # "updated it" | "cancelled it" | "synced 3 lines of 2026-12 onto it" ...


@dataclass(frozen=True)
class AgreementNow:
    """An agreement the run created, as ConnectWise holds it now."""

    exists: bool
    name: str = ""
    type_id: int | None = None
    company_id: int | None = None
    other_additions: int = 0  # Additions on it that this undo does not delete
    invoiced: bool = False


@dataclass(frozen=True)
class UndoItem:
    kind: str  # see KINDS
    entry_id: int | None  # the journal entry it reverts (None: lines synced with no write)
    action: str  # the run's action it reverts: create | update | cancel | adopt | new_agreement | unchanged
    marker: str | None
    agreement_id: int | None
    addition_id: int | None
    subscription_id: str | None
    customer: str
    currency: str
    line_ids: tuple[str, ...] = ()  # lines that return to Not Synced (none when refused or kept)
    amount: Decimal = Decimal(0)  # what the run's write holds (quantity x unit price of its values after)
    changes: dict[str, Any] = field(default_factory=dict)  # the PATCH body of a restore or an end
    held: AdditionValues | None = None  # what ConnectWise holds now
    restore_to: AdditionValues | None = None  # what it holds after the undo (a restore, an end)
    reason: str = ""  # a refusal's code (CHANGED, INVOICED, ...) or why nothing is sent
    detail: str = ""  # in plain words
    alternative: str = ""  # what ConnectWise allows instead (an invoiced Addition)

    def as_json(self) -> dict[str, Any]:
        data = {k: v for k, v in vars(self).items() if k not in ("held", "restore_to", "changes")}
        data["line_ids"] = list(self.line_ids)
        data["amount"] = str(self.amount)
        data["changes"] = _plain(self.changes)
        return data


@dataclass(frozen=True)
class UndoPlan:
    run_id: int
    period: str | None
    items: list[UndoItem]
    already_undone: int = 0  # entries an earlier undo reverted (skipped)
    fingerprint: str = ""

    def of(self, *kinds: str) -> list[UndoItem]:
        return [i for i in self.items if i.kind in kinds]

    @property
    def sends(self) -> list[UndoItem]:
        return self.of(*SENDS)

    @property
    def refused(self) -> list[UndoItem]:
        return self.of(REFUSED)

    @property
    def lines(self) -> int:
        return sum(len(i.line_ids) for i in self.items if i.kind != REFUSED)

    @property
    def empty(self) -> bool:
        """Nothing to send and no line to return: undoing again does nothing."""
        return not self.sends and not any(i.line_ids for i in self.items if i.kind == RELEASE)

    def counts(self) -> dict[str, int]:
        return dict(Counter(i.kind for i in self.items))

    def amounts(self, kind: str) -> dict[str, Decimal]:
        """Per currency, what the items of `kind` hold (never added across currencies)."""
        result: dict[str, Decimal] = {}
        for item in self.of(kind):
            result[item.currency] = result.get(item.currency, Decimal(0)) + item.amount
        return result

    def as_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "period": self.period, "fingerprint": self.fingerprint,
                "already_undone": self.already_undone, "counts": self.counts(), "lines_to_not_synced": self.lines,
                "deleted_amounts": {c: str(a) for c, a in sorted(self.amounts(DELETE).items())},
                "items": [i.as_json() for i in self.items]}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def month_name(month: tuple[int, int]) -> str:
    return f"{calendar.month_name[month[1]]} {month[0]}"


def _month(day: date | None) -> tuple[int, int] | None:
    return (day.year, day.month) if day is not None else None


def _after_month(month: tuple[int, int]) -> date:
    year, number = month
    return date(year + 1, 1, 1) if number == 12 else date(year, number + 1, 1)


def _differs(expected: AdditionValues, held: AdditionValues) -> str:
    names = {"product_id": "product", "quantity": "quantity", "unit_price": "unit price", "unit_cost": "unit cost",
             "effective_date": "effective date", "cancelled_date": "cancelled date", "description": "description",
             "invoice_description": "invoice description"}
    parts = []
    for key, label in names.items():
        left, right = getattr(expected, key), getattr(held, key)
        if left != right:
            parts.append(f"{label}: the run left {_shown(left)}, ConnectWise holds {_shown(right)}")
    return "; ".join(parts)


def _shown(value: Any) -> str:
    if value is None or value == "":
        return "none"
    if isinstance(value, str) and len(value) > 40:
        return repr(value[:37] + "...")
    return repr(value) if isinstance(value, str) else str(value)


def plan_undo(run_id: int, period: str | None, written: list[Written], *, undone: dict[int, int],
              later: dict[int, Later], held: dict[int, AdditionValues | None],
              invoiced_through: dict[int, tuple[int, int] | None], agreements: dict[int, AgreementNow],
              lines_by_addition: dict[int, tuple[str, ...]], end_invoiced: bool = False) -> UndoPlan:
    """The undo plan of run `run_id`.

    - written: the run's entries whose outcome is done (an earlier undo's are in `undone`).
    - undone: entry id -> the undo run that already reverted it.
    - later: entry id -> the later run that stands in the way.
    - held: addition id -> what ConnectWise holds on it now (None: not there any more).
    - invoiced_through: agreement id -> the last month ConnectWise invoiced it (None: never).
    - agreements: agreement id -> what ConnectWise holds, for the agreements the run created.
    - lines_by_addition: addition id -> the lines this run synced onto it (still Synced).
    - end_invoiced: an invoiced Addition the run created is ended after the invoiced months
      (what ConnectWise allows) instead of refused; its lines stay Synced.
    """
    items: list[UndoItem] = []
    skipped = 0
    covered: set[int] = set()
    for w in sorted(written, key=lambda w: w.id):
        if w.id in undone:
            skipped += 1
            if w.addition_id is not None:
                covered.add(w.addition_id)
            continue
        if w.action == "new_agreement":
            continue  # after the Additions: see below
        lines = lines_by_addition.get(w.addition_id, ()) if w.addition_id is not None else ()
        if w.addition_id is not None:
            covered.add(w.addition_id)
        items.append(_item(w, lines, later.get(w.id), held, invoiced_through, end_invoiced))
    # lines synced onto Additions the run did not write (unchanged subscriptions, adoptions of
    # an earlier journal entry): they return to Not Synced, nothing is sent
    for addition_id, lines in sorted(lines_by_addition.items()):
        if addition_id not in covered and lines:
            items.append(UndoItem(RELEASE, None, "unchanged", None, None, addition_id, None, "", "", lines,
                                  reason="unchanged", detail="the run synced these lines onto an Addition it did not "
                                                             "change: they return to Not Synced, nothing is sent"))
    deleted_on: Counter[int] = Counter(i.agreement_id for i in items if i.kind == DELETE and i.agreement_id is not None)
    for w in sorted(written, key=lambda w: w.id):
        if w.action != "new_agreement" or w.id in undone or w.agreement_id is None:
            continue
        items.append(_agreement_item(w, agreements.get(w.agreement_id), deleted_on[w.agreement_id]))
    return UndoPlan(run_id, period, items, skipped, fingerprint(run_id, items))


def _base(w: Written, kind: str, **fields: Any) -> UndoItem:
    values = w.after or w.before
    return UndoItem(kind, w.id, w.action, w.marker, w.agreement_id, w.addition_id, w.subscription_id, w.customer,
                    w.currency, amount=values.amount if values is not None else Decimal(0), **fields)


def _item(w: Written, lines: tuple[str, ...], later: Later | None, held: dict[int, AdditionValues | None],
          invoiced_through: dict[int, tuple[int, int] | None], end_invoiced: bool) -> UndoItem:
    if later is not None:
        return _base(w, REFUSED, reason=LATER_RUN,
                     detail=f"run {later.run_id}{' of ' + later.period if later.period else ''} {later.what} since: "
                            f"undo run {later.run_id} first, or leave it")
    now = held.get(w.addition_id) if w.addition_id is not None else None
    present = w.addition_id is not None and w.addition_id in held and now is not None
    if w.action == "adopt":
        return _base(w, RELEASE, line_ids=lines, held=now, reason="adopted",
                     detail="adopted, not created by the run: left as it is in ConnectWise; its lines return to Not "
                            "Synced and the next sync adopts it again")
    if not present:
        if w.action == "create":
            return _base(w, RELEASE, line_ids=lines, reason="gone",
                         detail="not in ConnectWise any more (deleted there, or by an earlier undo): nothing to "
                                "delete; its lines return to Not Synced")
        return _base(w, REFUSED, reason=CHANGED, detail="not in ConnectWise any more (deleted there): nothing to restore")
    assert now is not None
    if w.action in ("update", "cancel") and w.before is not None and now == w.before:
        return _base(w, RELEASE, line_ids=lines, held=now, reason="same",
                     detail="ConnectWise already holds the values before the run (restored by an earlier undo, or by "
                            "hand): nothing to send; its lines return to Not Synced")
    if w.after is not None and now != w.after:
        return _base(w, REFUSED, held=now, reason=CHANGED,
                     detail=f"changed in ConnectWise since the run: {_differs(w.after, now)}")
    through = invoiced_through.get(w.agreement_id) if w.agreement_id is not None else None
    start = _month(now.effective_date)
    if w.action == "create":
        if through is not None and start is not None and start <= through:
            ends = _after_month(through)
            end_to = AdditionValues(now.product_id, now.quantity, now.unit_price, now.unit_cost, now.effective_date,
                                    ends, now.description, now.invoice_description)
            if end_invoiced:
                return _base(w, END, held=now, restore_to=end_to, reason=INVOICED,
                             changes={"cancelledDate": f"{ends.isoformat()}T00:00:00Z"},
                             detail=f"ConnectWise has invoiced agreement {w.agreement_id} through {month_name(through)}: "
                                    f"ended from {month_name(_month(ends))} instead of deleted; its lines stay "
                                    f"Synced; what was invoiced needs a credit in ConnectWise")
            return _base(w, REFUSED, held=now, reason=INVOICED, restore_to=end_to,
                         changes={"cancelledDate": f"{ends.isoformat()}T00:00:00Z"},
                         detail=f"ConnectWise has invoiced agreement {w.agreement_id} through {month_name(through)}: "
                                "an invoiced Addition cannot be deleted",
                         alternative=f"end it from {month_name(_month(ends))} (cancelled date {ends.isoformat()}) "
                                     f"with `--end-invoiced`; what was invoiced through {month_name(through)} needs a "
                                     "credit in ConnectWise")
        return _base(w, DELETE, line_ids=lines, held=now, detail="created by the run: deleted")
    # update, cancel: back to the values held before
    if w.before is None:
        return _base(w, REFUSED, held=now, reason=NO_BEFORE,
                     detail="the journal does not hold what the Addition held before the run: restore it by hand")
    changes = w.before.changes_from(now)
    if through is not None and start is not None and start <= through:
        ends = _month(w.before.cancelled_date)
        only_end = set(changes) <= {"cancelledDate"} and ends is not None and ends > through
        if not only_end:
            return _base(w, REFUSED, held=now, reason=INVOICED,
                         detail=f"ConnectWise has invoiced agreement {w.agreement_id} through {month_name(through)}: "
                                "its values cannot be changed back",
                         alternative="leave it, or correct it by hand in ConnectWise with a credit for what was "
                                     "invoiced")
    if not changes:
        return _base(w, RELEASE, line_ids=lines, held=now, reason="same",
                     detail="ConnectWise already holds the values before the run: nothing to send; its lines return "
                            "to Not Synced")
    what = "its cancelled date removed" if w.action == "cancel" and w.before.cancelled_date is None else \
        "gets back the cancelled date it had" if w.action == "cancel" else "gets back the values it held before"
    return _base(w, RESTORE, line_ids=lines, held=now, restore_to=w.before, changes=changes,
                 detail=f"{w.action}d by the run: {what}")


def _agreement_item(w: Written, now: AgreementNow | None, deleted: int) -> UndoItem:
    base = dict(entry_id=w.id, action="new_agreement", marker=None, agreement_id=w.agreement_id, addition_id=None,
                subscription_id=None, customer=w.customer, currency=w.currency)
    if now is None or not now.exists:
        return UndoItem(KEEP, **base, reason="gone", detail="not in ConnectWise any more: nothing to delete")
    sent = w.sent if isinstance(w.sent, dict) else {}
    same = (now.name == sent.get("name", now.name)
            and now.type_id == (sent.get("type") or {}).get("id", now.type_id)
            and now.company_id == (sent.get("company") or {}).get("id", now.company_id))
    if now.invoiced:
        why = "ConnectWise has invoiced it"
    elif now.other_additions:
        why = f"it holds {now.other_additions} other Additions"
    elif not same:
        why = "its name, type or company was changed in ConnectWise"
    else:
        return UndoItem(DELETE_AGREEMENT, **base, detail=f"created by the run, empty once its {deleted} Additions are "
                                                         "deleted: deleted")
    return UndoItem(KEEP, **base, reason="kept", detail=f"created by the run, but {why}: it stays")


def fingerprint(run_id: int, items: list[UndoItem]) -> str:
    """What a person confirms: every item's kind, target and change (not the wording)."""
    rows = [[i.kind, i.entry_id, i.addition_id, i.agreement_id, i.reason, sorted(i.line_ids), _plain(i.changes)]
            for i in items]
    text = json.dumps([run_id, rows], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
