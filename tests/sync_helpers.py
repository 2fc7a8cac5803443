"""Shared by the sync tests: the sandbox's credentials as CW_* variables, and counting
cw-tui's markers in ConnectWise through the API (never through the sandbox's memory)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from cw_tui.rules.additions import marker
from cw_tui.rules.vocabulary import ChargeType
from cw_tui.services.connectwise import ConnectWiseClient
from cw_tui.store import InvoiceLine, open_store


def cw_env(sandbox) -> dict[str, str]:
    c = sandbox.credentials
    return {"CW_URL": c.url, "CW_COMPANY_ID": c.company_id, "CW_PUBLIC_KEY": c.public_key,
            "CW_PRIVATE_KEY": c.private_key, "CW_CLIENT_ID": c.client_id}


def set_up_as_finance(cli, db: Path | str, folder: Path | str, period: str, *, sync: bool = False) -> None:
    """A store set up as a finance user does it through the CLI: connect, configure, the
    companies, one month's lines loaded and automapped (and synced, with `sync`)."""
    steps = [("connect",), ("configure", "--platform-dir", folder, "--agreement-type", "Cloud Services"),
             ("sync-organizations",), ("load-invoices", "--period", period), ("automap", "--include")]
    for args in steps + ([("sync", "--period", period)] if sync else []):
        result = cli("--db", db, *args)
        assert result.code == 0, (args, result.err)


def cw_markers(sandbox) -> Counter:
    """Every cw-tui marker in ConnectWise, counted through the API."""
    async def go():
        async with ConnectWiseClient(sandbox.credentials) as client:
            agreements = await client.agreements()
            counter: Counter = Counter()
            for agreement in agreements:
                for addition in await client.additions(agreement.id, 'serialNumber like "cwt:*"'):
                    counter[addition.serialNumber] += 1
            return counter
    return asyncio.run(go())


def expected_markers(db: Path | str) -> set[str]:
    with open_store(db):
        markers = set()
        for line in InvoiceLine.select().where(InvoiceLine.sync_status == "synced"):
            recurring = ChargeType(line.charge_type).recurring
            markers.add(marker("S", line.subscription_id) if recurring else marker("L", line.line_id))
        return markers


def assert_exactly_once(sandbox, db: Path | str) -> Counter:
    counts = cw_markers(sandbox)
    duplicates = {m: n for m, n in counts.items() if n > 1}
    assert not duplicates, f"posted twice: {duplicates}"
    assert set(counts) == expected_markers(db)
    with open_store(db):
        unresolved = InvoiceLine.select().where(InvoiceLine.sync_status == "claimed").count()
    assert unresolved == 0
    return counts


def mapped_not_synced(cli, db: Path | str, period: str) -> int:
    status = cli("--db", db, "status", "--json").json()
    row = next(p for p in status["periods"] if p["period"] == period)
    return row["mapped"] - row["synced"]
