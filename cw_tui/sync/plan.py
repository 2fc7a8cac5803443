"""The plan a person sees and a run executes (SPEC §7-§10): the store's lines and mappings,
today's agreements, and what ConnectWise already holds on the target agreements."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import date
from decimal import Decimal

from cw_tui.rules.additions import MARKER_PREFIX, AdditionValues
from cw_tui.rules.sync_plan import (
    FoundAddition,
    Plan,
    adopt_found,
    plan_sync,
)
from cw_tui.rules.vocabulary import ChargeType
from cw_tui.services import settings, system_log
from cw_tui.services.connectwise import (
    ConnectWiseClient,
    NotFound,
)
from cw_tui.services.connectwise.conditions import condition
from cw_tui.services.connectwise.models import Addition
from cw_tui.services.connectwise_data import CacheShrinkRefused, refresh_agreements
from cw_tui.services.system_log import Category, Level
from cw_tui.store import (
    Store,
    now_utc,
)
from cw_tui.store.sync_reads import (
    cached_agreements,
    period_state_of,
    persistent_additions,
    plan_lines,
)
from cw_tui.sync.claims import release_stale_claims
from cw_tui.sync.errors import SyncNotReady


def build_plan(store: Store, period: str, *, only_lines: set[str] | None = None, today: date | None = None) -> Plan:
    """The plan from the store alone: what ConnectWise already holds is not known yet
    (`prepare_plan` reads it)."""
    config = settings.load_configuration(store)
    if config.agreement_type is None:
        raise SyncNotReady("choose an Agreement Type first: `cw-tui configure --agreement-type NAME`")
    names = {t: config.charge_type_name(t) for t in ChargeType}
    state = period_state_of(store, period, today or now_utc().date())
    return plan_sync(period, plan_lines(store, period), cached_agreements(store), persistent_additions(store),
                     config.agreement_type.id, names, only_lines=only_lines, state=state)


ADDITION_FIELDS = ("id,agreementId,serialNumber,product/id,quantity,unitPrice,unitCost,effectiveDate,cancelledDate,"
                   "description,invoiceDescription")


def _cw_date(text: str | None) -> date | None:
    return date.fromisoformat(text[:10]) if text else None


def values_in_connectwise(addition: Addition) -> AdditionValues | None:
    """What an Addition holds, in the plan's terms (None when ConnectWise left a field out)."""
    if addition.product is None or addition.product.id is None or addition.quantity is None or not addition.effectiveDate:
        return None
    return AdditionValues(addition.product.id, addition.quantity, addition.unitPrice or Decimal(0), addition.unitCost or Decimal(0),
                          _cw_date(addition.effectiveDate), _cw_date(addition.cancelledDate),  # type: ignore[arg-type]
                          addition.description or "", addition.invoiceDescription or "")


async def read_markers(client: ConnectWiseClient, agreement_ids: set[int]) -> dict[str, list[FoundAddition]]:
    """Every cw-tui marker on these agreements: one paged read per agreement, at most eight
    at once (the client's bound)."""
    async def one(agreement_id: int) -> list[Addition]:
        try:
            return await client.additions(agreement_id, condition("serialNumber", "like", f"{MARKER_PREFIX}*"),
                                          fields=ADDITION_FIELDS)
        except NotFound:
            return []  # the agreement is gone: nothing of ours is on it

    ordered = sorted(agreement_ids)
    found: dict[str, list[FoundAddition]] = defaultdict(list)
    for agreement_id, additions in zip(ordered, await asyncio.gather(*(one(a) for a in ordered)), strict=False):
        by_marker: dict[str, list[Addition]] = defaultdict(list)
        for addition in additions:
            if addition.serialNumber:
                by_marker[addition.serialNumber].append(addition)
        for serial, group in by_marker.items():
            group.sort(key=lambda a: a.id)
            first = group[0]
            found[serial].append(FoundAddition(serial, first.id, agreement_id, values_in_connectwise(first),
                                               tuple(a.id for a in group[1:])))
    return found


async def prepare_plan(store: Store, client: ConnectWiseClient, period: str, *, only_lines: set[str] | None = None,
                       today: date | None = None, accepted: CacheShrinkRefused | None = None,
                       run_id: int | None = None) -> Plan:
    """The plan a person sees and a run executes: today's agreements, the store's lines, and
    what ConnectWise already holds on the target agreements (adopted, never posted again).
    `today` (UTC) says whether the period's month has ended; `accepted` is a shrunk
    agreements list a person accepted (it is applied instead of fetching again). `run_id`:
    the run this plan is for, recorded as the one that resolved the runs found dead."""
    release_stale_claims(store, resolved_by=run_id)
    if accepted is not None:
        accepted.accept()
    else:
        await refresh_agreements(store, client)
    plan = build_plan(store, period, only_lines=only_lines, today=today)
    wanted = plan.agreements_to_read()
    found = await read_markers(client, wanted)
    for serial, places in found.items():
        doubled = [f for f in places if f.duplicates] + (places[1:] if len(places) > 1 else [])
        if doubled:
            ids = sorted({f.addition_id for f in places} | {d for f in places for d in f.duplicates})
            system_log.write(store, Level.ERROR, Category.SYNC, f"Marker {serial} is on {len(ids)} additions",
                             f"additions {', '.join(map(str, ids))} on agreements "
                             f"{', '.join(sorted({str(f.agreement_id) for f in places}))}; cw-tui adopts the first "
                             "and posts no other: remove the extra ones in ConnectWise")
    return adopt_found(plan, found, wanted)
