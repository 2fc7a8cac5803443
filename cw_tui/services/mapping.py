"""Changing mappings (SPEC §5, §6): what the Mapping page and the CLI do to organizations,
offers, contracts and lines. Synced lines never change; every change is logged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from cw_tui.rules.safe_text import safe_text
from cw_tui.services import system_log
from cw_tui.services.system_log import Category, Level
from cw_tui.store import Agreement, Company, Contract, Offer, Organization, Product, Store, line_changes, now_utc
from cw_tui.store.changes import Stamp, changed_since, stamped
from cw_tui.store.grid import Selection


class MappingError(ValueError):
    """A change that cannot be made; the message says why."""


class ChangedMeanwhile(MappingError):
    """Someone else saved the row since its editor read it: nothing was saved (team mode)."""

    def __init__(self, what: str, stamp: Stamp):
        super().__init__(f"{what} was changed by {stamp.text()} since you opened it; nothing was saved. "
                         "It is shown as it is now: edit it again if it still needs it")
        self.stamp = stamp


def _refuse_if_changed(store: Store, kind: str, keys: list[str], read: Stamp | None, what: str) -> None:
    """`read`: the row's stamp when its editor opened it (None: no check, as for a bulk update)."""
    if read is None:
        return
    if len(keys) != 1:
        raise ValueError("a save checked against what its editor read is of one row")
    now = changed_since(store, kind, keys[0], read)
    if now is not None:
        raise ChangedMeanwhile(what, now)


def _log(store: Store, category: Category, summary: str, details: str = "") -> None:
    system_log.write(store, Level.INFO, category, summary, details)


def set_excluded(store: Store, organization_ids: list[str], excluded: bool) -> int:
    """Include organizations in sync, or exclude them; returns how many changed."""
    with store.atomic():
        changed = Organization.update(excluded=excluded, updated_at=now_utc(), **stamped()).where(
            Organization.platform_id.in_(organization_ids) & (Organization.excluded != excluded)).execute()
        if changed:
            names = [o.name for o in Organization.select(Organization.name).where(Organization.platform_id.in_(organization_ids)).limit(20)]
            _log(store, Category.ORGANIZATIONS, f"{changed} organization(s) {'excluded from' if excluded else 'included in'} sync",
                 ", ".join(names))
    return changed


def toggle_excluded(store: Store, organization_id: str) -> tuple[str, bool]:
    """Include an excluded organization in sync, or exclude an included one: its name and
    whether it is excluded now."""
    with store.atomic():
        org = Organization.get_or_none(Organization.platform_id == organization_id)
        if org is None:
            raise MappingError(f"organization {organization_id} is not known")
        set_excluded(store, [organization_id], not org.excluded)
    return org.name, not org.excluded


def map_organizations(store: Store, organization_ids: list[str], company_id: int | None, *,
                      read: Stamp | None = None) -> int:
    """Map to a ConnectWise company (None unmaps). Unsynced lines follow (SPEC §6). `read`: the
    one organization's stamp when its editor opened it; someone's save since is refused."""
    if company_id is not None and Company.get_or_none(Company.id == company_id) is None:
        raise MappingError(f"ConnectWise company {company_id} is not known: run Sync Organizations")
    with store.atomic():
        _refuse_if_changed(store, "organization", organization_ids, read, f"Organization {safe_text(organization_ids[0])}")
        changed = Organization.update(company_id=company_id, mapping_error=None, updated_at=now_utc(), **stamped()).where(
            Organization.platform_id.in_(organization_ids)).execute()
        target = "unmapped" if company_id is None else f"mapped to company {Company.get_by_id(company_id).name} (#{company_id})"
        _log(store, Category.ORGANIZATIONS, f"{changed} organization(s) {target}", ", ".join(organization_ids[:50]))
    return changed


def map_offers(store: Store, offer_ids: list[str], product_id: int | None, *, read: Stamp | None = None) -> int:
    if product_id is not None:
        product = Product.get_or_none(Product.id == product_id)
        if product is None:
            raise MappingError(f"ConnectWise product {product_id} is not known: run Sync Organizations")
        if product.inactive:
            raise MappingError(f"ConnectWise product {safe_text(product.description)} is inactive; choose an active one")
    with store.atomic():
        _refuse_if_changed(store, "offer", offer_ids, read, f"Offer {safe_text(offer_ids[0])}")
        changed = Offer.update(product_id=product_id, mapping_error=None, updated_at=now_utc(), **stamped()).where(
            Offer.platform_id.in_(offer_ids)).execute()
        target = "unmapped" if product_id is None else f"mapped to product #{product_id}"
        _log(store, Category.PRODUCTS, f"{changed} offer(s) {target}", ", ".join(offer_ids[:50]))
    return changed


