"""The store's figures at a glance, for `cw-tui status` and the Dashboard (services/status.py
puts them together): plain values, amounts as Decimal."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from cw_tui.rules.money import from_micros
from cw_tui.store.database import Store
from cw_tui.store.fields import UTCDateTimeField
from cw_tui.store.line_sql import LINE_MAPPING_JOINS, LINE_MAPPING_STATUS


def _count(condition: str) -> str:
    """How many rows meet `condition` (a boolean is no number on PostgreSQL)."""
    return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"


PERIOD_COUNTS = ("period", "lines", "mapped", "unmapped", "excluded", "not_synced", "synced", "error")


def _in_periods(periods: list[str] | None) -> tuple[str, list[str]]:
    if periods is None:
        return "", []
    return f" WHERE l.period IN ({','.join('?' * len(periods))})" if periods else " WHERE FALSE", list(periods)


def period_counts(store: Store, periods: list[str] | None = None) -> list[dict[str, Any]]:
    """Per loaded period (or per one of `periods`), newest first: lines by mapping status and
    by status in ConnectWise. lines = mapped + unmapped + excluded = not_synced + synced + error."""
    where, params = _in_periods(periods)
    sql = f"""
        SELECT period, COUNT(*),
            {_count("ms = 'mapped'")}, {_count("ms = 'unmapped'")}, {_count("ms = 'excluded'")},
            {_count("sync_status NOT IN ('synced', 'error')")}, {_count("sync_status = 'synced'")},
            {_count("sync_status = 'error'")}
        FROM (SELECT l.period, l.sync_status, {LINE_MAPPING_STATUS} AS ms
              FROM invoice_line l {LINE_MAPPING_JOINS}{where}) AS lines
        GROUP BY period ORDER BY period DESC
    """
    with store.sparing_memory():  # each line of the periods is read once
        return [dict(zip(PERIOD_COUNTS, row, strict=False)) for row in store.db.execute_sql(sql, params)]


def organization_figures(store: Store) -> tuple[int, int, int]:
    """(organizations, mapped to a company, excluded from sync)."""
    total, mapped, excluded = store.db.execute_sql(
        f"SELECT COUNT(*), COUNT(company_id), COALESCE({_count('excluded')}, 0) FROM organization").fetchone()
    return total, mapped, excluded


def offer_figures(store: Store) -> tuple[int, int]:
    """(offers, mapped to a product)."""
    total, mapped = store.db.execute_sql("SELECT COUNT(*), COUNT(product_id) FROM offer").fetchone()
    return total, mapped


def last_posted_at(store: Store) -> datetime | None:
    """When the newest synced line was posted (read from the index of synced lines' posting times)."""
    text = store.db.execute_sql("SELECT MAX(last_sync_at) FROM invoice_line WHERE sync_status = 'synced'").fetchone()[0]
    return UTCDateTimeField().python_value(text)


def amounts_of_period(store: Store, period: str) -> dict[str, dict[str, Decimal]]:
    """Per currency: what the period's lines total, and what of it is posted."""
    with store.sparing_memory():  # each line of the period is read once
        return {
            currency: {"loaded": from_micros(loaded or 0), "posted": from_micros(posted or 0)}
            for currency, loaded, posted in store.db.execute_sql(
                "SELECT currency, SUM(total), SUM(CASE WHEN sync_status = 'synced' THEN total ELSE 0 END) "
                "FROM invoice_line WHERE period = ? GROUP BY currency ORDER BY currency", (period,))
        }


def posted_per_month(store: Store, periods: list[str] | None = None) -> dict[str, dict[str, Decimal]]:
    """Per period (every one, or those of `periods`), per currency: what is posted."""
    result: dict[str, dict[str, Decimal]] = {}
    with store.sparing_memory():
        if periods is None:
            periods = [r[0] for r in store.db.execute_sql("SELECT DISTINCT period FROM invoice_line")]
        # one period at a time, each read from the (period, sync status, currency, total) index
        # alone, in its order (a GROUP BY of 12 months at once sorted them in memory: ~45 MB)
        for period in sorted(periods):
            for currency, posted in store.db.execute_sql(
                    "SELECT currency, SUM(total) FROM invoice_line WHERE period = ? AND sync_status = 'synced' "
                    "GROUP BY currency ORDER BY currency", (period,)):
                result.setdefault(period, {})[currency] = from_micros(posted or 0)
    return result


def log_counts_since(store: Store, since: datetime) -> dict[str, int]:
    """System Log entries since `since`, per level."""
    return dict(store.db.execute_sql("SELECT level, COUNT(*) FROM log_entry WHERE timestamp >= ? GROUP BY level",
                                     (UTCDateTimeField().db_value(since),)).fetchall())
