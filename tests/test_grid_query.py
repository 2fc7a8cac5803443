"""The SQL-paged grids' fast path (`fetch_page` with a `GridCache`) must show exactly what one
plain SELECT over the grid's whole FROM clause shows, whatever the user does in between:
search, narrow the search, filter, sort, page, and change the data from another connection
(the app writes from its workers while the grid reads on the database thread). The fast paths
under test: counts and matches kept while the data is unchanged, a longer search narrowing the
last matches, a filter read through its index, Mapping Status and the search text kept per row
(SQLite), pages in the second half read from the end in the opposite order."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cw_tui.services.mapping import map_organizations
from cw_tui.store import InvoiceLine, Organization
from cw_tui.store import grid as grid_query
from cw_tui.store.grid import GridCache, GridState, _fetch_page_simple, _where, distinct_values, fetch_page
from cw_tui.store.grid_sources import invoices_source
from tests.app_helpers import assert_page_as_plain, seeded_store

PERIOD = "2026-10"
SOURCE = invoices_source(PERIOD)
SORTABLE = [c.key for c in SOURCE.columns if c.sortable]


pytestmark = pytest.mark.both_backends


@pytest.fixture
def store(new_db, demo_folder: Path):
    s = seeded_store(new_db("s"), demo_folder)
    yield s
    s.close()


def values(store, key: str) -> list:
    column = SOURCE.column(key)
    return [r[0] for r in store.db.execute_sql(
        f"SELECT DISTINCT {column.sql} FROM {SOURCE.from_sql} WHERE l.period = ?", (PERIOD,))]


def states(store) -> st.SearchStrategy[GridState]:
    # fixed lists: the data changes during the test, the strategy must not
    choices = {"charge_type": sorted(values(store, "charge_type")), "currency": sorted(values(store, "currency")),
               "mapping": ["excluded", "mapped", "unmapped"], "sync": ["error", "not_synced", "synced"]}
    filters = st.lists(
        st.sampled_from(sorted(choices)).flatmap(
            lambda key: st.tuples(st.just(key), st.frozensets(st.sampled_from(choices[key]), max_size=3))),
        max_size=2, unique_by=lambda f: f[0])
    return st.builds(
        GridState,
        search=st.sampled_from(["", "a", "Har", "Harb", "Harbor", "INV-2026", "CTR-0000", "1", "12", "zzzq", "Ex", "Exch",
                                "harbor", "EXCH", "inv-2026-", "%", "_"]),
        sort=st.lists(st.tuples(st.sampled_from(SORTABLE), st.booleans()), max_size=2, unique_by=lambda k: k[0]).map(tuple),
        filters=filters.map(tuple),
        page=st.integers(1, 12),  # past the middle: pages read from the end
        page_size=st.sampled_from([20, 50]),
    )


def write_something(store, n: int) -> None:
    """A change that moves rows in and out of searches, filters and sorts."""
    lines = InvoiceLine.select().where(InvoiceLine.period == PERIOD)
    line = lines.order_by(InvoiceLine.line_id).offset(n * 7 % lines.count()).first()
    status = ["not_synced", "error", "synced"][n % 3]
    InvoiceLine.update(sync_status=status).where(InvoiceLine.line_id == line.line_id).execute()
    orgs = Organization.select()
    org = orgs.order_by(Organization.platform_id).offset(n % orgs.count()).first()
    map_organizations(store, [org.platform_id], None if n % 2 else 250)
    # and what a search finds: a line's own text, an organization's name (the kept search text)
    if n % 2:
        InvoiceLine.update(subscription_name=f"Harbor {n}").where(InvoiceLine.line_id == line.line_id).execute()
    else:
        Organization.update(name=f"{org.name} Exch").where(Organization.platform_id == org.platform_id).execute()


@pytest.mark.parametrize("sort_matches_up_to", [grid_query.SORT_MATCHES_UP_TO, 0])
def test_cached_pages_equal_one_plain_select(store, sort_matches_up_to: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # 0: every set of matching rows counts as large, so pages come from walking the sort; and
    # (PostgreSQL) every search's rows as many, so the pages read the kept text, not their keys
    monkeypatch.setattr(grid_query, "SORT_MATCHES_UP_TO", sort_matches_up_to)
    monkeypatch.setattr(grid_query, "FEW_KEYS", min(sort_matches_up_to, grid_query.FEW_KEYS))
    database_thread = ThreadPoolExecutor(1)  # one connection, as the app's database thread
    cache = GridCache()
    steps = {"n": 0}

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(state=states(store), write=st.integers(0, 4))
    def check(state: GridState, write: int) -> None:
        compare(state)
        if write == 0:  # now and then, another connection changes the data: the same state again
            steps["n"] += 1
            write_something(store, steps["n"])
            compare(state)

    def compare(state: GridState) -> None:
        for key in ("charge_type", "mapping"):  # a filter's list of values, with the joins it needs only
            plain_values = [tuple(r) for r in store.db.execute_sql(
                f"SELECT {SOURCE.column(key).sql} AS v, COUNT(*) FROM {SOURCE.from_sql}{_where(SOURCE, state, skip_filter=key).sql()} "
                "GROUP BY v ORDER BY v", _where(SOURCE, state, skip_filter=key).params)]
            assert distinct_values(store, SOURCE, key, state) == plain_values
            # with the grid's cache: kept columns (Mapping Status) read from it, on its thread
            assert database_thread.submit(lambda k=key: distinct_values(store, SOURCE, k, state, cache=cache)).result() \
                == plain_values
        assert_page_as_plain(database_thread, store, SOURCE, state, cache)

    check()
    database_thread.shutdown()


def test_a_longer_search_narrows_the_last_matches_and_a_write_forgets_them(store) -> None:
    database_thread = ThreadPoolExecutor(1)
    cache = GridCache()

    def fetch(state: GridState):
        return database_thread.submit(fetch_page, store, SOURCE, state, cache).result()

    short = fetch(GridState(search="Ex"))
    narrowed = fetch(GridState(search="Exch"))
    assert 0 < narrowed.total < short.total
    assert narrowed.keys == _fetch_page_simple(store, SOURCE, GridState(search="Exch")).keys
    # the grid shows lines in error; a line that matched "Exch" goes into error, written on
    # another connection, then on the grid's own: each time the cached rows are not reused
    in_error = GridState(search="Exch", filters=(("sync", frozenset({"error"})),))
    before = fetch(in_error)
    first, second = narrowed.keys[0], narrowed.keys[1]
    assert first not in before.keys and second not in before.keys
    store.db.execute_sql("UPDATE invoice_line SET sync_status = 'error' WHERE line_id = ?", (first,))
    after_other = fetch(in_error)
    assert after_other.total == before.total + 1 and first in after_other.keys
    database_thread.submit(store.db.execute_sql, "UPDATE invoice_line SET sync_status = 'error' WHERE line_id = ?",
                           (second,)).result()
    after_own = fetch(in_error)
    assert after_own.total == before.total + 2 and second in after_own.keys
    database_thread.shutdown()


def test_a_second_sort_key_is_added_turned_and_dropped() -> None:
    state = GridState().toggled_sort("organization")
    state = state.with_sort_key("total")
    assert state.sort == (("organization", False), ("total", False))
    state = state.with_sort_key("total")
    assert state.sort == (("organization", False), ("total", True))
    assert state.with_sort_key("total").sort == (("organization", False),)
    assert state.with_sort_key("organization").sort == (("organization", True), ("total", True))
    assert GridState(page=4).with_sort_key("total").page == 1


def test_mapping_status_kept_per_row_lives_while_the_data_is_unchanged(store) -> None:
    # on PostgreSQL too: filling the temp table takes a transaction ID of the grid's own, which
    # moves the server's snapshot; the cache must tell that from another person's commit
    database_thread = ThreadPoolExecutor(1)
    cache = GridCache()
    by_mapping = GridState(sort=(("mapping", False),), filters=(("mapping", frozenset({"unmapped", "mapped"})),))

    def fetch(state: GridState):
        return database_thread.submit(fetch_page, store, SOURCE, state, cache).result()

    def still_valid() -> bool:
        return database_thread.submit(lambda: cache._version == store.backend.change_marks(store.db)).result()

    first = fetch(by_mapping)
    assert still_valid() and "mapping" in cache._kept
    assert fetch(by_mapping).keys == first.keys and still_valid()
    # a line's organization unmapped by another connection: the kept value is read again
    line = InvoiceLine.get(InvoiceLine.line_id == first.keys[-1])
    map_organizations(store, [line.organization_id], None)
    assert not still_valid()
    after = fetch(by_mapping)
    plain = _fetch_page_simple(store, SOURCE, by_mapping)
    assert (after.keys, after.rows, after.total) == (plain.keys, plain.rows, plain.total)
    database_thread.shutdown()
