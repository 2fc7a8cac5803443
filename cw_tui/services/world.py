"""The names shared by the ConnectWise sandbox and the demo Platform export.

Both are generated from one seed, so that a demo folder made with `--seed 7` names, for about
70% of its organizations and offers, the companies and catalog products of a sandbox started
with `--seed 7`; the rest are names ConnectWise does not know, as in real life.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache

_FIRST = (
    "Blue Harbor", "Northwind", "Summit", "Redwood", "Silver Lake", "Ironbridge", "Maple Leaf", "Granite",
    "Clearwater", "Evergreen", "Falcon", "Golden Gate", "Highland", "Lakeside", "Meridian", "Oakridge",
    "Pinnacle", "Riverstone", "Sapphire", "Trident", "Unity", "Vanguard", "Westfield", "Apex", "Beacon",
    "Cedar Point", "Copper Hill", "Driftwood", "Eastgate", "Foxglove", "Harborview", "Juniper", "Keystone",
    "Lighthouse", "Mosaic", "Nimbus", "Orchard", "Prairie", "Quarry", "Rockport", "Seabreeze", "Tall Pines",
    "Upland", "Valley View", "Willow Creek", "Yellowstone", "Zephyr", "Alder", "Brookside", "Crescent",
)
_SECOND = (
    "Logistics", "Dental", "Legal", "Accounting", "Engineering", "Consulting", "Medical", "Realty",
    "Construction", "Manufacturing", "Foods", "Design", "Insurance", "Capital", "Architects", "Veterinary",
    "Pharmacy", "Marine", "Energy", "Software", "Media", "Education", "Hospitality", "Motors", "Plumbing",
    "Electric", "Landscaping", "Printing", "Travel", "Fitness",
)
_SUFFIX = ("LLC", "Inc.", "Ltd", "Group", "Partners", "Co.", "Associates", "GmbH", "Pty Ltd", "")

# (vendor, family, editions): offers are "family edition".
_PRODUCT_FAMILIES = (
    ("Microsoft", "Microsoft 365", ("Business Basic", "Business Standard", "Business Premium", "E3", "E5", "F3", "Apps for business")),
    ("Microsoft", "Exchange Online", ("Plan 1", "Plan 2", "Kiosk")),
    ("Microsoft", "Microsoft Teams", ("Essentials", "Premium", "Phone Standard")),
    ("Microsoft", "Microsoft Defender", ("for Business", "for Endpoint P1", "for Office 365 P1")),
    ("Microsoft", "Power BI", ("Pro", "Premium Per User")),
    ("Microsoft", "Azure", ("Plan", "Reserved VM Instance")),
    ("Microsoft", "Visio", ("Plan 1", "Plan 2")),
    ("Microsoft", "Project", ("Plan 1", "Plan 3")),
    ("Acronis", "Acronis Cyber Protect Cloud", ("Per Workload", "Per GB", "Advanced Backup", "Advanced Security", "Disaster Recovery")),
    ("Acronis", "Acronis Cyber Files Cloud", ("Per User", "Per GB")),
    ("Google", "Google Workspace", ("Business Starter", "Business Standard", "Business Plus", "Enterprise Standard")),
    ("Dropbox", "Dropbox", ("Business Standard", "Business Advanced", "Enterprise")),
    ("Adobe", "Adobe Acrobat", ("Standard", "Pro")),
    ("Adobe", "Adobe Creative Cloud", ("All Apps", "Photography", "Single App")),
    ("Bitdefender", "Bitdefender GravityZone", ("Business Security", "Advanced", "Ultra")),
    ("Keepit", "Keepit", ("for Microsoft 365", "for Google Workspace", "for Salesforce")),
    ("Zoom", "Zoom", ("Pro", "Business", "Business Plus", "Rooms")),
    ("Veeam", "Veeam Backup", ("for Microsoft 365", "Essentials")),
    ("Kaspersky", "Kaspersky Endpoint Security Cloud", ("Plus", "Pro")),
    ("Dynamics", "Dynamics 365", ("Business Central Essentials", "Business Central Premium", "Sales Professional")),
    ("Cisco", "Webex", ("Meetings", "Calling", "Suite")),
    ("Slack", "Slack", ("Pro", "Business+")),
    ("Sophos", "Sophos Central", ("Intercept X", "Email", "Firewall")),
    ("Datto", "Datto SaaS Protection", ("for Microsoft 365", "for Google Workspace")),
    ("NinjaOne", "NinjaOne", ("RMM", "Backup")),
)
# Offers that are billed by usage (quantity = consumption, fractional).
USAGE_FAMILIES = frozenset({("Azure", "Plan"), ("Acronis Cyber Protect Cloud", "Per GB"), ("Acronis Cyber Files Cloud", "Per GB")})

COMPANY_STATUSES = ("Active", "Inactive", "Not-Approved", "Credit Hold", "Delinquent")


@dataclass(frozen=True)
class CompanyName:
    name: str
    identifier: str
    status: str


@dataclass(frozen=True)
class ProductName:
    description: str  # ConnectWise catalog "description" (<= 60 chars); the Platform's offer name
    identifier: str  # ConnectWise catalog identifier, also the offer's external (vendor) ID
    vendor: str
    usage: bool
    list_price: str


@dataclass(frozen=True)
class World:
    seed: int
    companies: tuple[CompanyName, ...]  # what the sandbox's ConnectWise holds
    other_company_names: tuple[str, ...]  # customers ConnectWise does not know
    products: tuple[ProductName, ...]  # the sandbox's catalog
    other_products: tuple[ProductName, ...]  # offers ConnectWise's catalog lacks


def _identifier(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9]", "", name)[:26] or "Company"
    candidate, n = base, 2
    while candidate.lower() in taken:
        candidate, n = f"{base}{n}", n + 1
    taken.add(candidate.lower())
    return candidate


def _sku(vendor: str, description: str, rng: random.Random) -> str:
    letters = "".join(w[0] for w in re.findall(r"[A-Za-z0-9]+", description)).upper()
    return f"{vendor[:3].upper()}-{letters}-{rng.randrange(1000, 9999)}"


@lru_cache(maxsize=8)
def make_world(seed: int = 7, companies: int = 400, products: int = 60) -> World:
    rng = random.Random(f"cw-tui-world-{seed}")
    # One name per "first second" pair: names differing only by suffix would look alike to a
    # person while being different customers, and would make matches ambiguous.
    stems = [f"{a} {b}" for a in _FIRST for b in _SECOND]
    rng.shuffle(stems)
    unique = [f"{stem} {rng.choice(_SUFFIX)}".strip() for stem in stems]
    taken: set[str] = set()
    company_list = []
    for name in unique[:companies]:
        roll = rng.random()
        status = "Active" if roll < 0.82 else COMPANY_STATUSES[1 + int((roll - 0.82) / 0.18 * 4) % 4]
        company_list.append(CompanyName(name[:50], _identifier(name, taken), status))
    others = tuple(unique[companies:])

    offers = []
    for vendor, family, editions in _PRODUCT_FAMILIES:
        for edition in editions:
            description = f"{family} {edition}"[:60]
            price = rng.choice(("4.00", "6.00", "8.25", "12.50", "22.00", "36.00", "57.00", "0.10", "1.00", "15.99"))
            offers.append(ProductName(description, _sku(vendor, description, rng), vendor, (family, edition) in USAGE_FAMILIES, price))
    rng.shuffle(offers)
    return World(seed, tuple(company_list), others, tuple(offers[:products]), tuple(offers[products:]))
