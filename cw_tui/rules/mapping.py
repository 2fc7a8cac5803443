"""Effective mapping of an invoice line (SPEC §6, §8 rule 5).

A line's ConnectWise company, product and agreement are its own override if set, else the
mapping of its organization, offer and contract. The same rule is written once more as SQL in
services/repository.py for the grids and counts; a test holds the two to each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class MappingStatus(StrEnum):
    MAPPED = "mapped"
    UNMAPPED = "unmapped"
    EXCLUDED = "excluded"


@dataclass(frozen=True)
class LineMappingFacts:
    organization_excluded: bool
    organization_company_id: int | None
    offer_product_id: int | None
    contract_agreement_id: int | None
    override_company_id: int | None = None
    override_product_id: int | None = None
    override_agreement_id: int | None = None
    # How many Platform organizations are mapped to the line's effective company.
    organizations_on_company: int = 1


def effective_company(facts: LineMappingFacts) -> int | None:
    return facts.override_company_id if facts.override_company_id is not None else facts.organization_company_id


def effective_product(facts: LineMappingFacts) -> int | None:
    return facts.override_product_id if facts.override_product_id is not None else facts.offer_product_id


def chosen_agreement(facts: LineMappingFacts) -> int | None:
    """Rules 1-2 of SPEC §8: the line's own agreement, else its contract's."""
    return facts.override_agreement_id if facts.override_agreement_id is not None else facts.contract_agreement_id


def mapping_status(facts: LineMappingFacts) -> MappingStatus:
    """Unmapped says what a person must do next, so it wins; Excluded marks a line that could
    be posted but whose organization a person keeps out of sync (new ones start that way)."""
    if effective_company(facts) is None or effective_product(facts) is None:
        return MappingStatus.UNMAPPED
    # Rule 5: a company mapped from several organizations needs a chosen agreement.
    if facts.organizations_on_company > 1 and chosen_agreement(facts) is None:
        return MappingStatus.UNMAPPED
    if facts.organization_excluded:
        return MappingStatus.EXCLUDED
    return MappingStatus.MAPPED
