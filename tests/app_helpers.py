"""Driving the real app with Pilot, on real stores and the real sandbox."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cw_tui.app import CwTuiApp
from cw_tui.platform.importer import load_invoices, load_products
from cw_tui.rules.charge_dates import ChargeDateRules
from cw_tui.services import credentials as credential_store
from cw_tui.services import settings, system_log
from cw_tui.services.credentials import Credentials
from cw_tui.services.status import LAST_ORGANIZATIONS_SYNC
from cw_tui.store import (
    Agreement,
    AgreementType,
    Company,
    InvoiceLine,
    Offer,
    Organization,
    Product,
    Store,
    open_store,
)

FROZEN = datetime(2026, 11, 18, 9, 30, tzinfo=UTC)
# A name as hostile as data gets (issue 11): terminal controls (ESC, BEL, CR/LF), a bidi
# override (U+202E) and Rich markup (a hyperlink, a colour).
HOSTILE_NAME = "\x1b[31mACME\x07\r\n\u202e[link=http://x]y[/link] [bold red]ACME[/]"
FIXED_CREDENTIALS = Credentials("http://127.0.0.1:8765", "sandbox", "pubfixedkey00000", "privfixedkey000000", "0f0f0f0f-0000-4000-8000-000000000000")


async def wait_for(pilot, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)


async def invoices_grid(app, pilot, *, settle: bool = True):
    """The Mapping page's Invoices grid from the keyboard, with its first page and the keys.
    `settle=False` returns as soon as they are there (the key tests type into what comes next)."""
    from cw_tui.screens.mapping import MappingScreen
    from cw_tui.widgets.grid import SqlGrid

    await pilot.press("2")
    await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
    await pilot.press("right_square_bracket", "right_square_bracket")
    grid = app.screen.query_one("#grid-invoices", SqlGrid)
    await wait_for(pilot, lambda: grid.page is not None and grid.page.total > 100 and grid.table.has_focus)
    if settle:
        await pilot.pause()
    return grid


def make_app(store: Store, **options) -> CwTuiApp:
    options.setdefault("clock", lambda: FROZEN)
    options.setdefault("keymap", {})
    options.setdefault("watch_daily_sync", False)
    app = CwTuiApp(store, **options)
    app.connection_timeout = 1.0
    return app


def seeded_store(path: Path | str, demo_folder: Path, *, configured: bool = True) -> Store:
    """A store as after a month of use, with fixed timestamps (for snapshots)."""
    store = open_store(path)
    credential_store.save(FIXED_CREDENTIALS)
    config = settings.load_configuration(store)
    home = Path.home()
    config.platform_dir = f"~/{demo_folder.relative_to(home)}" if demo_folder.is_relative_to(home) else str(demo_folder)
    if configured:
        config.agreement_type = settings.AgreementTypeChoice(id=2, name="Cloud Services")
    settings.save_configuration(store, config)
    AgreementType.insert_many([{"id": 1, "name": "Managed Services", "inactive": False, "synced_at": FROZEN},
                               {"id": 2, "name": "Cloud Services", "inactive": False, "synced_at": FROZEN}]).execute()
    load_products(store, demo_folder, datetime(2026, 8, 1).date(), now=FROZEN)
    load_invoices(store, demo_folder, ["2026-09", "2026-10"], ChargeDateRules.defaults(), now=FROZEN)
    # a few mappings and a synced line, so that every figure has something to show
    for n, org in enumerate(Organization.select().order_by(Organization.platform_id).limit(20)):
        Company.insert(id=250 + n, identifier=f"C{n}", name=org.name, status_name="Active", deleted=False,
                       synced_at=FROZEN).execute()
        Organization.update(company_id=250 + n, excluded=n % 4 == 0).where(Organization.platform_id == org.platform_id).execute()
    for n, offer in enumerate(Offer.select().order_by(Offer.platform_id).limit(12)):
        Product.insert(id=1000 + n, identifier=f"P{n}", description=offer.name, inactive=False, synced_at=FROZEN).execute()
        Offer.update(product_id=1000 + n).where(Offer.platform_id == offer.platform_id).execute()
    Agreement.insert(id=5001, name="Demo agreement", company_id=250, type_id=2, status="Active", cancelled=False,
                     synced_at=FROZEN).execute()
    store.db.execute_sql("UPDATE invoice_line SET sync_status = 'synced', addition_id = 1, last_sync_at = ? "
                         "WHERE line_id IN (SELECT line_id FROM invoice_line WHERE period = '2026-09' ORDER BY line_id LIMIT 30)",
                         ("2026-11-17T23:00:00.000000Z",))
    store.db.execute_sql("UPDATE invoice_line SET sync_status = 'error', last_error = 'Product P1 is inactive' "
                         "WHERE line_id IN (SELECT line_id FROM invoice_line WHERE period = '2026-10' ORDER BY line_id LIMIT 3)")
    settings.set_value(store, LAST_ORGANIZATIONS_SYNC, "2026-11-17T22:00:00Z")
    for n, (level, category, summary) in enumerate([
        (system_log.Level.INFO, system_log.Category.SYNC, "Sync of 2026-09 finished: 30 created, 0 updated, 0 cancelled, 0 errors"),
        (system_log.Level.WARNING, system_log.Category.SYNC, "Line LN-2026-10-00003-0001 skipped: not fully mapped"),
        (system_log.Level.ERROR, system_log.Category.SYNC, "Line LN-2026-10-00001-0001 failed: Product P1 is inactive"),
        (system_log.Level.INFO, system_log.Category.ORGANIZATIONS, "Synced organizations: 400 ConnectWise companies"),
    ]):
        system_log.write(store, level, category, summary, "details of the entry", at=FROZEN.replace(hour=8, minute=n))
    return store


def hostile_store(path: Path, demo_folder: Path) -> Store:
    """The seeded store, but the organization of the first line the Invoices grid shows (it is
    also the first by name), its ConnectWise company and that line's subscription are named
    HOSTILE_NAME."""
    store = seeded_store(path, demo_folder)
    first = (InvoiceLine.select().where(InvoiceLine.period == "2026-10")
             .order_by(InvoiceLine.invoice_date, InvoiceLine.line_id).first())
    Organization.update(name=HOSTILE_NAME, company_id=250).where(Organization.platform_id == first.organization_id).execute()
    Company.update(name=HOSTILE_NAME).where(Company.id == 250).execute()
    InvoiceLine.update(subscription_name=HOSTILE_NAME).where(InvoiceLine.line_id == first.line_id).execute()
    return store


def run(coroutine) -> None:
    asyncio.run(coroutine)


def assert_page_as_plain(database_thread, store, source, state, cache) -> None:
    """The grid's fast path (fetch_page with its cache, on the grid's database thread) shows
    what one plain SELECT of the same state shows: keys, rows, count, page and all_rows."""
    from cw_tui.store.grid import _fetch_page_simple, fetch_page

    fast = database_thread.submit(fetch_page, store, source, state, cache).result()
    plain = database_thread.submit(_fetch_page_simple, store, source, state).result()
    assert (fast.keys, fast.rows, fast.total, fast.page, fast.all_rows) == \
           (plain.keys, plain.rows, plain.total, plain.page, plain.all_rows), state
