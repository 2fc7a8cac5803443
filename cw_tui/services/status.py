"""The state of the store at a glance: `cw-tui status` and the Dashboard's figures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cw_tui.services import settings
from cw_tui.services.repository import LINE_MAPPING_JOINS, LINE_MAPPING_STATUS
from cw_tui.services.store import Store, UTCDateTimeField, now_utc

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
    return [dict(zip(keys, row)) for row in store.db.execute_sql(sql)]


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
