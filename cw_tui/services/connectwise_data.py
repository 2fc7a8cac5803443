"""Refreshing the local cache of ConnectWise records, and automatic mapping."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from cw_tui.rules.automatch import unique_matches
from cw_tui.services import settings, system_log
from cw_tui.services.connectwise import ConnectionFailed, ConnectWiseClient, ConnectWiseError, ServerError, Throttled, TimedOut
from cw_tui.services.status import LAST_ORGANIZATIONS_SYNC
from cw_tui.services.system_log import Category, Level
from cw_tui.store import (
    Agreement,
    AgreementType,
    Company,
    CompanyStatus,
    Offer,
    Organization,
    Product,
    Store,
    now_utc,
)
from cw_tui.store.changes import stamped

T = TypeVar("T")


@dataclass
class CacheRefresh:
    organizations: int = 0  # Platform organizations on recent valid invoices
    organizations_added: int = 0
    companies: int = 0
    statuses: int = 0
    products: int = 0
    agreement_types: int = 0
    agreements: int = 0
    api_calls: int = 0


ORGANIZATION_WINDOW_MONTHS = 3
ACCEPT_SYNC = "run `cw-tui sync-organizations --allow-shrink` (in the app: Sync Organizations, and accept)."
ACCEPT_AGREEMENTS = ("accept the smaller list with Sync Organizations (`cw-tui sync-organizations --allow-shrink`), "
                     "then sync again.")


@dataclass(frozen=True)
class Shrink:
    what: str  # companies, catalog products, agreements
    cached: int
    fetched: int


class CacheShrinkRefused(Exception):
    """ConnectWise sent far fewer records than the cache holds, which is what an empty or
    cut-short answer looks like: nothing was changed. `accept()` applies what was fetched
    after all (a person said the smaller list is right)."""

    def __init__(self, shrinks: list[Shrink], how: str, accept: Callable[[], Any]):
        listed = "; ".join(f"{s.fetched:,} {s.what} where {s.cached:,} are cached" for s in shrinks)
        self.message = (f"ConnectWise sent {listed}. A refresh that would drop more than half of them is refused, "
                        f"and nothing was changed. If ConnectWise really holds fewer now, {how}")
        super().__init__(self.message)
        self.shrinks = shrinks
        self.accept = accept

    def details(self) -> str:
        return self.message


def _guarded(store: Store, counts: list[tuple[Any, str, int]], allow_shrink: bool, how: str, apply: Callable[[], T]) -> T:
    """Apply a refresh unless it drops more than half of a kind of cached record."""
    shrinks = [Shrink(what, cached, fetched) for model, what, fetched in counts
               if 2 * fetched < (cached := model.select().count())]
    if not shrinks:
        return apply()
    summary = ", ".join(f"{s.what} {s.cached:,} -> {s.fetched:,}" for s in shrinks)

    def accept() -> T:
        system_log.write(store, Level.WARNING, Category.ORGANIZATIONS, f"Smaller lists from ConnectWise accepted: {summary}")
        return apply()

    if allow_shrink:
        return accept()
    refused = CacheShrinkRefused(shrinks, how, accept)
    system_log.write(store, Level.WARNING, Category.ORGANIZATIONS, f"Refresh refused, nothing changed: {summary}",
                     refused.message)
    raise refused


@dataclass
class _Fetched:
    companies: list
    statuses: list
    items: list
    types: list
    agreements: list
    api_calls: int


async def sync_organizations(store: Store, client: ConnectWiseClient, *, now: datetime | None = None,
                             allow_shrink: bool = False) -> CacheRefresh:
    """SPEC §5.1 Sync Organizations: every ConnectWise company (all pages), status, catalog
    item, agreement type and agreement, replacing the cached copies in one transaction; and
    the Organization list refreshed from the Platform data (the organizations on valid
    invoices of the last three months), when a Platform folder is configured. Everything is
    fetched before anything is changed; a refresh that would drop more than half of the
    cached companies, products or agreements raises CacheShrinkRefused unless allowed."""
    now = now or now_utc()
    calls_before = client.api_calls
    try:
        fetched = _Fetched(await client.companies(), await client.company_statuses(), await client.catalog_items(),
                           await client.agreement_types(), await client.agreements(), 0)
    except ConnectWiseError as error:
        if isinstance(error, (ConnectionFailed, TimedOut, ServerError, Throttled)):
            mark_response_error(store, error.message)
        raise
    fetched.api_calls = client.api_calls - calls_before
    counts = [(Company, "companies", len(fetched.companies)), (Product, "catalog products", len(fetched.items)),
              (Agreement, "agreements", len(fetched.agreements))]
    return _guarded(store, counts, allow_shrink, ACCEPT_SYNC, lambda: _apply_sync(store, fetched, now))


def _apply_sync(store: Store, fetched: _Fetched, now: datetime) -> CacheRefresh:
    from pathlib import Path

    from cw_tui.platform.importer import refresh_organizations
    from cw_tui.rules.periods import months_back

    config = settings.load_configuration(store)
    organizations = added = 0
    if config.platform_dir:
        organizations, added = refresh_organizations(
            store, Path(config.platform_dir).expanduser(), months_back(now.date(), ORGANIZATION_WINDOW_MONTHS), now=now)
    result = _apply_cache(store, fetched, now)
    result.organizations, result.organizations_added = organizations, added
    return result


def mark_response_error(store: Store, message: str) -> None:
    """SPEC §5: "Response Error" is the Mapping Status of mapped records whose ConnectWise
    data could not be fetched; the next successful sync clears it."""
    with store.atomic():
        Organization.update(mapping_error=message).where(Organization.company_id.is_null(False)).execute()
        Offer.update(mapping_error=message).where(Offer.product_id.is_null(False)).execute()


def _apply_cache(store: Store, fetched: _Fetched, now: datetime) -> CacheRefresh:
    """Replace the cached companies, statuses, products, agreement types and agreements."""
    with store.atomic():
        for model in (Company, CompanyStatus, Product, AgreementType, Agreement):
            model.delete().execute()
        rows = [
            dict(id=c.id, identifier=c.identifier or "", name=c.name or "", status_id=c.status.id if c.status else None,
                 status_name=c.status.name if c.status else None, deleted=bool(c.deletedFlag),
                 default_contact_id=c.defaultContact.id if c.defaultContact else None, synced_at=now)
            for c in fetched.companies
        ]
        _insert(Company, rows)
        _insert(CompanyStatus, [dict(id=s.id, name=s.name or "", inactive=bool(s.inactiveFlag), synced_at=now)
                                for s in fetched.statuses])
        _insert(Product, [dict(id=p.id, identifier=p.identifier or "", description=p.description or "",
                               inactive=bool(p.inactiveFlag), synced_at=now) for p in fetched.items])
        _insert(AgreementType, [dict(id=t.id, name=t.name or "", inactive=bool(t.inactiveFlag), synced_at=now)
                                for t in fetched.types])
        _insert(Agreement, agreement_rows(fetched.agreements, now))
        Organization.update(mapping_error=None).execute()
        Offer.update(mapping_error=None).execute()
        settings.set_value(store, LAST_ORGANIZATIONS_SYNC, now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    result = CacheRefresh(0, 0, len(fetched.companies), len(fetched.statuses), len(fetched.items), len(fetched.types),
                          len(fetched.agreements), fetched.api_calls)
    system_log.write(store, Level.INFO, Category.ORGANIZATIONS,
                     f"Synced organizations: {result.companies} ConnectWise companies",
                     f"{result.statuses} company statuses, {result.products} catalog products, "
                     f"{result.agreement_types} agreement types, {result.agreements} agreements; {result.api_calls} API calls",
                     at=now)
    return result


def agreement_rows(agreements: list, stamp: datetime) -> list[dict]:
    return [
        dict(id=a.id, name=a.name or "", company_id=a.company.id if a.company and a.company.id else 0,
             type_id=a.type.id if a.type else None, type_name=a.type.name if a.type else None,
             status=a.agreementStatus or "Active", cancelled=bool(a.cancelledFlag), synced_at=stamp)
        for a in agreements
    ]


async def refresh_agreements(store: Store, client: ConnectWiseClient, *, allow_shrink: bool = False) -> None:
    """Only the agreements: SPEC §8 rule 3 needs today's, not those of the last organizations
    sync. It runs before every sync and plan, so a refused shrink stops them before anything
    is sent."""
    agreements = await client.agreements()

    def apply() -> None:
        with store.atomic("IMMEDIATE"):  # two refreshes at once take turns (PostgreSQL too)
            Agreement.delete().execute()
            _insert(Agreement, agreement_rows(agreements, now_utc()))

    _guarded(store, [(Agreement, "agreements", len(agreements))], allow_shrink, ACCEPT_AGREEMENTS, apply)


def _insert(model, rows: list[dict]) -> None:
    for start in range(0, len(rows), 200):
        model.insert_many(rows[start : start + 200]).execute()


@dataclass
class AutomapResult:
    organizations: list[tuple[str, str, int, str]] = field(default_factory=list)  # org id, org name, company id, name
    offers: list[tuple[str, str, int, str]] = field(default_factory=list)  # offer id, name, product id, description
    included: int = 0
    not_active: list[tuple[str, str, str]] = field(default_factory=list)  # org name, company name, its status


def automap(store: Store, *, include: bool = False, dry_run: bool = False) -> AutomapResult:
    """Map unmapped organizations to companies and offers to active catalog products, by
    exact normalised name or identifier, only where the match is unique."""
    result = AutomapResult()
    organizations = list(Organization.select().where(Organization.company_id.is_null()))
    companies = list(Company.select().where(Company.deleted == False))  # noqa: E712
    for org, company in unique_matches(
        organizations, companies,
        item_keys=lambda o: (o.name,),
        candidate_keys=lambda c: (c.name, c.identifier),
    ):
        result.organizations.append((org.platform_id, org.name, company.id, company.name))
        if company.status_name and company.status_name != "Active":  # Delinquent, Not-Approved, Credit Hold…
            result.not_active.append((org.name, company.name, company.status_name))
    offers = list(Offer.select().where(Offer.product_id.is_null()))
    products = list(Product.select().where(Product.inactive == False))  # noqa: E712
    for offer, product in unique_matches(
        offers, products,
        item_keys=lambda o: (o.name, o.external_id),
        candidate_keys=lambda p: (p.description, p.identifier),
    ):
        result.offers.append((offer.platform_id, offer.name, product.id, product.description))
    if include:
        result.included = len(result.organizations)
    if dry_run:
        return result
    stamp = stamped()  # who ran auto-match: every row it maps records it (team mode)
    with store.atomic():
        for org_id, _, company_id, _ in result.organizations:
            update = {"company_id": company_id, "mapping_error": None, **stamp}
            if include:
                update["excluded"] = False
            Organization.update(**update).where(Organization.platform_id == org_id).execute()
        for offer_id, _, product_id, _ in result.offers:
            Offer.update(product_id=product_id, mapping_error=None, **stamp).where(Offer.platform_id == offer_id).execute()
    system_log.write(store, Level.INFO, Category.ORGANIZATIONS,
                     f"Automap: {len(result.organizations)} organizations and {len(result.offers)} offers mapped",
                     "included in sync: " + ("yes" if include else "no") + "; " +
                     "; ".join(f"{name} -> {cw}" for _, name, _, cw in result.organizations[:50]) +
                     "".join(f"; not Active in ConnectWise: {cw} ({status})" for _, cw, status in result.not_active[:50]))
    return result
