"""The sync core's reads and bulk writes of the store (raw SQL kept here, below the core)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from cw_tui.rules.additions import AdditionValues, marker
from cw_tui.rules.charge_dates import Badge
from cw_tui.rules.mapping import MappingStatus
from cw_tui.rules.money import from_micros
from cw_tui.rules.sync_plan import (
    AgreementInfo,
    PeriodState,
    PersistentAddition,
    PlanLine,
    period_state,
)
from cw_tui.rules.vocabulary import BillingCycle, ChargeType
from cw_tui.store.database import Store
from cw_tui.store.line_sql import LINE_MAPPING_JOINS, LINE_MAPPING_STATUS
from cw_tui.store.models import (
    Agreement,
    Company,
    LoadedPeriod,
    PeriodNewSubscription,
    SubscriptionAddition,
)

_LINE_SQL = f"""
    SELECT l.line_id, l.invoice_date, l.organization_id, COALESCE(o.name, l.organization_id), l.contract_id,
           l.subscription_id, l.subscription_name, COALESCE(f.name, l.offer_id), l.charge_type, l.billing_cycle,
           l.quantity, l.unit_price, l.unit_cost, l.currency, l.charge_start, l.charge_start_badge, l.charge_end,
           {LINE_MAPPING_STATUS}, COALESCE(l.override_company_id, o.company_id), COALESCE(l.override_product_id, f.product_id),
           COALESCE(l.override_agreement_id, c.agreement_id), l.sync_status, l.posted_agreement_id
    FROM invoice_line l {LINE_MAPPING_JOINS}
    WHERE l.period = ?
"""


def plan_lines(store: Store, period: str) -> list[PlanLine]:
    result = []
    for row in store.db.execute_sql(_LINE_SQL, (period,)):
        (line_id, invoice_date, org_id, org_name, contract_id, sub_id, sub_name, offer_name, charge_type, cycle,
         quantity, unit_price, unit_cost, currency, start, start_badge, end, status, company_id, product_id,
         agreement_id, sync_status, posted_agreement_id) = row
        result.append(PlanLine(
            line_id, date.fromisoformat(invoice_date), org_id, org_name, contract_id, sub_id, sub_name, offer_name,
            ChargeType(charge_type), BillingCycle(cycle), from_micros(quantity), from_micros(unit_price),
            from_micros(unit_cost), currency, date.fromisoformat(start), start_badge == Badge.USER,
            date.fromisoformat(end) if end else None, MappingStatus(status), company_id, org_name, product_id,
            agreement_id, sync_status, posted_agreement_id,
        ))
    return result


def cached_agreements(store: Store) -> dict[int, list[AgreementInfo]]:
    result: dict[int, list[AgreementInfo]] = defaultdict(list)
    for a in Agreement.select():
        result[a.company_id].append(AgreementInfo(a.id, a.company_id, a.type_id, a.status == "Active" and not a.cancelled,
                                                  a.name))
    return result


def _values_of(row: SubscriptionAddition) -> AdditionValues | None:
    if row.product_id is None or row.quantity is None or row.effective_date is None:
        return None
    return AdditionValues(row.product_id, row.quantity, row.unit_price, row.unit_cost, row.effective_date,
                          row.cancelled_date, row.description or "", row.invoice_description or "")


def persistent_additions(store: Store) -> dict[str, PersistentAddition]:
    names = dict(Company.select(Company.id, Company.name).tuples())
    return {
        row.subscription_id: PersistentAddition(
            row.subscription_id, row.agreement_id, row.addition_id, row.state, BillingCycle(row.billing_cycle),
            _values_of(row), row.last_period, row.company_id, row.currency, names.get(row.company_id, ""),
        )
        for row in SubscriptionAddition.select()
    }


def period_state_of(store: Store, period: str, today: date) -> PeriodState:
    """Open or closed, from the period's last load (SPEC §7)."""
    loaded = LoadedPeriod.get_or_none(LoadedPeriod.period == period)
    new_subscriptions = frozenset(r[0] for r in PeriodNewSubscription.select(PeriodNewSubscription.subscription_id)
                                  .where(PeriodNewSubscription.period == period).tuples())
    return period_state(period, today, loaded.new_lines if loaded else None, new_subscriptions)


