"""The sandbox's ConnectWise data: seeded deterministically from the shared world, so that a
demo Platform export of the same seed finds most of its names here."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cw_tui.services.world import COMPANY_STATUSES, make_world

COMPANY_ID_BASE = 250
PRODUCT_ID_BASE = 1000
AGREEMENT_ID_BASE = 5000
ADDITION_ID_BASE = 90000
INVOICE_ID_BASE = 70000
BASES = {"company": 5000, "invoice": INVOICE_ID_BASE}
TABLES = ("statuses", "companies", "catalog", "agreement_types", "agreements", "additions", "invoices", "invoiced")
AGREEMENT_TYPES = (
    ("Managed Services", False),
    ("Cloud Services", False),
    ("Microsoft CSP", False),
    ("Block Time", False),
    ("Legacy Hosting", True),
)
_EPOCH = "2024-01-01T00:00:00Z"


def _info(kind: str, record_id: int) -> dict[str, str]:
    return {"lastUpdated": _EPOCH, "updatedBy": "sandbox", f"{kind}_href": f"https://sandbox/{kind}/{record_id}"}


@dataclass
class SandboxState:
    company_id: str  # the login company id ("Company ID" in Settings)
    statuses: dict[int, dict] = field(default_factory=dict)
    companies: dict[int, dict] = field(default_factory=dict)
    catalog: dict[int, dict] = field(default_factory=dict)
    agreement_types: dict[int, dict] = field(default_factory=dict)
    agreements: dict[int, dict] = field(default_factory=dict)
    additions: dict[int, dict] = field(default_factory=dict)  # id -> addition (with agreementId)
    invoices: dict[int, dict] = field(default_factory=dict)  # agreement invoices (invoicing.py)
    invoiced: dict[int, dict] = field(default_factory=dict)  # agreement id -> {"id", "through": "YYYY-MM"}
    next_ids: dict[str, int] = field(default_factory=dict)

    def new_id(self, kind: str) -> int:
        if kind not in self.next_ids:  # a state file from before this kind could be created
            table = {"company": self.companies, "invoice": self.invoices}.get(kind, {})
            self.next_ids[kind] = max(table, default=BASES.get(kind, 0))
        self.next_ids[kind] += 1
        return self.next_ids[kind]

    def to_json(self) -> dict[str, Any]:
        return {
            "company_id": self.company_id,
            "statuses": list(self.statuses.values()),
            "companies": list(self.companies.values()),
            "catalog": list(self.catalog.values()),
            "agreement_types": list(self.agreement_types.values()),
            "agreements": list(self.agreements.values()),
            "additions": list(self.additions.values()),
            "invoices": list(self.invoices.values()),
            "invoiced": list(self.invoiced.values()),
            "next_ids": self.next_ids,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxState:
        state = cls(company_id=data["company_id"], next_ids=dict(data["next_ids"]))
        for name in TABLES:
            setattr(state, name, {row["id"]: row for row in data.get(name, [])})
        return state


def seed_state(seed: int = 7, company_id: str = "sandbox") -> SandboxState:
    world = make_world(seed)
    rng = random.Random(f"cw-tui-sandbox-{seed}")
    state = SandboxState(company_id=company_id)

    for index, name in enumerate(COMPANY_STATUSES, start=1):
        state.statuses[index] = {
            "id": index, "name": name, "defaultFlag": index == 1, "inactiveFlag": name == "Inactive",
            "notifyFlag": False, "disallowSavingFlag": False, "customNoteFlag": False, "cancelOpenTracksFlag": False,
            "_info": _info("status", index),
        }
    status_ids = {name: index for index, name in enumerate(COMPANY_STATUSES, start=1)}

    for index, company in enumerate(world.companies):
        cid = COMPANY_ID_BASE + index * 3
        contact_id = 10_000 + index
        state.companies[cid] = {
            "id": cid,
            "identifier": company.identifier,
            "name": company.name,
            "status": {"id": status_ids[company.status], "name": company.status},
            "types": [{"id": 1, "name": "Customer"}],
            "deletedFlag": False,
            "defaultContact": {"id": contact_id, "name": f"Billing Contact {index + 1}"},
            "phoneNumber": f"555-{rng.randrange(1000, 9999)}",
            "_info": _info("company", cid),
        }

    products = list(world.products)
    services = ("Managed Services Per User", "Managed Services Per Device", "Onsite Labor", "Project Labor")
    for index, product in enumerate(products):
        pid = PRODUCT_ID_BASE + index * 7
        inactive = rng.random() < 0.1
        state.catalog[pid] = {
            "id": pid,
            "identifier": product.identifier,
            "description": product.description,
            "inactiveFlag": inactive,
            "subcategory": {"id": 1, "name": "Cloud"},
            "category": {"id": 1, "name": "Software"},
            "type": {"id": 1, "name": "Subscription"},
            "productClass": "NonInventory",
            "customerDescription": product.description,
            "price": float(product.list_price),
            "cost": round(float(product.list_price) * 0.8, 2),
            "manufacturer": {"id": 1, "name": product.vendor},
            "_info": _info("catalog", pid),
        }
    for offset, description in enumerate(services):
        pid = PRODUCT_ID_BASE + (len(products) + offset) * 7
        state.catalog[pid] = {
            "id": pid, "identifier": description.upper().replace(" ", "-")[:30], "description": description,
            "inactiveFlag": False, "subcategory": {"id": 2, "name": "Services"}, "type": {"id": 2, "name": "Service"},
            "productClass": "Service", "customerDescription": description, "price": 95.0, "cost": 40.0,
            "_info": _info("catalog", pid),
        }

    for index, (name, inactive) in enumerate(AGREEMENT_TYPES, start=1):
        state.agreement_types[index] = {
            "id": index, "name": name, "inactiveFlag": inactive, "defaultFlag": index == 2, "prePaymentFlag": False,
            "employeeCompRate": "Actual", "employeeCompNotExceed": "Billing", "invoicingCycle": "CalendarYear",
            "billTime": "Billable", "billExpenses": "Billable", "billProducts": "Billable",
            "_info": _info("type", index),
        }
    active_types = [t for t in state.agreement_types.values() if not t["inactiveFlag"]]

    agreement_id = AGREEMENT_ID_BASE
    addition_id = ADDITION_ID_BASE
    catalog_active = [p for p in state.catalog.values() if not p["inactiveFlag"]]
    for company in state.companies.values():
        roll = rng.random()
        count = 0 if roll < 0.35 else 1 if roll < 0.8 else rng.randint(2, 3)
        for _ in range(count):
            agreement_id += 1
            agreement_type = rng.choice(active_types)
            cancelled = rng.random() < 0.1
            state.agreements[agreement_id] = {
                "id": agreement_id,
                "name": f"{company['name'][:60]} - {agreement_type['name']}",
                "type": {"id": agreement_type["id"], "name": agreement_type["name"]},
                "company": {"id": company["id"], "identifier": company["identifier"], "name": company["name"]},
                "contact": dict(company["defaultContact"]),
                "agreementStatus": "Cancelled" if cancelled else "Active",
                "cancelledFlag": cancelled,
                "startDate": "2024-01-01T00:00:00Z",
                "noEndingDateFlag": True,
                "billingCycle": {"id": 1, "name": "Monthly"},
                "billTime": "Billable", "billExpenses": "Billable", "billProducts": "Billable",
                "_info": _info("agreement", agreement_id),
            }
            if not cancelled and rng.random() < 0.3:  # a few additions typed by hand in ConnectWise
                for _ in range(rng.randint(1, 3)):
                    addition_id += 1
                    product = rng.choice(catalog_active)
                    quantity = float(rng.randint(1, 20))
                    state.additions[addition_id] = {
                        "id": addition_id,
                        "product": {"id": product["id"], "identifier": product["identifier"]},
                        "quantity": quantity, "unitPrice": product["price"], "unitCost": product["cost"],
                        "billCustomer": "Billable", "effectiveDate": "2025-01-01T00:00:00Z",
                        "description": product["description"], "agreementId": agreement_id,
                        "agreementStatus": "Active", "extPrice": round(quantity * product["price"], 2),
                        "_info": _info("addition", addition_id),
                    }
    state.next_ids = {"agreement": agreement_id, "addition": addition_id}
    from cw_tui.sandbox.invoicing import seed_history  # it reads this module's state

    seed_history(state, seed)
    return state


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
