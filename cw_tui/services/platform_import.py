"""Loading Platform data into the store (SPEC §5.2, §5.3, §9).

A load validates everything first (platform_files) and then writes in one transaction, so a
bad file leaves the store exactly as it was. Re-loading a period refreshes unsynced lines
from the Platform, keeps what a person edited (overrides, typed dates), never touches synced
lines (or lines a running sync has claimed), and removes unsynced lines gone from the Platform.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import peewee as pw

from cw_tui.rules.charge_dates import Badge, ChargeDateRules, LineDates, charge_dates_at_load
from cw_tui.services import system_log
from cw_tui.services.money import line_total, to_micros
from cw_tui.services.platform_files import (
    InvoiceLineRow,
    PlatformData,
    period_filter,
    read_export,
    since_filter,
)
from cw_tui.services.store import InvoiceLine, LoadedPeriod, PeriodNewSubscription, Store, now_utc, utc_to_text
from cw_tui.services.system_log import Category, Level

# A line in these states belongs to ConnectWise (or to a running sync): a load leaves it be.
UNTOUCHABLE_STATUSES = ("synced", "claimed")
_CHUNK = 500


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


@dataclass
class PeriodLoad:
    period: str
    lines: int = 0  # lines of this period in the store after the load
    added: int = 0
    refreshed: int = 0
    removed: int = 0
    kept_synced: int = 0
    skipped_new: int = 0


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


def _upsert(store: Store, table: str, columns: list[str], rows: list[tuple], refreshed: list[str]) -> None:
    """Insert rows; on an existing ID refresh only `refreshed` columns (mappings are kept)."""
    if not rows:
        return
    quoted = ", ".join(f'"{c}"' for c in columns)
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in refreshed)
    sql = (
        f'INSERT INTO "{table}" ({quoted}) VALUES ({", ".join("?" * len(columns))}) '
        f'ON CONFLICT("{columns[0]}") DO UPDATE SET {updates}'
    )
    store.db.cursor().executemany(sql, rows)


def _existing_ids(store: Store, table: str, ids: set[str]) -> set[str]:
    found: set[str] = set()
    id_list = list(ids)
    cursor = store.db.cursor()
    for start in range(0, len(id_list), _CHUNK):
        chunk = id_list[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        found.update(r[0] for r in cursor.execute(f'SELECT platform_id FROM "{table}" WHERE platform_id IN ({marks})', chunk))
    return found


def _upsert_references(store: Store, data: PlatformData, lines: list[InvoiceLineRow], now: datetime, *,
                       with_orgs: bool = True, with_offers: bool = True) -> tuple[int, int, int]:
    """Insert or refresh the organizations, offers and contracts that `lines` refer to.
    Mappings and the Excluded flag are kept; new organizations start excluded."""
    stamp = utc_to_text(now)
    org_ids = {line.organization_id for line in lines} if with_orgs else set()
    offer_ids = {line.offer_id for line in lines} if with_offers else set()
    contract_ids = {line.contract_id for line in lines} if with_orgs else set()
    before = [_existing_ids(store, t, ids) for t, ids in (("organization", org_ids), ("offer", offer_ids), ("contract", contract_ids))]

    _upsert(store, "organization",
            ["platform_id", "name", "reference", "status", "excluded", "first_seen_at", "updated_at"],
            [(o.organization_id, o.name, o.reference, o.status, 1, stamp, stamp) for o in map(data.organizations.__getitem__, sorted(org_ids))],
            ["name", "reference", "status", "updated_at"])
    _upsert(store, "offer",
            ["platform_id", "name", "external_id", "vendor", "updated_at"],
            [(o.offer_id, o.name, o.external_id, o.vendor, stamp) for o in map(data.offers.__getitem__, sorted(offer_ids))],
            ["name", "external_id", "vendor", "updated_at"])
    _upsert(store, "contract",
            ["platform_id", "organization_id", "billing_day", "currency", "contract_type", "updated_at"],
            [(c.contract_id, c.organization_id, c.billing_day, c.currency, c.contract_type, stamp)
             for c in map(data.contracts.__getitem__, sorted(contract_ids))],
            ["organization_id", "billing_day", "currency", "contract_type", "updated_at"])
    return (len(org_ids - before[0]), len(offer_ids - before[1]), len(contract_ids - before[2]))


_LINE_COLUMNS = (
    "line_id", "period", "invoice_number", "invoice_date", "invoice_status", "organization_id", "contract_id",
    "subscription_id", "subscription_name", "offer_id", "charge_type", "billing_cycle", "quantity", "unit_price",
    "unit_cost", "total", "currency", "platform_charge_start", "platform_charge_end", "charge_start",
    "charge_start_badge", "charge_end", "charge_end_badge", "override_company_id", "override_product_id",
    "override_agreement_id", "sync_status", "addition_id", "last_error", "last_sync_at", "claimed_by", "claimed_at",
    "loaded_at", "posted_agreement_id", "posted_run_id",
)
assert set(_LINE_COLUMNS) == {f.column_name for f in InvoiceLine._meta.sorted_fields}, "InvoiceLine changed: update _LINE_COLUMNS"
_NO_KEPT: dict[str, Any] = {}


def _line_values(row: InvoiceLineRow, kept: dict[str, Any] | None, rules: ChargeDateRules, loaded_at: str) -> tuple:
    """The stored row of a line (in _LINE_COLUMNS order), merging what a person edited."""
    kept = kept or _NO_KEPT
    user_start = date.fromisoformat(kept["charge_start"]) if kept.get("charge_start_badge") == Badge.USER else None
    user_end_set = kept.get("charge_end_badge") == Badge.USER
    user_end = date.fromisoformat(kept["charge_end"]) if user_end_set and kept.get("charge_end") else None
    dates = charge_dates_at_load(
        LineDates(row.invoice_date, row.charge_type, row.billing_cycle, row.charge_start, row.charge_end),
        rules, user_start=user_start, user_end=user_end, user_end_set=user_end_set,
    )
    return (
        row.line_id, row.period, row.invoice_number, row.invoice_date.isoformat(), row.invoice_status.value,
        row.organization_id, row.contract_id, row.subscription_id, row.subscription_name, row.offer_id,
        row.charge_type.value, row.billing_cycle.value, to_micros(row.quantity), to_micros(row.unit_price),
        to_micros(row.unit_cost), to_micros(line_total(row.quantity, row.unit_price)), row.currency,
        row.charge_start.isoformat(), row.charge_end.isoformat() if row.charge_end else None,
        dates.start.isoformat(), dates.start_badge.value, dates.end.isoformat() if dates.end else None,
        dates.end_badge.value, kept.get("override_company_id"), kept.get("override_product_id"),
        kept.get("override_agreement_id"), kept.get("sync_status", "not_synced"), kept.get("addition_id"),
        kept.get("last_error"), kept.get("last_sync_at"), None, None, loaded_at,
        # an earlier attempt may have reached ConnectWise: keep where, so the marker is looked up
        kept.get("posted_agreement_id"), kept.get("posted_run_id"),
    )


_KEPT_COLUMNS = [
    "line_id", "period", "sync_status", "charge_start", "charge_start_badge", "charge_end", "charge_end_badge",
    "override_company_id", "override_product_id", "override_agreement_id", "addition_id", "last_error", "last_sync_at",
    "posted_agreement_id", "posted_run_id",
]


def _existing_lines(store: Store, periods: list[str], line_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Stored lines of these periods, and stored lines (of any period) with these IDs."""
    cursor = store.db.cursor()
    select = f"SELECT {', '.join(_KEPT_COLUMNS)} FROM invoice_line"
    found: dict[str, dict[str, Any]] = {}
    marks = ",".join("?" * len(periods))
    for values in cursor.execute(f"{select} WHERE period IN ({marks})", periods):
        found[values[0]] = dict(zip(_KEPT_COLUMNS, values))
    for start in range(0, len(line_ids), _CHUNK):
        chunk = line_ids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for values in cursor.execute(f"{select} WHERE line_id IN ({marks})", chunk):
            found.setdefault(values[0], dict(zip(_KEPT_COLUMNS, values)))
    return found


