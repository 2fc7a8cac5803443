"""A deterministic demo Platform export (`cw-tui demo-data`).

Organizations, offers and contracts, and 15 months of invoice lines: monthly, annual and
triennial subscriptions (Purchase Fee then Cycle Fees, changing quantities, some cancelled),
usage fees, one-time and item fees, corrections, and a few custom invoices (User Correction)
on the default offer. About 70% of organization and offer names match the sandbox's
ConnectWise companies and products of the same seed; a few organizations share one company.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from cw_tui.platform.files import CONTRACTS, INVOICE_LINES, OFFERS, ORGANIZATIONS
from cw_tui.rules.periods import last_day_of_month, parse_period, period_of, shift_period
from cw_tui.rules.vocabulary import BillingCycle, ChargeType
from cw_tui.services.world import ProductName, make_world

CUSTOM_OFFER_ID = "OFFER-CUSTOM"
MATCH_SHARE = 0.7


@dataclass
class _Subscription:
    id: str
    offer: ProductName
    offer_id: str
    cycle: BillingCycle
    start: str  # first period
    end: str | None  # last period, or None while active
    quantity: Decimal
    price: Decimal


@dataclass
class _Org:
    id: str
    name: str
    reference: str
    status: str
    contracts: list[tuple[str, int, str]] = field(default_factory=list)  # id, billing day, currency
    subscriptions: list[_Subscription] = field(default_factory=list)


@dataclass
class DemoSummary:
    folder: Path
    organizations: int
    offers: int
    contracts: int
    lines: int
    periods: list[str]


def _month_day(period: str, day: int) -> date:
    year, month = parse_period(period)
    return date(year, month, min(day, last_day_of_month(date(year, month, 1)).day))


def _add_months(day: date, months: int) -> date:
    period = shift_period(period_of(day), months)
    return _month_day(period, day.day)


def write_demo_data(
    folder: Path | str,
    *,
    seed: int = 7,
    organizations: int = 300,
    months: int = 15,
    end_month: str | None = None,
    subscriptions_per_organization: float = 3.5,
    today: date | None = None,
) -> DemoSummary:
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    today = today or date.today()
    end_month = end_month or period_of(today)
    parse_period(end_month)
    periods = [shift_period(end_month, -k) for k in range(months - 1, -1, -1)]
    rng = random.Random(f"cw-tui-demo-{seed}")
    world = make_world(seed)

    # --- offers: ~70% named like catalog products, the rest unknown to ConnectWise
    offer_count = min(40, len(world.products) + len(world.other_products))
    matched = rng.sample(world.products, min(len(world.products), round(offer_count * MATCH_SHARE)))
    offers = matched + list(world.other_products[: offer_count - len(matched)])
    rng.shuffle(offers)
    offer_ids = {o.identifier: f"OFFER-{i:04d}" for i, o in enumerate(offers, start=1)}

    # --- organizations: ~70% named like ConnectWise companies; three small groups share a name
    # (several Platform organizations for one ConnectWise company, SPEC §8 rule 5)
    n_matched = round(organizations * MATCH_SHARE)
    company_names = [c.name for c in rng.sample(world.companies, min(n_matched, len(world.companies)))]
    if organizations >= 20:
        for group in range(3):
            company_names[-(group + 1)] = company_names[group]
    other = list(world.other_company_names)
    rng.shuffle(other)
    names = company_names + [
        other[i % len(other)] + (f" #{i // len(other) + 1}" if i >= len(other) else "")
        for i in range(organizations - len(company_names))
    ]
    rng.shuffle(names)
    currencies = ["USD"] * 15 + ["EUR"] * 3 + ["GBP"] * 2 + ["AUD"]
    orgs: list[_Org] = []
    contract_no = 0
    sub_no = 0
    first_period = periods[0]
    for index, name in enumerate(names, start=1):
        roll = rng.random()
        status = "Active" if roll < 0.85 else ("New" if roll < 0.95 else "Suspended")
        org = _Org(f"ORG-{index:05d}", name, f"ACC-{100000 + index * 7}", status)
        contract_no += 1
        org.contracts.append((f"CTR-{contract_no:06d}", rng.randint(1, 28), rng.choice(currencies)))
        if rng.random() < 0.03:  # a second contract in another currency
            contract_no += 1
            org.contracts.append((f"CTR-{contract_no:06d}", rng.randint(1, 28), "EUR" if org.contracts[0][2] != "EUR" else "USD"))
        count = max(1, round(rng.expovariate(1 / subscriptions_per_organization)))
        for _ in range(count):
            sub_no += 1
            offer = rng.choice(offers)
            cycle = BillingCycle.MONTHLY
            if not offer.usage:
                cycle = rng.choices([BillingCycle.MONTHLY, BillingCycle.ANNUAL, BillingCycle.TRIENNIAL], [75, 20, 5])[0]
            start = shift_period(first_period, rng.randint(-30, months - 1))
            end = None
            if rng.random() < 0.1:
                end = shift_period(start, rng.randint(1, 24))
            quantity = Decimal(1) if offer.usage else Decimal(rng.choice([1, 1, 2, 3, 5, 8, 10, 12, 15, 25, 40]))
            org.subscriptions.append(
                _Subscription(f"SUB-{sub_no:07d}", offer, offer_ids[offer.identifier], cycle, start, end, quantity, Decimal(offer.list_price))
            )
        orgs.append(org)

    # --- invoice lines, month by month
    lines: list[list[str]] = []
    cost_share = Decimal("0.8")

    def add_line(period: str, org: _Org, contract: tuple[str, int, str], invoice_no: str, status: str, line_no: int,
                 sub_id: str, sub_name: str, offer_id: str, charge: ChargeType, cycle: BillingCycle,
                 quantity: Decimal, price: Decimal, start: date, end: date | None) -> None:
        invoice_date = _month_day(period, contract[1])
        lines.append([
            f"LN-{period}-{org.id[4:]}-{line_no:04d}", invoice_no, invoice_date.isoformat(), status, org.id, contract[0],
            sub_id, sub_name, offer_id, charge.value, cycle.value, str(quantity), str(price),
            str((price * cost_share).quantize(Decimal("0.01"))), contract[2], start.isoformat(), end.isoformat() if end else "",
        ])

    for period in periods:
        for org in orgs:
            contract = org.contracts[0]
            invoice_date = _month_day(period, contract[1])
            if period == period_of(today):
                status = "Verified" if rng.random() < 0.7 else "New"
            else:
                roll = rng.random()
                status = "Processed" if roll < 0.97 else ("Verified" if roll < 0.99 else "New")
            invoice_no = f"INV-{period.replace('-', '')}-{org.id[4:]}"
            line_no = 0
            for sub in org.subscriptions:
                if period < sub.start or (sub.end is not None and period > sub.end):
                    continue
                use = org.contracts[-1] if len(org.contracts) > 1 and sub.id[-1] in "13579" else contract
                if sub.offer.usage:
                    line_no += 1
                    consumption = Decimal(rng.randint(1000, 900_000)) / 1000
                    prev = shift_period(period, -1)
                    add_line(period, org, use, invoice_no, status, line_no, sub.id, sub.offer.description, sub.offer_id,
                             ChargeType.USAGE_FEE, BillingCycle.NONE, consumption, sub.price,
                             _month_day(prev, 1), last_day_of_month(_month_day(prev, 1)))
                    continue
                months_in = (int(period[:4]) * 12 + int(period[5:])) - (int(sub.start[:4]) * 12 + int(sub.start[5:]))
                term = {BillingCycle.MONTHLY: 1, BillingCycle.ANNUAL: 12, BillingCycle.TRIENNIAL: 36}[sub.cycle]
                if months_in % term:
                    continue
                if months_in and rng.random() < 0.08:  # seats added or removed
                    old = sub.quantity
                    sub.quantity = max(Decimal(1), sub.quantity + rng.choice([-2, -1, 1, 1, 2, 5]))
                    if sub.quantity < old and rng.random() < 0.5:
                        line_no += 1
                        start = _month_day(period, contract[1])
                        add_line(period, org, use, invoice_no, status, line_no, sub.id, sub.offer.description, sub.offer_id,
                                 ChargeType.CORRECTION, sub.cycle, sub.quantity - old, sub.price, start - timedelta(days=15), start - timedelta(days=1))
                charge = ChargeType.PURCHASE_FEE if months_in == 0 else ChargeType.CYCLE_FEE
                line_no += 1
                start = _month_day(period, use[1])
                add_line(period, org, use, invoice_no, status, line_no, sub.id, sub.offer.description, sub.offer_id,
                         charge, sub.cycle, sub.quantity, sub.price, start, _add_months(start, term) - timedelta(days=1))
            roll = rng.random()
            if roll < 0.03 and org.subscriptions:
                line_no += 1
                sub = rng.choice(org.subscriptions)
                kind = ChargeType.ONE_TIME_FEE if roll < 0.015 else ChargeType.ITEM_FEE
                add_line(period, org, contract, invoice_no, status, line_no, sub.id, f"{sub.offer.description} setup", sub.offer_id,
                         kind, BillingCycle.NONE, Decimal(1), Decimal(rng.choice(["25.00", "49.00", "150.00"])), invoice_date, None)
            elif roll < 0.04:  # a custom invoice: credit note or debit memo typed on the Platform
                amount = Decimal(rng.choice(["-50.00", "-19.99", "-120.00", "35.00"]))
                add_line(period, org, contract, f"CI-{period.replace('-', '')}-{org.id[4:]}", status, 900,
                         f"CUSTOM-{org.id}-{period}", "Credit note" if amount < 0 else "Debit memo", CUSTOM_OFFER_ID,
                         ChargeType.USER_CORRECTION, BillingCycle.NONE, Decimal(1), amount, invoice_date, None)

    def write(kind_stem: str, header: list[str], rows: list[list[str]]) -> None:
        with (folder / f"{kind_stem}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)

    write(ORGANIZATIONS.stem, list(ORGANIZATIONS.columns), [[o.id, o.name, o.reference, o.status] for o in orgs])
    write(OFFERS.stem, list(OFFERS.columns),
          [[offer_ids[o.identifier], o.description, o.identifier, o.vendor] for o in offers]
          + [[CUSTOM_OFFER_ID, "Custom Invoice Item", "n/a", "Seller"]])
    write(CONTRACTS.stem, list(CONTRACTS.columns),
          [[c[0], o.id, str(c[1]), c[2], "Reseller"] for o in orgs for c in o.contracts])
    by_period: dict[str, list[list[str]]] = {p: [] for p in periods}
    for row in lines:
        by_period[row[2][:7]].append(row)
    for stale in folder.glob("invoice_lines*.csv"):
        stale.unlink()
    for period, rows in by_period.items():
        write(f"{INVOICE_LINES.stem}_{period}", list(INVOICE_LINES.columns), rows)
    return DemoSummary(folder, len(orgs), len(offers) + 1, sum(len(o.contracts) for o in orgs), len(lines), periods)
