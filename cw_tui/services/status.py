"""The state of the store at a glance: `cw-tui status` and the Dashboard's figures."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from cw_tui.services import settings
from cw_tui.store import Store, UTCDateTimeField, now_utc
from cw_tui.store.line_sql import LINE_MAPPING_JOINS, LINE_MAPPING_STATUS

LAST_ORGANIZATIONS_SYNC = "last_organizations_sync"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def period_counts(store: Store) -> list[dict[str, Any]]:
    """Per loaded period, newest first: lines by mapping status and by status in ConnectWise.
    lines = mapped + unmapped + excluded = not_synced + synced + error."""
    sql = f"""
        SELECT period, COUNT(*),
            SUM(ms = 'mapped'), SUM(ms = 'unmapped'), SUM(ms = 'excluded'),
            SUM(sync_status NOT IN ('synced', 'error')), SUM(sync_status = 'synced'), SUM(sync_status = 'error')
        FROM (SELECT l.period, l.sync_status, {LINE_MAPPING_STATUS} AS ms
              FROM invoice_line l {LINE_MAPPING_JOINS})
        GROUP BY period ORDER BY period DESC
    """
    keys = ("period", "lines", "mapped", "unmapped", "excluded", "not_synced", "synced", "error")
    return [dict(zip(keys, row, strict=False)) for row in store.db.execute_sql(sql)]


def status(store: Store, now: datetime | None = None) -> dict[str, Any]:
    now = now or now_utc()
    db = store.db
    org_total, org_mapped, org_excluded = db.execute_sql(
        "SELECT COUNT(*), COUNT(company_id), COALESCE(SUM(excluded), 0) FROM organization"
    ).fetchone()
    offer_total, offer_mapped = db.execute_sql("SELECT COUNT(*), COUNT(product_id) FROM offer").fetchone()
    last_post = db.execute_sql("SELECT MAX(last_sync_at) FROM invoice_line WHERE sync_status = 'synced'").fetchone()[0]
    last_orgs = settings.get_value(store, LAST_ORGANIZATIONS_SYNC)
    config = settings.load_configuration(store)
    field = UTCDateTimeField()
    return {
        "organizations": {
            "total": org_total,
            "mapped": org_mapped,
            "unmapped": org_total - org_mapped,
            "excluded": org_excluded,
        },
        "products": {"total": offer_total, "mapped": offer_mapped, "unmapped": offer_total - offer_mapped},
        "periods": period_counts(store),
        "last_sync_to_psa": _iso(field.python_value(last_post)),
        "last_organizations_sync": last_orgs,
        "daily_sync": {
            "enabled": config.daily_sync,
            "next_run": _iso(settings.next_daily_run(now)) if config.daily_sync else None,
        },
    }


def dashboard_figures(store: Store, now: datetime | None = None) -> dict[str, Any]:
    """status() plus what the Dashboard draws: amounts posted vs loaded per currency for the
    latest period, amounts posted per month, and the 30-day log counts."""
    from decimal import Decimal

    from cw_tui.store.money import from_micros

    now = now or now_utc()
    figures = status(store, now)
    latest = figures["periods"][0]["period"] if figures["periods"] else None
    amounts: dict[str, dict[str, Decimal]] = {}
    if latest:
        for currency, loaded, posted in store.db.execute_sql(
            "SELECT currency, SUM(total), SUM(CASE WHEN sync_status = 'synced' THEN total ELSE 0 END) "
            "FROM invoice_line WHERE period = ? GROUP BY currency ORDER BY currency", (latest,)
        ):
            amounts[currency] = {"loaded": from_micros(loaded or 0), "posted": from_micros(posted or 0)}
    per_month: dict[str, dict[str, Decimal]] = {}
    for period, currency, posted in store.db.execute_sql(
        "SELECT period, currency, SUM(total) FROM invoice_line WHERE sync_status = 'synced' "
        "GROUP BY period, currency ORDER BY period"
    ):
        per_month.setdefault(period, {})[currency] = from_micros(posted or 0)
    loaded_periods = sorted(p["period"] for p in figures["periods"])
    since = UTCDateTimeField().db_value(now - timedelta(days=30))
    counts = dict(store.db.execute_sql(
        "SELECT level, COUNT(*) FROM log_entry WHERE timestamp >= ? GROUP BY level", (since,)).fetchall())
    figures.update(
        latest_period=latest,
        amounts=amounts,
        posted_per_month=[(p, per_month.get(p, {})) for p in loaded_periods],
        logs_30d=sum(counts.values()),
        errors_30d=counts.get("ERROR", 0),
        warnings_30d=counts.get("WARNING", 0),
    )
    return figures
