"""The Platform's fixed vocabularies (SPEC §1, §2)."""

from __future__ import annotations

from enum import StrEnum


class ChargeType(StrEnum):
    PURCHASE_FEE = "Purchase Fee"
    CYCLE_FEE = "Cycle Fee"
    CORRECTION = "Correction"
    USAGE_FEE = "Usage Fee"
    ONE_TIME_FEE = "One Time Fee"
    ITEM_FEE = "Item Fee"
    USER_CORRECTION = "User Correction"

    @property
    def recurring(self) -> bool:
        return self in RECURRING_CHARGE_TYPES


RECURRING_CHARGE_TYPES = frozenset({ChargeType.CYCLE_FEE, ChargeType.PURCHASE_FEE})


class BillingCycle(StrEnum):
    MONTHLY = "Monthly"
    ANNUAL = "Annual"
    TRIENNIAL = "Triennial"
    NONE = "None"


class InvoiceStatus(StrEnum):
    NEW = "New"
    VERIFIED = "Verified"
    PROCESSED = "Processed"


# Only these invoices are loaded; New invoices are still being edited on the Platform.
LOADABLE_INVOICE_STATUSES = frozenset({InvoiceStatus.VERIFIED, InvoiceStatus.PROCESSED})


_LOOKUP: dict[type, dict[str, StrEnum]] = {}


def parse_enum(enum: type[StrEnum], text: str) -> StrEnum:
    """Case- and space-insensitive lookup ("cycle fee", "CYCLE  FEE" -> Cycle Fee)."""
    table = _LOOKUP.get(enum)
    if table is None:
        table = _LOOKUP[enum] = {m.value.casefold(): m for m in enum}
    member = table.get(text.casefold()) or table.get(" ".join(text.split()).casefold())
    if member is None:
        allowed = ", ".join(m.value for m in enum)
        shown = text if len(text) <= 60 else text[:60] + "…"  # a runaway cell is named, not echoed whole
        raise ValueError(f"unknown value {shown!r} (expected one of: {allowed})")
    return member
