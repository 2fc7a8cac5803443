"""Mapping Status kept per row (GridCache's kept tables): filled ahead of need (`prefill`, on the
grid's database thread once a page is shown) and, on SQLite, sorted by walking the kept table's
index of (value, key). Whatever is kept, a page equals what one plain SELECT over the grid's whole
FROM clause shows, also after another connection changes the data."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cw_tui.services.mapping import map_offers, map_organizations
from cw_tui.store import InvoiceLine, Offer, Organization
from cw_tui.store import grid as grid_query
from cw_tui.store.grid import GridCache, GridSource, GridState, _fetch_page_simple, fetch_page
from cw_tui.store.grid_sources import invoices_source
from tests.app_helpers import assert_page_as_plain, seeded_store

PERIOD = "2026-10"
SOURCE = invoices_source(PERIOD)
OTHERS = [c.key for c in SOURCE.columns if c.sortable and c.key != "mapping"]

pytestmark = pytest.mark.both_backends


@pytest.fixture
def store(new_db, demo_folder: Path):
    s = seeded_store(new_db("s"), demo_folder)
    if not s.is_postgres:  # the lines' file order against their keys' order: a tie broken by rowid would show
        s.db.execute_sql("UPDATE invoice_line SET rowid = -rowid WHERE period = ?", (PERIOD,))
    yield s
    s.close()


def write_something(store, n: int) -> None:
    """Another connection changes what Mapping Status says: a line's own product, an
    organization's company or an offer's product."""
    lines = InvoiceLine.select().where(InvoiceLine.period == PERIOD).order_by(InvoiceLine.line_id)
    line = lines.offset(n * 11 % lines.count()).first()
    if n % 3 == 0:
        InvoiceLine.update(override_product_id=None if n % 2 else 9001).where(InvoiceLine.line_id == line.line_id).execute()
    elif n % 3 == 1:
        org = Organization.select().order_by(Organization.platform_id).offset(n % Organization.select().count()).first()
        map_organizations(store, [org.platform_id], None if n % 2 else 250)
    else:
        offer = Offer.select().order_by(Offer.platform_id).offset(n % Offer.select().count()).first()
        map_offers(store, [offer.platform_id], None)


def by_mapping_first() -> st.SearchStrategy[GridState]:
    return st.builds(
        GridState,
        search=st.sampled_from(["", "a", "Har", "Harbor", "zzzq"]),
        sort=st.tuples(st.booleans(), st.lists(st.tuples(st.sampled_from(OTHERS), st.booleans()), max_size=1)).map(
            lambda s: (("mapping", s[0]), *s[1])),
        filters=st.lists(st.tuples(st.sampled_from(["mapping", "sync"]), st.frozensets(
            st.sampled_from(["excluded", "mapped", "unmapped", "error", "not_synced", "synced"]), max_size=2)),
            max_size=1).map(lambda fs: tuple((k, frozenset(v for v in values if (v in ("excluded", "mapped", "unmapped"))
                                                           == (k == "mapping"))) for k, values in fs)),
        page=st.integers(1, 12),  # past the middle: pages read from the end, the index walked backwards
        page_size=st.sampled_from([20, 50]),
    )


@pytest.mark.parametrize("sort_matches_up_to", [grid_query.SORT_MATCHES_UP_TO, 0])
def test_sorted_by_mapping_status_first_equals_one_plain_select(store, sort_matches_up_to: int,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # 0: every set of matching rows counts as large, so pages come from walking the kept index
    monkeypatch.setattr(grid_query, "SORT_MATCHES_UP_TO", sort_matches_up_to)
    database_thread = ThreadPoolExecutor(1)  # one connection, as the app's database thread
    cache = GridCache()
    steps = {"n": 0}

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(state=by_mapping_first(), action=st.integers(0, 5))
    def check(state: GridState, action: int) -> None:
        if action == 0:  # filled ahead, as the grid does once a page is shown
            database_thread.submit(cache.prefill, store, SOURCE).result()
        compare(state)
        if action == 1:  # another connection changes the data: the same state again
            steps["n"] += 1
            write_something(store, steps["n"])
            compare(state)

    def compare(state: GridState) -> None:
        assert_page_as_plain(database_thread, store, SOURCE, state, cache)

    check()
    database_thread.shutdown()


def test_prefill_makes_the_kept_table_once_per_data(store) -> None:
    database_thread = ThreadPoolExecutor(1)
    cache = GridCache()

    def run(function, *args):
        return database_thread.submit(function, *args).result()

    run(fetch_page, store, SOURCE, GridState(), cache)
    assert "mapping" not in cache._kept  # a page not sorted or filtered by it keeps nothing
    assert run(cache.prefill, store, SOURCE) is True
    assert "mapping" in cache._kept
    assert run(cache.prefill, store, SOURCE) is False  # the data is unchanged: nothing to make
    kept = dict(cache._kept)
    for desc in (False, True):  # the sorts find the table (and on SQLite its indexes) made
        state = GridState(sort=(("mapping", desc),))
        page = run(fetch_page, store, SOURCE, state, cache)
        assert page.keys == _fetch_page_simple(store, SOURCE, state).keys
        assert cache._kept == kept and run(cache.prefill, store, SOURCE) is False
    # another connection unmaps an organization: the next prefill makes the table again
    line = InvoiceLine.get(InvoiceLine.line_id == page.keys[0])
    map_organizations(store, [line.organization_id], None)
    assert run(cache.prefill, store, SOURCE) is True
    state = GridState(sort=(("mapping", True),), page=3)
    assert run(fetch_page, store, SOURCE, state, cache).keys == _fetch_page_simple(store, SOURCE, state).keys
    # a grid without kept columns has nothing to fill
    assert run(cache.prefill, store, GridSource("plain", SOURCE.from_sql, SOURCE.columns, SOURCE.key_sql)) is False
    database_thread.shutdown()


def test_an_interrupted_prefill_leaves_nothing_half_made(store) -> None:
    if store.is_postgres:
        pytest.skip("a prefill is interrupted on SQLite only")
    database_thread = ThreadPoolExecutor(1)
    cache = GridCache()

    def run(function, *args):
        return database_thread.submit(function, *args).result()

    run(fetch_page, store, SOURCE, GridState(), cache)
    cache.interrupt()  # nothing running: nothing happens, now or to the next statement
    calls = []

    def page_wanted() -> int:  # as the grid would, from another thread, while the fill runs
        calls.append(1)
        if len(calls) == 3:
            cache.interrupt()
        return 0

    run(lambda: store.db.connection().set_progress_handler(page_wanted, 50))
    assert run(cache.prefill, store, SOURCE) is False
    run(lambda: store.db.connection().set_progress_handler(None, 0))
    assert len(calls) >= 3 and "mapping" not in cache._kept
    for desc in (False, True):  # made when needed
        state = GridState(sort=(("mapping", desc),), page=2)
        assert run(fetch_page, store, SOURCE, state, cache).keys == _fetch_page_simple(store, SOURCE, state).keys
    state = GridState(search="Har")  # the search text (SQLite), made by the first search of still data
    assert run(fetch_page, store, SOURCE, state, cache).keys == _fetch_page_simple(store, SOURCE, state).keys
    assert run(cache.prefill, store, SOURCE) is False  # the fetches made it all
    database_thread.shutdown()
