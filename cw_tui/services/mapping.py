"""Changing mappings (SPEC §5, §6): what the Mapping page and the CLI do to organizations,
offers, contracts and lines. Synced lines never change; every change is logged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from cw_tui.rules.vocabulary import RECURRING_CHARGE_TYPES
from cw_tui.services import system_log
from cw_tui.services.store import Agreement, Company, Contract, Offer, Organization, Product, Store, now_utc
from cw_tui.services.system_log import Category, Level

EDITABLE = "sync_status IN ('not_synced', 'error')"  # synced and in-flight lines are read-only
_RECURRING = ", ".join(f"'{t.value}'" for t in RECURRING_CHARGE_TYPES)


class MappingError(ValueError):
    """A change that cannot be made; the message says why."""


def _log(store: Store, category: Category, summary: str, details: str = "") -> None:
    system_log.write(store, Level.INFO, category, summary, details)


def set_excluded(store: Store, organization_ids: list[str], excluded: bool) -> int:
    """Include organizations in sync, or exclude them; returns how many changed."""
    with store.atomic():
        changed = Organization.update(excluded=excluded, updated_at=now_utc()).where(
            Organization.platform_id.in_(organization_ids) & (Organization.excluded != excluded)).execute()
        if changed:
            names = [o.name for o in Organization.select(Organization.name).where(Organization.platform_id.in_(organization_ids)).limit(20)]
            _log(store, Category.ORGANIZATIONS, f"{changed} organization(s) {'excluded from' if excluded else 'included in'} sync",
                 ", ".join(names))
    return changed


def map_organizations(store: Store, organization_ids: list[str], company_id: int | None) -> int:
    """Map to a ConnectWise company (None unmaps). Unsynced lines follow (SPEC §6)."""
    if company_id is not None and Company.get_or_none(Company.id == company_id) is None:
        raise MappingError(f"ConnectWise company {company_id} is not known: run Sync Organizations")
    with store.atomic():
        changed = Organization.update(company_id=company_id, mapping_error=None, updated_at=now_utc()).where(
            Organization.platform_id.in_(organization_ids)).execute()
        target = "unmapped" if company_id is None else f"mapped to company {Company.get_by_id(company_id).name} (#{company_id})"
        _log(store, Category.ORGANIZATIONS, f"{changed} organization(s) {target}", ", ".join(organization_ids[:50]))
    return changed


def map_offers(store: Store, offer_ids: list[str], product_id: int | None) -> int:
    if product_id is not None:
        product = Product.get_or_none(Product.id == product_id)
        if product is None:
            raise MappingError(f"ConnectWise product {product_id} is not known: run Sync Organizations")
        if product.inactive:
            raise MappingError(f"ConnectWise product {product.description} is inactive; choose an active one")
    with store.atomic():
        changed = Offer.update(product_id=product_id, mapping_error=None, updated_at=now_utc()).where(
            Offer.platform_id.in_(offer_ids)).execute()
        target = "unmapped" if product_id is None else f"mapped to product #{product_id}"
        _log(store, Category.PRODUCTS, f"{changed} offer(s) {target}", ", ".join(offer_ids[:50]))
    return changed


def map_contract(store: Store, contract_id: str, agreement_id: int | None) -> int:
    """The whole contract's agreement (SPEC §8 rule 2): every unsynced line without its own
    agreement follows; the lines' own agreements are cleared so that all follow."""
    _check_agreement(agreement_id)
    with store.atomic():
        Contract.update(agreement_id=agreement_id, updated_at=now_utc()).where(Contract.platform_id == contract_id).execute()
        cleared = store.db.execute_sql(
            f"UPDATE invoice_line SET override_agreement_id = NULL WHERE contract_id = ? AND {EDITABLE}", (contract_id,)
        ).rowcount
        _log(store, Category.INVOICES, f"Contract {contract_id} {'unmapped' if agreement_id is None else f'mapped to agreement #{agreement_id}'}",
             f"{cleared} unsynced line(s) follow the contract")
    return cleared


def _check_agreement(agreement_id: int | None) -> None:
    if agreement_id is None:
        return
    agreement = Agreement.get_or_none(Agreement.id == agreement_id)
    if agreement is None:
        raise MappingError(f"ConnectWise agreement {agreement_id} is not known: run Sync Organizations")
    if agreement.cancelled or agreement.status != "Active":
        raise MappingError(f"agreement {agreement.name} is {agreement.status}; ConnectWise takes additions only on Active ones")


@dataclass(frozen=True)
class LineChange:
    """What a person sets on lines (inline Edit or Bulk Update). UNSET leaves a field alone;
    None clears an override (the line follows its organization, offer or contract again)."""

    company_id: Any = ...
    product_id: Any = ...
    agreement_id: Any = ...
    charge_start: Any = ...
    charge_end: Any = ...

    def fields(self) -> list[str]:
        return [name for name in ("company_id", "product_id", "agreement_id", "charge_start", "charge_end")
                if getattr(self, name) is not ...]


