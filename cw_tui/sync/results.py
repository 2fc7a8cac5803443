"""What a run did: counts, totals per customer and currency, and their JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

CENT = Decimal("0.01")


@dataclass
class SyncResult:
    run_id: int
    period: str
    created: int = 0
    updated: int = 0
    cancelled: int = 0
    agreements_created: int = 0
    unchanged: int = 0
    adopted: int = 0  # found in ConnectWise and taken over: nothing posted
    skipped: int = 0
    errors: int = 0
    synced_lines: int = 0
    fingerprint: str = ""
    api_calls: int = 0
    duration_s: float = 0.0
    totals: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "created": self.created, "updated": self.updated, "cancelled": self.cancelled,
            "agreements_created": self.agreements_created, "skipped": self.skipped, "errors": self.errors,
            "api_calls": self.api_calls, "duration_s": round(self.duration_s, 3),
            "period": self.period, "unchanged": self.unchanged, "adopted": self.adopted, "synced_lines": self.synced_lines,
            "fingerprint": self.fingerprint, "totals": totals_json(self.totals),
        }


def totals_json(totals: dict[tuple[str, str], Any]) -> list[dict[str, Any]]:
    rows = []
    for (customer, currency), total in sorted(totals.items()):
        values = total if isinstance(total, dict) else vars(total)
        rows.append({"customer": customer, "currency": currency, **{k: (str(v.quantize(CENT)) if isinstance(v, Decimal) else v)
                                                                      for k, v in values.items()}})
    return rows


def money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):,}"
