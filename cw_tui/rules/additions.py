"""What an Addition holds (SPEC §7), and the marker that ties it to its owner."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal
from typing import Any

MARKER_PREFIX = "cwt:"
MAX_MARKER = 50
MAX_INVOICE_DESCRIPTION = 6000


def marker(kind: str, owner_id: str) -> str:
    """`cwt:L:<line id>` for a one-time line, `cwt:S:<subscription id>` for a subscription;
    IDs too long for ConnectWise's 50-character serialNumber are hashed."""
    assert kind in ("L", "S")
    text = f"{MARKER_PREFIX}{kind}:{owner_id}"
    if len(text) <= MAX_MARKER:
        return text
    return f"{MARKER_PREFIX}{kind}#{hashlib.sha256(owner_id.encode()).hexdigest()[:40]}"


def cw_datetime(day: date) -> str:
    """ConnectWise wants `YYYY-MM-DDTHH:MM:SSZ`, no milliseconds (API-NOTES §4.4)."""
    return f"{day.isoformat()}T00:00:00Z"


def _when(start: date, end: date | None) -> str:
    if end is None:
        return f"from {start:%d %b %Y}"
    return f"{start:%d %b %Y} to {end:%d %b %Y}"


def descriptions(offer: str, subscription: str, charge_name: str, start: date, end: date | None) -> tuple[str, str]:
    description = f"{subscription} - {charge_name}"
    invoice = f"{offer} - {subscription} - {charge_name} ({_when(start, end)})"
    return description[:MAX_INVOICE_DESCRIPTION], invoice[:MAX_INVOICE_DESCRIPTION]


@dataclass(frozen=True)
class AdditionValues:
    product_id: int
    quantity: Decimal
    unit_price: Decimal
    unit_cost: Decimal
    effective_date: date
    cancelled_date: date | None
    description: str
    invoice_description: str

    @property
    def amount(self) -> Decimal:
        return self.quantity * self.unit_price

    def body(self, serial_number: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "product": {"id": self.product_id},
            "quantity": self.quantity,
            "unitPrice": self.unit_price,
            "unitCost": self.unit_cost,
            "billCustomer": "Billable",
            "effectiveDate": cw_datetime(self.effective_date),
            "description": self.description,
            "invoiceDescription": self.invoice_description,
            "serialNumber": serial_number,
        }
        if self.cancelled_date is not None:
            body["cancelledDate"] = cw_datetime(self.cancelled_date)
        return body

    def changes_from(self, old: AdditionValues | None) -> dict[str, Any]:
        """The PATCH of an existing Addition: only the fields that differ."""
        new_body = self.body("")
        if old is None:
            return {k: v for k, v in new_body.items() if k != "serialNumber"}
        old_body = old.body("")
        changes = {k: v for k, v in new_body.items() if k != "serialNumber" and old_body.get(k) != v}
        if "cancelledDate" in old_body and "cancelledDate" not in new_body:
            changes["cancelledDate"] = None
        return changes


VALUE_FIELDS = tuple(f.name for f in fields(AdditionValues))
