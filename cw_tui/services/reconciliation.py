"""Reconciliation in the app (SPEC §15, the seed's Step 5 "Validate the sync"): run the
reconcile report of a month (sync/reconcile.py: it reads ConnectWise fresh), tell progress per
agreement read, and keep the outcome for the screens: per customer and currency the rows
(Platform invoiced, posted for that month, ConnectWise now, the mismatches' reasons) and the
Additions and lines behind each row. The last one is kept in the settings table (one JSON
value for the grids, store/journal_reads.py, and a small summary for the Dashboard's tile).
Plain data: no textual here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from cw_tui.rules.money import from_micros, to_micros
from cw_tui.services import settings
from cw_tui.store import Store, journal, sync_reads
from cw_tui.store.journal_reads import RECONCILIATION_SUMMARY, reconciliation_row, report_key

Progress = Callable[[int, int], None]  # (agreements read, agreements to read)

# A mismatch's reason as a person reads it (the report's kinds; "amount" is the report before
# the journal, "changed" after)
REASONS = {
    "missing": "missing in ConnectWise",
    "duplicate": "duplicate in ConnectWise",
    "changed": "changed in ConnectWise since posted",
    "amount": "changed in ConnectWise since posted",
    "foreign": "our marker, no record of it",
}
NOT_POSTED = {"unmapped": "not posted: unmapped", "excluded": "not posted: excluded", "error": "not posted: error",
              "not synced yet": "not posted: not synced yet"}
NO_RECORD = "(no cw-tui record)"


@dataclass(frozen=True)
class Summary:
    """The last reconciliation, for the Dashboard's tile and the screen's title."""

    at: str  # ISO 8601 UTC
    period: str
    mismatches: int
    customers: int
    additions_read: int
    who: str

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Summary | None:
        if not data:
            return None
        return cls(data.get("at", ""), data.get("period", ""), int(data.get("mismatches", 0)),
                   int(data.get("customers", 0)), int(data.get("additions_read", 0)), data.get("who", ""))


def last_summary(store: Store) -> Summary | None:
    return Summary.from_json(settings.get_value(store, RECONCILIATION_SUMMARY))


def last_period(store: Store) -> str | None:
    summary = last_summary(store)
    return summary.period if summary else None


def row(store: Store, period: str, key: str) -> dict[str, Any] | None:
    """One row of the month's last reconciliation (by its grid key)."""
    found = reconciliation_row(store, period, key)
    return {**found, "period": period} if found else None


def period_summary(store: Store, period: str) -> Summary | None:
    """The month's last reconciliation (the Dashboard's is the newest of any month)."""
    return Summary.from_json(settings.get_value(store, report_key(period) + ":summary"))


def cents(micros: int | None) -> str:
    """An amount kept in micros, to the cent with thousands: 1,234.50."""
    return "—" if micros is None else f"{from_micros(int(micros)):,.2f}"


class _Counting:
    """The client, telling progress each time an agreement's Additions have been read."""

    def __init__(self, client: Any, total: int, progress: Progress | None) -> None:
        self._client, self._total, self._progress, self.read = client, total, progress, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def additions(self, *args: Any, **kwargs: Any) -> Any:
        found = await self._client.additions(*args, **kwargs)
        self.read += 1
        if self._progress is not None:
            self._progress(min(self.read, self._total), max(self._total, self.read))
        return found


def _micros(value: Decimal | None) -> int | None:
    return None if value is None else to_micros(Decimal(value))


def agreements_to_read(store: Store, period: str) -> int:
    posted = journal.posted_for_month(store, period)
    latest = journal.last_posted(store, list(posted))
    return len({(latest.get(k) or p).agreement_id or p.agreement_id for k, p in posted.items()} - {None})


async def reconcile_period(store: Store, client: Any, period: str, *, now: datetime,
                           progress: Progress | None = None) -> Summary:
    """Reconcile `period` against ConnectWise, keep the outcome, and return its summary."""
    from cw_tui.sync.reconcile import reconcile

    counting = _Counting(client, agreements_to_read(store, period), progress)
    report = await reconcile(store, counting, period)  # type: ignore[arg-type]
    return keep(store, period, report, now=now)


def keep(store: Store, period: str, report: Any, *, now: datetime, person: str | None = None) -> Summary:
    """Keep a reconcile report as the month's last reconciliation (and the newest of all)."""
    rows, items = build(store, period, report)
    mismatches = sum(1 for i in items if i["status"] in REASONS)
    at = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    summary = Summary(at, period, mismatches, len(rows), report.additions_read, person or journal.who())
    with store.atomic():
        settings.set_value(store, report_key(period), {"period": period, "at": at, "rows": rows, "items": items})
        settings.set_value(store, RECONCILIATION_SUMMARY, vars(summary))
        settings.set_value(store, report_key(period) + ":summary", vars(summary))
    return summary


def _reason(kind: str, mismatch: Any) -> str:
    reason = REASONS.get(kind, getattr(mismatch, "reason", "") or kind)
    fields = getattr(mismatch, "fields", None)
    return f"{reason} ({', '.join(fields)})" if fields else reason


