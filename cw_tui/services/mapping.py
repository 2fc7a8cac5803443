"""Changing mappings (SPEC §5, §6): what the Mapping page and the CLI do to organizations,
offers and lines. Every change is logged."""

from __future__ import annotations

from cw_tui.services import system_log
from cw_tui.services.store import Organization, Store, now_utc
from cw_tui.services.system_log import Category, Level


def set_excluded(store: Store, organization_ids: list[str], excluded: bool) -> int:
    """Include organizations in sync, or exclude them; returns how many changed."""
    with store.atomic():
        changed = Organization.update(excluded=excluded, updated_at=now_utc()).where(
            Organization.platform_id.in_(organization_ids) & (Organization.excluded != excluded)).execute()
        if changed:
            names = [o.name for o in Organization.select(Organization.name).where(Organization.platform_id.in_(organization_ids)).limit(20)]
            system_log.write(store, Level.INFO, Category.ORGANIZATIONS,
                             f"{changed} organization(s) {'excluded from' if excluded else 'included in'} sync", ", ".join(names))
    return changed
