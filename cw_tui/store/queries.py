"""Named reads for the screens: each returns plain values (tuples, dicts, dataclasses), never
a model, so a screen knows what it shows and nothing of the tables behind it. The counts of organizations
and offers are the status figures (status_reads), offered here too."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cw_tui.store.changes import Stamp, stamp_of
from cw_tui.store.database import Store
from cw_tui.store.line_sql import LINE_MAPPING_JOINS
from cw_tui.store.models import InvoiceLine, LogEntry, Offer, Organization
from cw_tui.store.status_reads import offer_figures, organization_figures

__all__ = ["LINE_FOR_EDIT", "LogRecord", "Stamp", "change_stamp", "line_for_edit", "line_organization", "loaded_periods", "log_record",
           "newest_log_id", "offer_figures", "offer_name", "organization_figures", "organization_name"]


LINE_FOR_EDIT = ("line_id", "organization", "offer", "charge_type", "quantity", "unit_price", "currency", "charge_start",
                 "charge_end", "last_error", "sync_status", "company_id", "company_name", "product_name", "agreement_name",
                 "contract_id", "organization_company_id", "agreement_id", "own_agreement_id")


def line_for_edit(store: Store, line_id: str) -> dict[str, Any] | None:
    """One invoice line with its effective mapping and the names behind it (the line editor).
    Amounts are micro-units, as stored."""
    row = store.db.execute_sql(
        f"""SELECT l.line_id, COALESCE(o.name, l.organization_id), COALESCE(f.name, l.offer_id), l.charge_type,
                   l.quantity, l.unit_price, l.currency, l.charge_start, l.charge_end, l.last_error, l.sync_status,
                   COALESCE(l.override_company_id, o.company_id), cm.name, p.description, ag.name, l.contract_id,
                   o.company_id, COALESCE(l.override_agreement_id, c.agreement_id), l.override_agreement_id
            FROM invoice_line l {LINE_MAPPING_JOINS}
            LEFT JOIN company cm ON cm.id = COALESCE(l.override_company_id, o.company_id)
            LEFT JOIN product p ON p.id = COALESCE(l.override_product_id, f.product_id)
            LEFT JOIN agreement ag ON ag.id = COALESCE(l.override_agreement_id, c.agreement_id)
            WHERE l.line_id = ?""", (line_id,)).fetchone()
    return None if row is None else dict(zip(LINE_FOR_EDIT, row, strict=True))


def change_stamp(store: Store, kind: str, key: str) -> Stamp:
    """Who last changed a row by hand, and when (kind: organization | offer | contract | line):
    an editor reads it when it opens, and its save is refused if another's came in between."""
    return stamp_of(store, kind, key) or Stamp()


def line_organization(store: Store, line_id: str) -> str | None:
    """The Platform ID of a line's organization."""
    row = InvoiceLine.select(InvoiceLine.organization_id).where(InvoiceLine.line_id == line_id).tuples().first()
    return row[0] if row else None


def organization_name(store: Store, platform_id: str) -> str | None:
    row = Organization.select(Organization.name).where(Organization.platform_id == platform_id).tuples().first()
    return row[0] if row else None


def offer_name(store: Store, platform_id: str) -> str | None:
    row = Offer.select(Offer.name).where(Offer.platform_id == platform_id).tuples().first()
    return row[0] if row else None


def loaded_periods(store: Store, limit: int | None = 15) -> list[str]:
    """The newest periods with invoice lines, newest first (all of them with limit=None)."""
    # one step down the period index per period (a DISTINCT would read an entry per line:
    # 1.5 million of them with 15 months loaded)
    sql = ("WITH RECURSIVE p(period) AS (SELECT MAX(period) FROM invoice_line UNION ALL "
           "SELECT (SELECT MAX(period) FROM invoice_line WHERE period < p.period) FROM p WHERE p.period IS NOT NULL) "
           "SELECT period FROM p WHERE period IS NOT NULL")
    if limit is None:
        return [r[0] for r in store.db.execute_sql(sql)]
    return [r[0] for r in store.db.execute_sql(sql + " LIMIT ?", (limit,))]


@dataclass(frozen=True)
class LogRecord:
    """A System Log entry as the screens show it."""

    id: int
    timestamp: datetime
    level: str
    category: str
    summary: str
    details: str


def newest_log_id(store: Store) -> int | None:
    row = LogEntry.select(LogEntry.id).order_by(LogEntry.id.desc()).tuples().first()
    return row[0] if row else None


def log_record(store: Store, entry_id: int) -> LogRecord | None:
    entry = LogEntry.get_or_none(LogEntry.id == entry_id)
    if entry is None:
        return None
    return LogRecord(entry.id, entry.timestamp, entry.level, entry.category, entry.summary, entry.details)