def build(store: Store, period: str, report: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The screen's rows and items from a reconcile report (plain JSON values, amounts in
    micros so that SQLite sorts them as numbers). Mismatched rows first, then by customer."""
    posted = journal.posted_for_month(store, period)
    older = journal.unjournaled_markers(store, period)
    # lines synced before the journal existed: their own values (as sync/reconcile.py reads them)
    before_journal = sync_reads.posted_for_period(store, period) if older else {}
    by_marker: dict[str, list[Any]] = {}
    for m in report.mismatches:
        by_marker.setdefault(m.marker, []).append(m)
    items: list[dict[str, Any]] = []
    customers: dict[tuple[str, str], dict[str, Any]] = {}

    def row(customer: str, currency: str) -> dict[str, Any]:
        return customers.setdefault((customer, currency), {
            "customer": customer, "currency": currency, "invoiced_lines": 0, "invoiced": 0, "posted_count": 0,
            "posted": 0, "connectwise": 0, "not_posted_lines": 0, "not_posted": 0, "mismatches": 0, "reasons": set()})

    for (customer, currency), values in report.per_customer.items():
        r = row(customer or NO_RECORD, currency)
        r["posted_count"] = values.get("expected_count", 0)
        r["posted"] = _micros(values.get("expected_amount", Decimal(0)))
        r["connectwise"] = _micros(values.get("found_amount", Decimal(0)))
    for (customer, currency), (lines, amount) in journal.invoiced(store, period).items():
        r = row(customer, currency)
        r["invoiced_lines"], r["invoiced"] = lines, _micros(amount)

    for key in sorted(set(posted) | set(older)):
        p = posted.get(key)
        found = by_marker.get(key, [])
        old = before_journal.get(key, {})
        customer = (p.customer if p else "") or (found[0].customer if found else "") or old.get("customer") or ""
        currency = (p.currency if p else "") or (found[0].currency if found else "") or old.get("currency") or ""
        amount = p.amount if p else old.get("amount")
        lines = list(p.line_ids) if p else list(older.get(key, []))
        first = found[0] if found else None
        addition_ids = getattr(first, "addition_ids", None) or ([p.addition_id] if p and p.addition_id else [])
        items.append({
            "customer": customer, "currency": currency, "kind": "addition",
            "status": ("changed" if first.kind == "amount" else first.kind) if first else "ok",
            "reason": "; ".join(_reason(m.kind, m) + (f": {m.detail}" if m.detail else "") for m in found)
            or "ConnectWise holds what was posted",
            "marker": key, "agreement": (getattr(first, "agreement_id", None) if first else None)
            or (p.agreement_id if p else old.get("agreement")),
            "addition": ", ".join(str(a) for a in addition_ids),
            "invoiced": None, "posted": _micros(amount), "connectwise": None if first else _micros(amount),
            "lines": f"{len(lines)}: {', '.join(lines[:3])}{', …' if len(lines) > 3 else ''}" if lines else "",
        })
        r = row(customer, currency)
        for m in found:
            r["mismatches"] += 1
            r["reasons"].add(REASONS.get(m.kind, m.kind))
    for m in report.mismatches:
        if m.kind != "foreign":
            continue
        items.append({"customer": NO_RECORD, "currency": m.currency or "", "kind": "addition", "status": "foreign",
                      "reason": f"{_reason('foreign', m)}: {m.detail}", "marker": m.marker,
                      "agreement": getattr(m, "agreement_id", None),
                      "addition": ", ".join(str(a) for a in getattr(m, "addition_ids", []) or []),
                      "posted": None, "connectwise": None, "lines": ""})
        r = row(NO_RECORD, m.currency or "")
        r["mismatches"] += 1
        r["reasons"].add(REASONS["foreign"])
    not_posted = getattr(report, "not_posted", None)
    if not_posted is None:
        not_posted = journal.lines_not_posted(store, period)
    for line in not_posted:
        items.append({"customer": line.customer or "", "currency": line.currency, "kind": "line",
                      "status": line.reason, "reason": line.detail or NOT_POSTED.get(line.reason, line.reason), "marker": "", "agreement": None, "addition": "",
                      "posted": None, "connectwise": None, "invoiced": _micros(line.amount), "lines": line.line_id})
        r = row(line.customer or "", line.currency)
        r["not_posted_lines"] += 1
        r["not_posted"] += _micros(line.amount) or 0
    rows = []
    for r in customers.values():
        reasons = sorted(r.pop("reasons"))
        if r["not_posted_lines"]:
            reasons.append(f"{r['not_posted_lines']:,} not posted")
        r["reasons"] = "; ".join(reasons)
        r["status"] = (f"{r['mismatches']:,} mismatch" + ("es" if r["mismatches"] != 1 else "")) if r["mismatches"] \
            else ("unposted" if r["not_posted_lines"] else "OK")
        rows.append(r)
    rows.sort(key=lambda r: (r["mismatches"] == 0, r["customer"].casefold(), r["currency"]))
    items.sort(key=lambda i: (i["status"] == "ok", i["kind"] != "addition", i["marker"], i["lines"]))
    return rows, items