def map_contract(store: Store, contract_id: str, agreement_id: int | None) -> int:
    """The whole contract's agreement (SPEC §8 rule 2): every unsynced line without its own
    agreement follows; the lines' own agreements are cleared so that all follow. The agreement
    must belong to the contract's company and to that of each of its unsynced lines."""
    agreement = _check_agreement(agreement_id)
    with store.atomic():
        if agreement is not None:
            contract = Contract.get_or_none(Contract.platform_id == contract_id)
            if contract is None:
                raise MappingError(f"contract {contract_id} is not known")
            org = Organization.get_or_none(Organization.platform_id == contract.organization_id)
            company_id = org.company_id if org is not None else None
            if company_id != agreement.company_id:
                raise MappingError(f"{_agreement_label(agreement)}, but contract {contract_id} is for "
                                   f"{company_label(company_id)}: choose an agreement of the contract's company")
            _refuse_other_company(agreement, line_changes.contract_lines_of_other_company(store, contract_id, agreement.company_id))
        Contract.update(agreement_id=agreement_id, updated_at=now_utc(), **stamped()).where(
            Contract.platform_id == contract_id).execute()
        cleared = line_changes.clear_contract_line_agreements(store, contract_id)
        _log(store, Category.INVOICES, f"Contract {contract_id} {'unmapped' if agreement_id is None else f'mapped to agreement #{agreement_id}'}",
             f"{cleared} unsynced line(s) follow the contract")
    return cleared


def _check_agreement(agreement_id: int | None) -> Agreement | None:
    if agreement_id is None:
        return None
    agreement = Agreement.get_or_none(Agreement.id == agreement_id)
    if agreement is None:
        raise MappingError(f"ConnectWise agreement {agreement_id} is not known: run Sync Organizations")
    if agreement.cancelled or agreement.status != "Active":
        raise MappingError(f"agreement {safe_text(agreement.name)} is {safe_text(agreement.status)}; ConnectWise takes "
                           "additions only on Active ones")
    return agreement


# The sentences below are read on a screen: the names in them are shown literally (safe_text).


def company_label(company_id: int | None) -> str:
    if company_id is None:
        return "no PSA Organization yet"
    company = Company.get_or_none(Company.id == company_id)
    return f"{safe_text(company.name)} (#{company_id})" if company is not None else f"company #{company_id}"


def agreement_gone(agreement_id: int | None, own: bool) -> str | None:
    """Why a line's agreement (its own when `own`, else its contract's) can take no more
    additions: gone from ConnectWise (deleted) or no longer Active; None when it can."""
    if agreement_id is None:
        return None
    whose = "own" if own else "contract's"
    agreement = Agreement.get_or_none(Agreement.id == agreement_id)
    if agreement is None:
        return f"{whose} agreement #{agreement_id} no longer exists in ConnectWise"
    if agreement.cancelled or agreement.status != "Active":
        state = "Cancelled" if agreement.cancelled else safe_text(agreement.status)
        return f"{whose} agreement {safe_text(agreement.name)} (#{agreement_id}) is {state} in ConnectWise"
    return None


def forget_gone_agreement(store: Store, contract_id: str) -> bool:
    """The contract forgets its agreement when it is gone from ConnectWise or no longer Active:
    its lines then get one by SPEC §8 rules 3-4 at the next sync. Lines' own agreements stay."""
    with store.atomic():
        contract = Contract.get_or_none(Contract.platform_id == contract_id)
        if contract is None or agreement_gone(contract.agreement_id, own=False) is None:
            return False
        Contract.update(agreement_id=None, updated_at=now_utc(), **stamped()).where(Contract.platform_id == contract_id).execute()
        _log(store, Category.INVOICES, f"Contract {contract_id} forgot agreement #{contract.agreement_id}",
             "it is gone from ConnectWise or no longer Active; the next sync chooses one (SPEC §8)")
    return True


def _agreement_label(agreement: Agreement) -> str:
    return f"agreement {safe_text(agreement.name)} (#{agreement.id}) belongs to {company_label(agreement.company_id)}"


def _refuse_other_company(agreement: Agreement, other: tuple[str, int | None, int] | None) -> None:
    """An agreement is posted to for its own company only: refuse it for lines of another
    company (`other`: the first such line, its company and how many there are)."""
    if other is not None:
        line_id, company_id, count = other
        more = f" (and {count - 1:,} more line(s) of other companies)" if count > 1 else ""
        raise MappingError(f"{_agreement_label(agreement)}, but line {line_id} is for {company_label(company_id)}{more}: "
                           "choose an agreement of the line's company")


