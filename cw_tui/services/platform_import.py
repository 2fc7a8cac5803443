"""Loading Platform data into the store (SPEC §5.2, §5.3, §9).

A load validates everything first (platform_files) and then writes in one transaction, so a
bad file leaves the store exactly as it was. Re-loading a period refreshes unsynced lines
from the Platform, keeps what a person edited (overrides, typed dates), never touches synced
lines (or lines a running sync has claimed), and removes unsynced lines gone from the Platform.
"""

from __future__ import annotations

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
from cw_tui.services.store import (
    Contract,
    InvoiceLine,
    Offer,
    Organization,
    Store,
    now_utc,
    utc_to_text,
)
from cw_tui.services.system_log import Category, Level

# A line in these states belongs to ConnectWise (or to a running sync): a load leaves it be.
UNTOUCHABLE_STATUSES = ("synced", "claimed")
_CHUNK = 500


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


def _upsert_references(data: PlatformData, lines: list[InvoiceLineRow], now: datetime, *, with_orgs: bool = True) -> tuple[int, int, int]:
    """Insert or refresh the organizations, offers and contracts that `lines` refer to.
    Mappings and the Excluded flag are kept; new organizations start excluded."""
    stamp = now
    org_ids = {line.organization_id for line in lines} if with_orgs else set()
    offer_ids = {line.offer_id for line in lines}
    contract_ids = {line.contract_id for line in lines} if with_orgs else set()

    def existing(model: Any, ids: set[str]) -> set[str]:
        found: set[str] = set()
        id_list = list(ids)
        for start in range(0, len(id_list), _CHUNK):
            chunk = id_list[start : start + _CHUNK]
            found.update(r[0] for r in model.select(model.platform_id).where(model.platform_id.in_(chunk)).tuples())
        return found

    orgs_before, offers_before, contracts_before = existing(Organization, org_ids), existing(Offer, offer_ids), existing(Contract, contract_ids)

    org_rows = [
        {"platform_id": o.organization_id, "name": o.name, "reference": o.reference, "status": o.status,
         "excluded": True, "first_seen_at": stamp, "updated_at": stamp}
        for o in (data.organizations[i] for i in sorted(org_ids))
    ]
    offer_rows = [
        {"platform_id": o.offer_id, "name": o.name, "external_id": o.external_id, "vendor": o.vendor, "updated_at": stamp}
        for o in (data.offers[i] for i in sorted(offer_ids))
    ]
    contract_rows = [
        {"platform_id": c.contract_id, "organization_id": c.organization_id, "billing_day": c.billing_day,
         "currency": c.currency, "contract_type": c.contract_type, "updated_at": stamp}
        for c in (data.contracts[i] for i in sorted(contract_ids))
    ]
    for model, rows, refreshed in (
        (Organization, org_rows, ["name", "reference", "status", "updated_at"]),
        (Offer, offer_rows, ["name", "external_id", "vendor", "updated_at"]),
        (Contract, contract_rows, ["organization_id", "billing_day", "currency", "contract_type", "updated_at"]),
    ):
        for start in range(0, len(rows), 100):
            (
                model.insert_many(rows[start : start + 100])
                .on_conflict(conflict_target=[model.platform_id], preserve=[getattr(model, f) for f in refreshed])
                .execute()
            )
    return (len(org_ids - orgs_before), len(offer_ids - offers_before), len(contract_ids - contracts_before))


_LINE_COLUMNS = [f.column_name for f in InvoiceLine._meta.sorted_fields]


def _line_values(row: InvoiceLineRow, kept: dict[str, Any] | None, rules: ChargeDateRules, loaded_at: str) -> tuple:
    """The stored row of a line (in _LINE_COLUMNS order), merging what a person edited."""
    kept = kept or {}
    user_start = date.fromisoformat(kept["charge_start"]) if kept.get("charge_start_badge") == Badge.USER else None
    user_end_set = kept.get("charge_end_badge") == Badge.USER
    user_end = date.fromisoformat(kept["charge_end"]) if user_end_set and kept.get("charge_end") else None
    dates = charge_dates_at_load(
        LineDates(row.invoice_date, row.charge_type, row.billing_cycle, row.charge_start, row.charge_end),
        rules, user_start=user_start, user_end=user_end, user_end_set=user_end_set,
    )
    values = {
        "line_id": row.line_id,
        "period": row.period,
        "invoice_number": row.invoice_number,
        "invoice_date": row.invoice_date.isoformat(),
        "invoice_status": row.invoice_status.value,
        "organization_id": row.organization_id,
        "contract_id": row.contract_id,
        "subscription_id": row.subscription_id,
        "subscription_name": row.subscription_name,
        "offer_id": row.offer_id,
        "charge_type": row.charge_type.value,
        "billing_cycle": row.billing_cycle.value,
        "quantity": to_micros(row.quantity),
        "unit_price": to_micros(row.unit_price),
        "unit_cost": to_micros(row.unit_cost),
        "total": to_micros(line_total(row.quantity, row.unit_price)),
        "currency": row.currency,
        "platform_charge_start": row.charge_start.isoformat(),
        "platform_charge_end": row.charge_end.isoformat() if row.charge_end else None,
        "charge_start": dates.start.isoformat(),
        "charge_start_badge": dates.start_badge.value,
        "charge_end": dates.end.isoformat() if dates.end else None,
        "charge_end_badge": dates.end_badge.value,
        "override_company_id": kept.get("override_company_id"),
        "override_product_id": kept.get("override_product_id"),
        "override_agreement_id": kept.get("override_agreement_id"),
        "sync_status": kept.get("sync_status", "not_synced"),
        "addition_id": kept.get("addition_id"),
        "last_error": kept.get("last_error"),
        "last_sync_at": kept.get("last_sync_at"),
        "claimed_by": None,
        "claimed_at": None,
        "loaded_at": loaded_at,
    }
    return tuple(values[c] for c in _LINE_COLUMNS)


