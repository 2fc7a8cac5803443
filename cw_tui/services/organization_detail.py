"""The read-only detail of one organization (`v` on the Organizations tab): its Platform
fields, its mapping to a ConnectWise company and whether it is in sync, and who changed that
mapping by hand and when (team mode, issue 17), with its contracts' agreements and who chose
them. Times are local, as the System Logs and run history show them. Plain data: the screen
only renders it (through safe_text). No textual here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import peewee as pw

from cw_tui.rules.display import SYNC_STATUS
from cw_tui.services.line_detail import Field, agreement_text, company_text
from cw_tui.store import Contract, InvoiceLine, Organization, Store
from cw_tui.store.changes import Stamp

NOBODY = "nobody by hand yet"
CONTRACTS_SHOWN = 12  # more than a screen's worth would bury the rest; the count says how many


@dataclass
class OrganizationDetail:
    platform_id: str
    name: str
    included: bool
    sections: list[tuple[str, list[Field]]] = field(default_factory=list)

    def value(self, section: str, label: str) -> Field:
        return next(f for f in dict(self.sections)[section] if f.label == label)


def local(moment: datetime | None) -> str:
    return f"{moment.astimezone():%Y-%m-%d %H:%M:%S %Z}" if moment is not None else ""


def stamp_text(by: str | None, at: datetime | None) -> str:
    """"finance.ben at 2026-12-02 11:40:12 CET", in this machine's time zone."""
    stamp = Stamp(by, at)
    return f"{stamp.by or 'someone'} at {local(stamp.at)}" if stamp.at is not None else NOBODY


def organization_detail(store: Store, platform_id: str) -> OrganizationDetail | None:
    org = Organization.get_or_none(Organization.platform_id == platform_id)
    if org is None:
        return None
    platform = [
        Field("Name", org.name),
        Field("Reference", org.reference or "none"),
        Field("Status", org.status),
        Field("Platform ID", org.platform_id),
        Field("First seen", local(org.first_seen_at)),
        Field("Updated", local(org.updated_at), "its last change: a load from the Platform, or a mapping"),
    ]
    mapping = [
        Field("PSA Organization", company_text(org.company_id) or "not mapped",
              "" if org.company_id is not None else "e edits it; a auto-matches by name"),
        Field("In sync", "excluded" if org.excluded else "included",
              "its lines are never posted; x includes it" if org.excluded else "its mapped lines are posted by a sync"),
    ]
    if org.mapping_error:
        mapping.append(Field("Mapping error", org.mapping_error))

    contracts = list(Contract.select().where(Contract.organization_id == platform_id).order_by(Contract.platform_id))
    changes = [Field("Mapping", stamp_text(org.changed_by, org.changed_at),
                     "its PSA Organization or inclusion in sync (an edit, a bulk update, auto-match)")]
    for contract in contracts[:CONTRACTS_SHOWN]:
        agreement = agreement_text(contract.agreement_id) or "no agreement chosen"
        changes.append(Field(f"Contract {contract.platform_id}", stamp_text(contract.changed_by, contract.changed_at),
                             f"its agreement: {agreement}"))
    if len(contracts) > CONTRACTS_SHOWN:
        changes.append(Field("", f"and {len(contracts) - CONTRACTS_SHOWN} more contracts"))

    lines = [Field(period, ", ".join(f"{n} {SYNC_STATUS.get(status, status)}" for status, n in statuses))
             for period, statuses in _lines_by_period(platform_id)]
    sections = [("Platform", platform), ("Mapping", mapping), ("Changed by", changes),
                ("Invoice lines", lines or [Field("", "none loaded")])]
    return OrganizationDetail(org.platform_id, org.name, not org.excluded, sections)


def _lines_by_period(platform_id: str, periods: int = 3) -> list[tuple[str, list[tuple[str, int]]]]:
    """The newest periods' lines of the organization, counted by sync status."""
    rows = (InvoiceLine.select(InvoiceLine.period, InvoiceLine.sync_status, pw.fn.COUNT(InvoiceLine.line_id))
            .where(InvoiceLine.organization_id == platform_id)
            .group_by(InvoiceLine.period, InvoiceLine.sync_status).tuples())
    by_period: dict[str, list[tuple[str, int]]] = {}
    for period, status, n in rows:
        by_period.setdefault(period, []).append((status, n))
    return [(p, sorted(by_period[p])) for p in sorted(by_period, reverse=True)[:periods]]