def common_company(store: Store, selection: Selection) -> tuple[int | None, str]:
    """The one company of the selected editable lines, whose agreements they may get, and
    a sentence that says so; or None and why there is none."""
    companies = line_companies(store, selection)
    known = [(cid, name) for cid, name, _ in companies if cid is not None]
    without = sum(n for cid, _, n in companies if cid is None)
    if without:
        return None, f"{without:,} marked line(s) have no PSA Organization yet: set it first (an agreement belongs to one company)."
    if len(known) > 1:
        names = ", ".join(safe_text(name) or f"#{cid}" for cid, name in known[:3]) + (", …" if len(known) > 3 else "")
        return None, (f"The marked lines belong to {len(known)} companies ({names}): an agreement belongs to one. "
                      "Mark the lines of one company.")
    if not known:
        return None, "No marked line can be changed (synced lines are read-only)."
    return known[0][0], f"Agreements of {company_label(known[0][0])}, the company of every marked line."


def line_companies(store: Store, selection: Selection) -> list[tuple[int | None, str | None, int]]:
    """The companies of the selected editable lines (their own PSA Organization, else their
    organization's): (id, name, lines), most lines first. An agreement fits the lines of one
    company."""
    return line_changes.line_companies(store, selection)


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


def update_lines(store: Store, selection: Selection, change: LineChange) -> int:
    """Apply `change` to the selected editable lines (a grid's marks or its "all matching")."""
    return _update_lines(store, lambda: line_changes.StagedLines.of_selection(store, selection), change)


def update_line_ids(store: Store, line_ids: list[str], change: LineChange, *, read: Stamp | None = None) -> int:
    """`update_lines` for explicit lines (one row, or the rows a person marked), all or nothing.
    `read`: the one line's stamp when its editor opened it; someone's save since is refused."""
    def stage() -> line_changes.StagedLines:
        _refuse_if_changed(store, "line", line_ids, read, f"Line {safe_text(line_ids[0]) if line_ids else ''}")
        return line_changes.StagedLines.of_line_ids(store, line_ids)
    return _update_lines(store, stage, change)


def _update_lines(store: Store, stage: Callable[[], line_changes.StagedLines], change: LineChange) -> int:
    """`change` on the staged editable lines, all or nothing. Typed dates get the User Updated
    badge; a default end follows a new start (SPEC §9)."""
    if not change.fields():
        return 0
    if change.company_id not in (..., None) and Company.get_or_none(Company.id == change.company_id) is None:
        raise MappingError(f"ConnectWise company {change.company_id} is not known")
    if change.product_id not in (..., None):
        product = Product.get_or_none(Product.id == change.product_id)
        if product is None or product.inactive:
            raise MappingError(f"ConnectWise product {change.product_id} is unknown or inactive")
    agreement = _check_agreement(change.agreement_id) if change.agreement_id is not ... else None
    # each line is read and rewritten once: through the small page cache, outside the transaction
    # (50,000 lines dirtied ~25 MB of pages that the grid's 64 MiB cache held until it closed)
    with store.sparing_memory(), store.atomic():
        lines = stage()
        affected = lines.count()
        _refuse_mismatched_agreements(lines, change, agreement)
        start, end = change.charge_start, change.charge_end
        if end not in (..., None):
            bad = lines.end_before_start(None if start in (..., None) else start, end)
            if bad:
                raise MappingError(f"the Charge End Date would be before the Charge Start Date on {bad} line(s)")
        elif start not in (..., None):
            bad = lines.typed_end_before(start)
            if bad:
                raise MappingError(f"{bad} line(s) have a Charge End Date before {start.isoformat()}; change it too")
        if start not in (..., None):
            lines.set_charge_start(start)
        if end is not ...:
            lines.set_charge_end(end)
        for name in ("company_id", "product_id", "agreement_id"):
            if getattr(change, name) is not ...:
                lines.set_override(name, getattr(change, name))
        lines.stamp(**stamped())
        _log(store, Category.INVOICES, f"Updated {affected:,} line(s): {', '.join(change.fields())}",
             "; ".join(f"{name} = {getattr(change, name)}" for name in change.fields()))
    return affected


def _refuse_mismatched_agreements(lines: line_changes.StagedLines, change: LineChange, agreement: Agreement | None) -> None:
    """The staged lines may not end with another company's agreement: a new agreement must be
    of each line's company after the change, and a new company must match the line's own
    agreement (clear or change that first)."""
    if agreement is not None:
        _refuse_other_company(agreement, lines.of_other_company(change.company_id, agreement.company_id))
    elif change.company_id is not ... and change.agreement_id is ...:
        row = lines.own_agreement_of_other_company(change.company_id)
        if row is not None:
            raise MappingError(f"line {row[0]} has its own {_agreement_label(Agreement.get_by_id(row[1]))}, not to "
                               f"{company_label(row[2])}: clear or change the line's agreement first")


def parse_day(text: str) -> date | None:
    text = text.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise MappingError(f"not a date: {text!r} (expected YYYY-MM-DD)") from None