_KEPT_COLUMNS = [
    "line_id", "period", "sync_status", "charge_start", "charge_start_badge", "charge_end", "charge_end_badge",
    "override_company_id", "override_product_id", "override_agreement_id", "addition_id", "last_error", "last_sync_at",
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
    periods = sorted(set(periods))
    include, wanted = period_filter(periods)
    data = read_export(folder, include, wanted)  # raises PlatformDataError; nothing written yet
    now = now or now_utc()
    loaded_at = utc_to_text(now)
    report = InvoiceLoad(periods=[PeriodLoad(p, skipped_new=data.skipped_new.get(p, 0)) for p in periods])
    by_period = {p.period: p for p in report.periods}

    with store.db.atomic("IMMEDIATE"):
        existing = _existing_lines(store, periods, [line.line_id for line in data.lines])
        incoming_ids = set()
        rows = []
        for line in data.lines:
            incoming_ids.add(line.line_id)
            kept = existing.get(line.line_id)
            stats = by_period[line.period]
            if kept and kept["sync_status"] in UNTOUCHABLE_STATUSES:
                stats.kept_synced += 1
                continue
            if kept:
                stats.refreshed += 1
            else:
                stats.added += 1
            rows.append(_line_values(line, kept, rules, loaded_at))
        to_delete = []
        for line_id, kept in existing.items():
            if kept["sync_status"] in UNTOUCHABLE_STATUSES:
                if line_id not in incoming_ids and kept["period"] in by_period:
                    by_period[kept["period"]].kept_synced += 1
                continue
            to_delete.append(line_id)
            if line_id not in incoming_ids and kept["period"] in by_period:
                by_period[kept["period"]].removed += 1
        cursor = store.db.cursor()
        for start in range(0, len(to_delete), _CHUNK):
            chunk = to_delete[start : start + _CHUNK]
            cursor.execute(f"DELETE FROM invoice_line WHERE line_id IN ({','.join('?' * len(chunk))})", chunk)
        insert = f"INSERT INTO invoice_line ({', '.join(_LINE_COLUMNS)}) VALUES ({', '.join('?' * len(_LINE_COLUMNS))})"
        cursor.executemany(insert, rows)
        (report.organizations_added, report.offers_added, report.contracts_added) = _upsert_references(data, data.lines, now)
        counts = dict(
            InvoiceLine.select(InvoiceLine.period, pw.fn.COUNT(InvoiceLine.line_id))
            .where(InvoiceLine.period.in_(periods)).group_by(InvoiceLine.period).tuples()
        )
        for stats in report.periods:
            stats.lines = counts.get(stats.period, 0)
            system_log.write(
                store, Level.INFO, Category.INVOICES,
                f"Loaded invoice lines for {stats.period}: {stats.lines} lines",
                f"added {stats.added}, refreshed {stats.refreshed}, removed {stats.removed}, "
                f"kept {stats.kept_synced} already synced, skipped {stats.skipped_new} of invoices in status New; "
                f"from {Path(folder)}",
                at=now,
            )
    return report


def load_products(store: Store, folder: Path | str, since: date, *, now: datetime | None = None) -> ProductLoad:
    """Load the offers that appear on invoice lines dated `since` or later."""
    include, wanted = since_filter(since)
    data = read_export(folder, include, wanted)
    now = now or now_utc()
    report = ProductLoad(since=since)
    with store.db.atomic("IMMEDIATE"):
        _, report.offers_added, _ = _upsert_references(data, data.lines, now, with_orgs=False)
        report.offers = len({line.offer_id for line in data.lines})
        system_log.write(
            store, Level.INFO, Category.PRODUCTS,
            f"Loaded {report.offers} offers from invoice lines since {since.isoformat()}",
            f"{report.offers_added} new offers; from {Path(folder)}", at=now,
        )
    return report
