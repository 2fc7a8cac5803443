"""The state of the store at a glance: `cw-tui status` and the Dashboard's figures, put
together from the store's figures (store/status_reads.py) and the configuration."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from cw_tui.services import settings
from cw_tui.store import Store, now_utc, status_reads
from cw_tui.store.queries import loaded_periods
from cw_tui.store.status_reads import period_counts

LAST_ORGANIZATIONS_SYNC = "last_organizations_sync"
CHART_MONTHS = 15  # the months the Dashboard's chart of amounts posted shows (screens/dashboard.py)

__all__ = ["LAST_ORGANIZATIONS_SYNC", "dashboard_figures", "period_counts", "status"]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def status(store: Store, now: datetime | None = None, periods: list[str] | None = None) -> dict[str, Any]:
    """`periods`: the periods whose line counts are read (default every loaded one)."""
    now = now or now_utc()
    org_total, org_mapped, org_excluded = status_reads.organization_figures(store)
    offer_total, offer_mapped = status_reads.offer_figures(store)
    config = settings.load_configuration(store)
    return {
        "organizations": {
            "total": org_total,
            "mapped": org_mapped,
            "unmapped": org_total - org_mapped,
            "excluded": org_excluded,
        },
        "products": {"total": offer_total, "mapped": offer_mapped, "unmapped": offer_total - offer_mapped},
        "periods": period_counts(store, periods),
        "last_sync_to_psa": _iso(status_reads.last_posted_at(store)),
        "last_organizations_sync": settings.get_value(store, LAST_ORGANIZATIONS_SYNC),
        "daily_sync": {
            "enabled": config.daily_sync,
            "next_run": _iso(settings.next_daily_run(now)) if config.daily_sync else None,
        },
    }


def dashboard_figures(store: Store, now: datetime | None = None) -> dict[str, Any]:
    """status() plus what the Dashboard draws: amounts posted vs loaded per currency for the
    latest period, amounts posted per month, and the 30-day log counts."""
    now = now or now_utc()
    # the counts of the latest period only, the chart's months only: the Dashboard shows no
    # more, and reading every line of 15 months with the mapping joins costs seconds and memory
    shown = loaded_periods(store, CHART_MONTHS)
    figures = status(store, now, shown[:1])
    latest = shown[0] if shown else None
    amounts = status_reads.amounts_of_period(store, latest) if latest else {}
    per_month = status_reads.posted_per_month(store, shown)
    loaded = sorted(shown)
    counts = status_reads.log_counts_since(store, now - timedelta(days=30))
    figures.update(
        latest_period=latest,
        amounts=amounts,
        posted_per_month=[(p, per_month.get(p, {})) for p in loaded],
        logs_30d=sum(counts.values()),
        errors_30d=counts.get("ERROR", 0),
        warnings_30d=counts.get("WARNING", 0),
    )
    return figures