def update_lines(store: Store, where_sql: str, params: list[Any], change: LineChange) -> int:
    """Apply `change` to the editable lines whose line_id is in the subquery `where_sql` (a
    grid's "all matching") — one UPDATE per field, so 50,000 lines take milliseconds.
    Typed dates get the User Updated badge; a default end follows a new start (SPEC §9)."""
    if not change.fields():
        return 0
    if change.company_id not in (..., None) and Company.get_or_none(Company.id == change.company_id) is None:
        raise MappingError(f"ConnectWise company {change.company_id} is not known")
    if change.product_id not in (..., None):
        product = Product.get_or_none(Product.id == change.product_id)
        if product is None or product.inactive:
            raise MappingError(f"ConnectWise product {change.product_id} is unknown or inactive")
    if change.agreement_id is not ...:
        _check_agreement(change.agreement_id)
    sets: list[tuple[str, list[Any]]] = []
    if change.company_id is not ...:
        sets.append(("override_company_id = ?", [change.company_id]))
    if change.product_id is not ...:
        sets.append(("override_product_id = ?", [change.product_id]))
    if change.agreement_id is not ...:
        sets.append(("override_agreement_id = ?", [change.agreement_id]))
    with store.atomic():
        db = store.db
        # the grid's predicate (joins, LIKEs) is evaluated once: its keys go to a temp table
        db.execute_sql("CREATE TEMP TABLE IF NOT EXISTS bulk_lines (line_id TEXT PRIMARY KEY)")
        db.execute_sql("DELETE FROM bulk_lines")
        db.execute_sql(f"INSERT INTO bulk_lines SELECT line_id FROM invoice_line WHERE line_id IN ({where_sql}) AND {EDITABLE}",
                       params)
        scope, params = "line_id IN (SELECT line_id FROM bulk_lines)", []
        affected = db.execute_sql("SELECT COUNT(*) FROM bulk_lines").fetchone()[0]
        start, end = change.charge_start, change.charge_end
        if start is not ... or end is not ...:
            if start is ... or start is None:
                start_sql, start_params = "charge_start", []
            else:
                start_sql, start_params = "?", [start.isoformat()]
            end_value = None if end in (..., None) else end.isoformat()
            if end is not ... and end_value is not None:
                bad = db.execute_sql(f"SELECT COUNT(*) FROM invoice_line WHERE {scope} AND ? < {start_sql}",
                                     [*params, end_value, *start_params]).fetchone()[0]
                if bad:
                    raise MappingError(f"the Charge End Date would be before the Charge Start Date on {bad} line(s)")
            elif start is not ... and start is not None:
                bad = db.execute_sql(
                    f"SELECT COUNT(*) FROM invoice_line WHERE {scope} AND charge_end_badge != 'default' "
                    "AND charge_end IS NOT NULL AND charge_end < ?", [*params, start.isoformat()]).fetchone()[0]
                if bad:
                    raise MappingError(f"{bad} line(s) have a Charge End Date before {start.isoformat()}; change it too")
            if start is not ... and start is not None:
                db.execute_sql(f"UPDATE invoice_line SET charge_start = ?, charge_start_badge = 'user' WHERE {scope}",
                               [start.isoformat(), *params])
                # a default end follows the start: last day of its month for one-time lines, none for recurring
                db.execute_sql(
                    f"UPDATE invoice_line SET charge_end = CASE WHEN charge_type IN ({_RECURRING}) THEN NULL "
                    f"ELSE date(charge_start, 'start of month', '+1 month', '-1 day') END "
                    f"WHERE {scope} AND charge_end_badge = 'default'", params)
            if end is not ...:
                db.execute_sql(f"UPDATE invoice_line SET charge_end = ?, charge_end_badge = 'user' WHERE {scope}",
                               [end_value, *params])
        for assignment, values in sets:
            db.execute_sql(f"UPDATE invoice_line SET {assignment} WHERE {scope}", [*values, *params])
        _log(store, Category.INVOICES, f"Updated {affected:,} line(s): {', '.join(change.fields())}",
             "; ".join(f"{name} = {getattr(change, name)}" for name in change.fields()))
    return affected


def update_line_ids(store: Store, line_ids: list[str], change: LineChange) -> int:
    """`update_lines` for explicit lines (one row, or the rows a person marked)."""
    total = 0
    for start in range(0, len(line_ids), 500):
        chunk = line_ids[start : start + 500]
        total += update_lines(store, f"SELECT line_id FROM invoice_line WHERE line_id IN ({','.join('?' * len(chunk))})",
                              list(chunk), change)
    return total


def parse_day(text: str) -> date | None:
    text = text.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise MappingError(f"not a date: {text!r} (expected YYYY-MM-DD)") from None