def posted_for_period(store: Store, period: str) -> dict[str, dict[str, Any]]:
    """marker -> what cw-tui posted for `period`: a one-time line's own values; for a
    subscription, the values of its latest recurring charge of the period (what that
    period's sync left on the persistent Addition). Synced lines never change, so a later
    month's sync leaves this as it was."""
    rows = store.db.execute_sql(
        "SELECT l.line_id, l.charge_type, l.subscription_id, l.quantity, l.unit_price, l.currency, l.posted_agreement_id, "
        "COALESCE(o.name, l.organization_id), l.charge_start, l.invoice_date "
        "FROM invoice_line l LEFT JOIN organization o ON o.platform_id = l.organization_id "
        "WHERE l.period = ? AND l.sync_status = 'synced'", (period,))
    expected: dict[str, dict[str, Any]] = {}
    latest: dict[str, tuple] = {}
    for line_id, charge_type, sub_id, quantity, price, currency, agreement_id, customer, start, invoice_date in rows:
        amount = from_micros(quantity) * from_micros(price)
        if not ChargeType(charge_type).recurring:
            expected[marker("L", line_id)] = {"customer": customer, "currency": currency, "agreement": agreement_id,
                                              "amount": amount, "subscription": None}
            continue
        key = marker("S", sub_id)
        order = (start, invoice_date, line_id)
        entry = expected.setdefault(key, {"customer": customer, "currency": currency, "agreement": agreement_id,
                                          "amount": amount, "subscription": sub_id})
        if key not in latest or order > latest[key]:
            latest[key] = order
            entry.update(amount=amount, agreement=agreement_id)
    return expected


def periods_to_sync(store: Store) -> list[str]:
    return [r[0] for r in store.db.execute_sql(
        "SELECT DISTINCT period FROM invoice_line WHERE sync_status IN ('not_synced', 'error') ORDER BY period")]


CHUNK = 500  # keys per IN (...) list: far below SQLite's limit on parameters


def claim_owners(store: Store) -> set[tuple[str, str | None]]:
    """Every owner holding a claim, with its oldest claim's time (text)."""
    return {
        (owner, claimed_at)
        for owner, claimed_at in store.db.execute_sql(
            "SELECT claimed_by, MIN(claimed_at) FROM invoice_line WHERE claimed_by IS NOT NULL GROUP BY claimed_by "
            "UNION SELECT claimed_by, MIN(claimed_at) FROM subscription_addition WHERE claimed_by IS NOT NULL GROUP BY claimed_by "
            "UNION SELECT agreement_claimed_by, MIN(agreement_claimed_at) FROM contract WHERE agreement_claimed_by IS NOT NULL "
            "GROUP BY agreement_claimed_by"
        )
    }


def claim_lines(store: Store, owner: str, line_ids: list[str], stamp: str) -> set[str]:
    """Claims the unsynced lines among `line_ids` for `owner` in one write transaction;
    returns those it holds (another run's claims are left)."""
    with store.atomic():  # the write lock up front on SQLite
        cursor = store.db.cursor()
        for start in range(0, len(line_ids), CHUNK):
            chunk = line_ids[start : start + CHUNK]
            cursor.execute(
                f"UPDATE invoice_line SET sync_status = 'claimed', claimed_by = ?, claimed_at = ? "
                f"WHERE sync_status IN ('not_synced', 'error') AND claimed_by IS NULL "
                f"AND line_id IN ({','.join('?' * len(chunk))})",
                [owner, stamp, *chunk],
            )
        return {r[0] for r in cursor.execute("SELECT line_id FROM invoice_line WHERE claimed_by = ? AND sync_status = 'claimed'", (owner,))}


def mark_synced(store: Store, rows: list[tuple]) -> None:
    """Posted lines, in one transaction: (addition_id, agreement_id, run_id, synced_at text,
    line_id, owner) each; a line is only marked while this owner holds its claim."""
    with store.atomic():
        store.db.cursor().executemany(
            "UPDATE invoice_line SET sync_status = 'synced', addition_id = ?, posted_agreement_id = ?, "
            "posted_run_id = ?, last_error = NULL, last_sync_at = ?, claimed_by = NULL, claimed_at = NULL "
            "WHERE line_id = ? AND claimed_by = ?", rows)


def synced_line_ids(store: Store) -> set[str]:
    return {r[0] for r in store.db.execute_sql("SELECT line_id FROM invoice_line WHERE sync_status = 'synced'")}
