"""Loading Platform data into the store (SPEC §5.2, §5.3, §9).

A load validates everything first (platform_files) and then writes in one transaction, so a
bad file leaves the store exactly as it was. Re-loading a period refreshes unsynced lines
from the Platform, keeps what a person edited (overrides, typed dates), never touches synced
lines (or lines a running sync has claimed), and removes unsynced lines gone from the Platform,
but only with consent for exactly those lines. A line ID already loaded for another period
is an error: the line would move, or (synced) its new charge would never be posted.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import peewee as pw

from cw_tui.platform.files import (
    InvoiceLineRow,
    LineCells,
    PlatformData,
    PlatformDataError,
    StreamedExport,
    cells_of,
    locate_lines,
    period_filter,
    read_export,
    since_filter,
)
from cw_tui.rules.charge_dates import Badge, ChargeDateRules, LineDates, charge_dates_at_load
from cw_tui.rules.money import total_micros
from cw_tui.rules.vocabulary import BillingCycle, ChargeType, InvoiceStatus
from cw_tui.services import system_log
from cw_tui.services.activity import recorded
from cw_tui.services.system_log import Category, Level
from cw_tui.store import InvoiceLine, LoadedPeriod, PeriodNewSubscription, Store, line_loads, line_staging, now_utc, utc_to_text
from cw_tui.store.line_staging import LOAD

# A line in these states belongs to ConnectWise (or to a running sync): a load leaves it be.
UNTOUCHABLE_STATUSES = ("synced", "claimed")


@contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """A load allocates ~10 objects per line and frees none until it ends: the cyclic GC
    would walk them again and again for nothing (measured: a third of the load time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class RemovalsNeedConsent(Exception):
    """The load would remove unsynced lines that are gone from the Platform export; nothing
    was written. Loading again with `allow_removals=consent` removes exactly these lines."""

    def __init__(self, line_ids: dict[str, list[str]]) -> None:
        self.line_ids = line_ids  # period -> sorted line IDs
        self.count = sum(len(ids) for ids in line_ids.values())
        self.consent = _removal_consent(i for ids in line_ids.values() for i in ids)
        super().__init__(f"the load would remove {self.count} unsynced line(s) no longer in the Platform export")


def _removal_consent(line_ids: Iterable[str]) -> str:
    """A short code for a set of lines: consent given for one set is not consent for another."""
    return hashlib.sha256("\n".join(sorted(line_ids)).encode()).hexdigest()[:12]


class _LoadedElsewhere(Exception):
    def __init__(self, lines: list[tuple[str, str, str, str]]) -> None:
        self.lines = lines  # (line ID, its period in the export, its period in the store, its sync status)


@dataclass
class PeriodLoad:
    period: str
    lines: int = 0  # lines of this period in the store after the load
    added: int = 0
    refreshed: int = 0
    removed: int = 0
    kept_synced: int = 0
    skipped_new: int = 0
    # what a re-load found different in the Platform's values (report only: what is loaded is the same)
    changed: int = 0  # refreshed lines whose Platform values changed
    changed_fields: dict[str, int] = field(default_factory=dict)  # field -> lines it changed on
    changed_lines: dict[str, list[str]] = field(default_factory=dict)  # line ID -> its changed fields (first few)
    synced_changed: int = 0  # synced lines the Platform changed since: kept as posted (correct them in ConnectWise)

    def summary(self) -> str:
        """What this load did to the period, in a finance user's words."""
        parts = [f"{self.added:,} new", f"{self.changed:,} changed" + (f" ({changed_fields_text(self.changed_fields)})"
                                                                       if self.changed_fields else ""),
                 f"{self.removed:,} removed", f"{self.skipped_new:,} skipped as New"]
        if self.synced_changed:
            parts.append(f"{self.synced_changed:,} synced line{'s' if self.synced_changed != 1 else ''} changed on the "
                         "Platform, kept as posted")
        return ", ".join(parts)


CHANGED_SHOWN = 20  # changed lines named one by one in a report; the counts cover them all

# The Platform's own values of a stored line, compared at a re-load (stored column, its name for a person)
COMPARED_COLUMNS = (
    ("invoice_number", "invoice number"), ("invoice_date", "invoice date"), ("invoice_status", "invoice status"),
    ("organization_id", "organization"), ("contract_id", "contract"), ("subscription_id", "subscription"),
    ("subscription_name", "subscription name"), ("offer_id", "offer"), ("charge_type", "charge type"),
    ("billing_cycle", "billing cycle"), ("quantity", "quantity"), ("unit_price", "unit price"),
    ("unit_cost", "unit cost"), ("currency", "currency"), ("platform_charge_start", "charge start"),
    ("platform_charge_end", "charge end"),
)


def changed_fields_text(counts: dict[str, int]) -> str:
    """`quantity 3, unit price 1`: the fields, most changed first."""
    return ", ".join(f"{name} {count:,}" for name, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass
class InvoiceLoad:
    periods: list[PeriodLoad] = field(default_factory=list)
    organizations_added: int = 0
    offers_added: int = 0
    contracts_added: int = 0


@dataclass
class ProductLoad:
    since: date
    offers: int = 0
    offers_added: int = 0


def _upsert_references(store: Store, data: PlatformData | StreamedExport, ids: tuple[set[str], set[str], set[str]],
                       now: datetime) -> tuple[int, int, int]:
    """Insert or refresh the organizations, offers and contracts of these IDs (organization,
    offer, contract). Mappings and the Excluded flag are kept; new organizations start excluded."""
    stamp = utc_to_text(now)
    org_ids, offer_ids, contract_ids = ids
    before = [line_loads.existing_ids(store, t, ids) for t, ids in (("organization", org_ids), ("offer", offer_ids), ("contract", contract_ids))]

    line_loads.upsert(store, "organization",
            ["platform_id", "name", "reference", "status", "excluded", "first_seen_at", "updated_at"],
            [(o.organization_id, o.name, o.reference, o.status, True, stamp, stamp) for o in map(data.organizations.__getitem__, sorted(org_ids))],
            ["name", "reference", "status", "updated_at"])
    line_loads.upsert(store, "offer",
            ["platform_id", "name", "external_id", "vendor", "updated_at"],
            [(o.offer_id, o.name, o.external_id, o.vendor, stamp) for o in map(data.offers.__getitem__, sorted(offer_ids))],
            ["name", "external_id", "vendor", "updated_at"])
    line_loads.upsert(store, "contract",
            ["platform_id", "organization_id", "billing_day", "currency", "contract_type", "updated_at"],
            [(c.contract_id, c.organization_id, c.billing_day, c.currency, c.contract_type, stamp)
             for c in map(data.contracts.__getitem__, sorted(contract_ids))],
            ["organization_id", "billing_day", "currency", "contract_type", "updated_at"])
    return (len(org_ids - before[0]), len(offer_ids - before[1]), len(contract_ids - before[2]))


def _reference_ids(lines: Iterable[InvoiceLineRow], *, with_orgs: bool = True,
                   with_offers: bool = True) -> tuple[set[str], set[str], set[str]]:
    return ({line.organization_id for line in lines} if with_orgs else set(),
            {line.offer_id for line in lines} if with_offers else set(),
            {line.contract_id for line in lines} if with_orgs else set())


_LINE_COLUMNS = (
    "line_id", "period", "invoice_number", "invoice_date", "invoice_status", "organization_id", "contract_id",
    "subscription_id", "subscription_name", "offer_id", "charge_type", "billing_cycle", "quantity", "unit_price",
    "unit_cost", "total", "currency", "platform_charge_start", "platform_charge_end", "charge_start",
    "charge_start_badge", "charge_end", "charge_end_badge", "override_company_id", "override_product_id",
    "override_agreement_id", "sync_status", "addition_id", "last_error", "last_sync_at", "claimed_by", "claimed_at",
    "loaded_at", "posted_agreement_id", "posted_run_id", "changed_by", "changed_at",
)
assert set(_LINE_COLUMNS) == {f.column_name for f in InvoiceLine._meta.sorted_fields}, "InvoiceLine changed: update _LINE_COLUMNS"
assert _LINE_COLUMNS[: len(line_staging.STAGED_COLUMNS)] == line_staging.STAGED_COLUMNS


class _ChargeDates:
    """charge_dates_at_load of a streamed line, as stored text. The lines of a month share a few
    hundred combinations of dates, type and cycle: each is worked out once."""

    LIMIT = 20_000  # combinations kept (a bound, whatever the file)

    def __init__(self, rules: ChargeDateRules) -> None:
        self.rules = rules
        self.known: dict[tuple, tuple[str, str, str | None, str]] = {}

    def __call__(self, line: LineCells) -> tuple[str, str, str | None, str]:
        key = (line.charge_type, line.billing_cycle, line.invoice_date, line.charge_start, line.charge_end)
        found = self.known.get(key)
        if found is None:
            if len(self.known) >= self.LIMIT:
                self.known.clear()
            dates = charge_dates_at_load(LineDates(
                date.fromisoformat(line.invoice_date), line.charge_type, line.billing_cycle,
                date.fromisoformat(line.charge_start), date.fromisoformat(line.charge_end) if line.charge_end else None,
            ), self.rules)
            found = self.known[key] = (dates.start.isoformat(), dates.start_badge.value,
                                       dates.end.isoformat() if dates.end else None, dates.end_badge.value)
        return found


_TEXT = {member: member.value for enum in (InvoiceStatus, ChargeType, BillingCycle) for member in enum}


def _staged_values(line: LineCells, period: str, dates: _ChargeDates) -> tuple:
    """What a load computes of a line (line_staging.STAGED_COLUMNS), before what a person typed."""
    (line_id, number, day, status, org, contract, sub, sub_name, offer, charge, cycle, quantity, unit_price,
     unit_cost, currency, start, end) = line
    return (line_id, period, number, day, _TEXT[status], org, contract, sub, sub_name, offer, _TEXT[charge],
            _TEXT[cycle], quantity, unit_price, unit_cost, total_micros(quantity, unit_price), currency, start, end,
            *dates(line))


_UNSTAGED = (None,) * (len(line_staging.STAGED_COLUMNS) - 1)


def _typed_dates(chunk: list[tuple], rules: ChargeDateRules) -> list[tuple]:
    """The dates of re-loaded lines a person typed a date on: theirs win (SPEC §9)."""
    updates = []
    for seq, invoiced, charge_type, cycle, start, end, kept_start, start_badge, kept_end, end_badge in chunk:
        user_end_set = end_badge == Badge.USER
        dates = charge_dates_at_load(
            LineDates(date.fromisoformat(invoiced), ChargeType(charge_type), BillingCycle(cycle),
                      date.fromisoformat(start), date.fromisoformat(end) if end else None),
            rules, user_start=date.fromisoformat(kept_start) if start_badge == Badge.USER else None,
            user_end=date.fromisoformat(kept_end) if user_end_set and kept_end else None, user_end_set=user_end_set)
        updates.append((dates.start.isoformat(), dates.start_badge.value, dates.end.isoformat() if dates.end else None,
                        dates.end_badge.value, seq))
    return updates


def load_invoices(store: Store, folder: Path | str, periods: list[str], rules: ChargeDateRules, *,
                  allow_removals: str | None = None, now: datetime | None = None) -> InvoiceLoad:
    """Load the invoice lines of `periods` (YYYY-MM) from the export folder. Raises
    PlatformDataError for bad input, RemovalsNeedConsent unless `allow_removals` is the
    consent code of the lines the load would remove; either way nothing is written."""
    with _no_gc_pauses():
        periods = sorted(set(periods))
        staging = line_staging.Staging(store)
        try:
            return _load_invoices(store, staging, folder, periods, rules, allow_removals, now)
        except _LoadedElsewhere as elsewhere:
            raise PlatformDataError(_loaded_elsewhere_errors(folder, elsewhere.lines)) from None
        finally:
            staging.close()


def _stage(store: Store, staging: line_staging.Staging, folder: Path | str, periods: list[str],
           rules: ChargeDateRules) -> tuple[PlatformData | StreamedExport, tuple[set[str], set[str], set[str]], dict[str, int]]:
    """Stream the export's lines into the staging table (nothing of the store is written).
    At the first problem the folder is read again in full by read_export, which raises with
    every problem, as ever; a folder it reads without one (JSON files) is staged from that.
    Returns where the lines' references are, their IDs, and the lines of each period."""
    include, wanted = period_filter(periods)
    scan = StreamedExport(folder, wanted, required=periods)  # missing files: PlatformDataError
    ids: tuple[set[str], set[str], set[str]] = (set(), set(), set())
    orgs, offers, contracts = ids
    dates = _ChargeDates(rules)
    staged: dict[str, int] = {}  # period -> its lines in this load

    def streamed() -> Iterator[tuple]:
        for seq, (kind, line, period) in enumerate(scan.lines()):
            if kind == LOAD:
                staged[period] = staged.get(period, 0) + 1
                orgs.add(line.organization_id)
                offers.add(line.offer_id)
                contracts.add(line.contract_id)
                yield (*_staged_values(line, period, dates), seq, LOAD)
            else:
                yield (line.line_id, *_UNSTAGED, seq, kind)

    with store.atomic():  # only the staging table is written: the store is not locked yet
        staging.reset()
        staging.add(streamed())
        if scan.clean and staging.index():
            return scan, ids, staged
    data = read_export(folder, include, wanted, required=periods)  # raises PlatformDataError
    with store.atomic():
        staging.reset()
        staging.add((*_staged_values(cells_of(row), row.period, dates), seq, LOAD) for seq, row in enumerate(data.lines))
        staging.index()
    staged.clear()
    for row in data.lines:
        staged[row.period] = staged.get(row.period, 0) + 1
    return data, _reference_ids(data.lines), staged


def _load_invoices(store: Store, staging: line_staging.Staging, folder: Path | str, periods: list[str],
                   rules: ChargeDateRules, allow_removals: str | None, now: datetime | None) -> InvoiceLoad:
    data, ids, staged = _stage(store, staging, folder, periods, rules)  # raises PlatformDataError; nothing written yet
    now = now or now_utc()
    loaded_at = utc_to_text(now)
    report = InvoiceLoad(periods=[PeriodLoad(p, skipped_new=data.skipped_new.get(p, 0)) for p in periods])
    by_period = {p.period: p for p in report.periods}
    compared = [c for c, _ in COMPARED_COLUMNS]

    with recorded(store, "invoices", ", ".join(periods)), store.atomic("IMMEDIATE"):
        staging.match(compared)
        elsewhere = staging.loaded_elsewhere()
        if elsewhere:
            raise _LoadedElsewhere(sorted(elsewhere))
        removals: dict[str, list[str]] = {}
        any_gone = staging.any_gone(periods)
        for period, line_id, status in staging.gone(periods) if any_gone else ():
            if status in UNTOUCHABLE_STATUSES:
                by_period[period].kept_synced += 1
            else:
                by_period[period].removed += 1
                removals.setdefault(period, []).append(line_id)
        if removals:
            need = RemovalsNeedConsent({p: sorted(ids) for p, ids in sorted(removals.items())})
            if allow_removals != need.consent:
                raise need
            del need

        for period, (lines, kept, synced_changed, refreshed, changed, *fields) in staging.period_counts(staged, compared).items():
            stats = by_period[period]
            stats.added, stats.refreshed, stats.changed = lines - kept - refreshed, refreshed, changed
            stats.kept_synced += kept
            stats.synced_changed = synced_changed
            stats.changed_fields = {name: count for (_, name), count in zip(COMPARED_COLUMNS, fields, strict=True) if count}
            for line_id, mask in staging.changed_lines(period, CHANGED_SHOWN):
                stats.changed_lines[line_id] = [name for i, (_, name) in enumerate(COMPARED_COLUMNS) if mask >> i & 1]
        for chunk in staging.typed_dates():
            staging.set_dates(_typed_dates(chunk, rules))
        staging.apply(periods, loaded_at, removals=bool(removals), new_lines=any(p.added for p in report.periods))

        (report.organizations_added, report.offers_added, report.contracts_added) = _upsert_references(store, data, ids, now)
        counts = dict(
            InvoiceLine.select(InvoiceLine.period, pw.fn.COUNT(InvoiceLine.line_id))
            .where(InvoiceLine.period.in_(periods)).group_by(InvoiceLine.period).tuples()
        )
        for stats in report.periods:
            stats.lines = counts.get(stats.period, 0)
            _record_period_load(stats.period, now, data.skipped_new.get(stats.period, 0),
                                data.new_subscriptions.get(stats.period, set()))
            system_log.write(
                store, Level.INFO, Category.INVOICES,
                f"Loaded invoice lines for {stats.period}: {stats.lines} lines",
                f"{stats.summary()}; refreshed {stats.refreshed}, kept {stats.kept_synced} already synced; "
                f"from {Path(folder)}",
                at=now,
            )
    return report


def _loaded_elsewhere_errors(folder: Path | str, lines: list[tuple[str, str, str, str]]) -> list[str]:
    """Name both places of each line: where this load read it, and where the other period's
    line is (its file, read again now; else the store)."""
    found = locate_lines(folder, {(line_id, p) for line_id, new, old, _ in lines for p in (new, old)})
    errors = []
    for line_id, new, old, status in lines:
        here = found.get((line_id, new), f"{Path(folder).name} ({new})")
        state = {"synced": "synced", "claimed": "being synced"}.get(status, "not synced")
        there = found.get((line_id, old))
        if there:
            errors.append(f"{here}: line_id: line ID {line_id!r} is also in {there} ({old}, already loaded, {state})")
        elif status in UNTOUCHABLE_STATUSES:
            errors.append(f"{here}: line_id: line ID {line_id!r} is already loaded for {old} and {state}, "
                          f"though no longer in that month's file")
        else:
            errors.append(f"{here}: line_id: line ID {line_id!r} is already loaded for {old} (not synced), though no "
                          f"longer in that month's file: load {old} on its own first, to remove it there")
    return errors


def _record_period_load(period: str, now: datetime, new_lines: int, new_subscriptions: set[str]) -> None:
    """What this load saw of the period's New invoices: they keep the period open."""
    LoadedPeriod.insert(period=period, loaded_at=now, new_lines=new_lines).on_conflict_replace().execute()
    PeriodNewSubscription.delete().where(PeriodNewSubscription.period == period).execute()
    rows = [{"period": period, "subscription_id": s} for s in sorted(new_subscriptions)]
    for start in range(0, len(rows), line_loads.CHUNK):
        PeriodNewSubscription.insert_many(rows[start : start + line_loads.CHUNK]).execute()


def load_products(store: Store, folder: Path | str, since: date, *, now: datetime | None = None) -> ProductLoad:
    """Load the offers that appear on invoice lines dated `since` or later."""
    include, wanted = since_filter(since)
    with _no_gc_pauses():
        data = read_export(folder, include, wanted)
    now = now or now_utc()
    report = ProductLoad(since=since)
    with store.atomic("IMMEDIATE"):
        _, report.offers_added, _ = _upsert_references(store, data, _reference_ids(data.lines, with_orgs=False), now)
        report.offers = len({line.offer_id for line in data.lines})
        system_log.write(
            store, Level.INFO, Category.PRODUCTS,
            f"Loaded {report.offers} offers from invoice lines since {since.isoformat()}",
            f"{report.offers_added} new offers; from {Path(folder)}", at=now,
        )
    return report


def refresh_organizations(store: Store, folder: Path | str, since: date, *, now: datetime | None = None) -> tuple[int, int]:
    """The Organization list is the organizations on valid invoices (SPEC §5.1): add those
    invoiced since `since`, refresh names and statuses; mappings and exclusions are kept.
    Returns (organizations on those invoices, new ones)."""
    include, wanted = since_filter(since)
    with _no_gc_pauses():
        data = read_export(folder, include, wanted)
    now = now or now_utc()
    with store.atomic("IMMEDIATE"):
        added, _, _ = _upsert_references(store, data, _reference_ids(data.lines, with_offers=False), now)
    return len({line.organization_id for line in data.lines}), added