def load_invoices(store: Store, folder: Path | str, periods: list[str], rules: ChargeDateRules, *, now: datetime | None = None) -> InvoiceLoad:
    """Load the invoice lines of `periods` (YYYY-MM) from the export folder."""
    with _no_gc_pauses():
        return _load_invoices(store, folder, periods, rules, now)


def _load_invoices(store: Store, folder: Path | str, periods: list[str], rules: ChargeDateRules, now: datetime | None) -> InvoiceLoad:
    periods = sorted(set(periods))
    include, wanted = period_filter(periods)
    data = read_export(folder, include, wanted)  # raises PlatformDataError; nothing written yet
    now = now or now_utc()
    loaded_at = utc_to_text(now)
    report = InvoiceLoad(periods=[PeriodLoad(p, skipped_new=data.skipped_new.get(p, 0)) for p in periods])
    by_period = {p.period: p for p in report.periods}

    with store.db.atomic("IMMEDIATE"):
        existing = _existing_lines(store, periods, [line.line_id for line in data.lines])
        incoming_ids = {line.line_id for line in data.lines}
        to_delete = []
        for line_id, kept in existing.items():
            if kept["sync_status"] in UNTOUCHABLE_STATUSES:
                if line_id not in incoming_ids and kept["period"] in by_period:
                    by_period[kept["period"]].kept_synced += 1
                continue
            to_delete.append(line_id)
            if line_id not in incoming_ids and kept["period"] in by_period:
                by_period[kept["period"]].removed += 1

        def rows() -> Iterator[tuple]:
            for line in data.lines:
                kept = existing.get(line.line_id)
                stats = by_period[line.period]
                if kept and kept["sync_status"] in UNTOUCHABLE_STATUSES:
                    stats.kept_synced += 1
                    continue
                if kept:
                    stats.refreshed += 1
                else:
                    stats.added += 1
                yield _line_values(line, kept, rules, loaded_at)

        cursor = store.db.cursor()
        for start in range(0, len(to_delete), _CHUNK):
            chunk = to_delete[start : start + _CHUNK]
            cursor.execute(f"DELETE FROM invoice_line WHERE line_id IN ({','.join('?' * len(chunk))})", chunk)
        insert = f"INSERT INTO invoice_line ({', '.join(_LINE_COLUMNS)}) VALUES ({', '.join('?' * len(_LINE_COLUMNS))})"
        cursor.executemany(insert, rows())  # streamed: no second copy of every line in memory
        (report.organizations_added, report.offers_added, report.contracts_added) = _upsert_references(store, data, data.lines, now)
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
                f"added {stats.added}, refreshed {stats.refreshed}, removed {stats.removed}, "
                f"kept {stats.kept_synced} already synced, skipped {stats.skipped_new} of invoices in status New; "
                f"from {Path(folder)}",
                at=now,
            )
    return report


