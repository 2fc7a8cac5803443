"""ConnectWise records, read leniently: every field optional, unknown fields kept
(ConnectWise adds fields between versions, and `fields=` projections drop "required" ones).
Numbers arrive as Decimal (the client parses JSON floats as Decimal)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict


class CWModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Reference(CWModel):
    id: int | None = None
    name: str | None = None
    identifier: str | None = None


class SystemInfo(CWModel):
    version: str | None = None
    isCloud: bool | None = None
    serverTimeZone: str | None = None
    cloudRegion: str | None = None


class Company(CWModel):
    id: int
    identifier: str | None = None
    name: str | None = None
    status: Reference | None = None
    deletedFlag: bool | None = None
    defaultContact: Reference | None = None


class CompanyStatus(CWModel):
    id: int
    name: str | None = None
    defaultFlag: bool | None = None
    inactiveFlag: bool | None = None


class CatalogItem(CWModel):
    id: int
    identifier: str | None = None
    description: str | None = None
    inactiveFlag: bool | None = None
    price: Decimal | None = None
    cost: Decimal | None = None


class AgreementType(CWModel):
    id: int
    name: str | None = None
    inactiveFlag: bool | None = None
    defaultFlag: bool | None = None


class Agreement(CWModel):
    id: int
    name: str | None = None
    type: Reference | None = None
    company: Reference | None = None
    contact: Reference | None = None
    agreementStatus: str | None = None
    cancelledFlag: bool | None = None
    startDate: str | None = None
    endDate: str | None = None


class Invoice(CWModel):
    id: int
    invoiceNumber: str | None = None
    type: str | None = None
    agreement: Reference | None = None
    company: Reference | None = None
    applyToType: str | None = None
    applyToId: int | None = None
    date: str | None = None
    total: Decimal | None = None


class Addition(CWModel):
    id: int
    product: Reference | None = None
    quantity: Decimal | None = None
    unitPrice: Decimal | None = None
    unitCost: Decimal | None = None
    billCustomer: str | None = None
    effectiveDate: str | None = None
    cancelledDate: str | None = None
    serialNumber: str | None = None
    description: str | None = None
    invoiceDescription: str | None = None
    agreementId: int | None = None
    agreementStatus: str | None = None


def to_json_number(value: Any) -> Any:
    """ConnectWise amounts are doubles: Decimals go out as the nearest float."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: to_json_number(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json_number(v) for v in value]
    return value