def _record_period_load(period: str, now: datetime, new_lines: int, new_subscriptions: set[str]) -> None:
    """What this load saw of the period's New invoices: they keep the period open."""
    LoadedPeriod.insert(period=period, loaded_at=now, new_lines=new_lines).on_conflict_replace().execute()
    PeriodNewSubscription.delete().where(PeriodNewSubscription.period == period).execute()
    rows = [{"period": period, "subscription_id": s} for s in sorted(new_subscriptions)]
    for start in range(0, len(rows), _CHUNK):
        PeriodNewSubscription.insert_many(rows[start : start + _CHUNK]).execute()


def load_products(store: Store, folder: Path | str, since: date, *, now: datetime | None = None) -> ProductLoad:
    """Load the offers that appear on invoice lines dated `since` or later."""
    include, wanted = since_filter(since)
    with _no_gc_pauses():
        data = read_export(folder, include, wanted)
    now = now or now_utc()
    report = ProductLoad(since=since)
    with store.db.atomic("IMMEDIATE"):
        _, report.offers_added, _ = _upsert_references(store, data, data.lines, now, with_orgs=False)
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
    with store.db.atomic("IMMEDIATE"):
        added, _, _ = _upsert_references(store, data, data.lines, now, with_offers=False)
    return len({line.organization_id for line in data.lines}), added
