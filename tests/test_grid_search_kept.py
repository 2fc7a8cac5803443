"""The Invoices grid's kept search text: each line's searchable columns in one narrow temp table
(on PostgreSQL in lower case, searched with a LIKE of the lowered pattern), made once the data
holds still, so a search reads it instead of every wide line. Whatever it holds, a search shows
what one plain SELECT with a LIKE per column shows (ILIKE on PostgreSQL): after a rename, a
change of a line's text on another connection, a line whose organization is missing, a search
holding the character that joins the columns, and letters of other cases and scripts."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cw_tui.store import InvoiceLine, Organization
from cw_tui.store import grid as grid_query
from cw_tui.store.grid import GridCache, GridState, fetch_page
from cw_tui.store.grid_sources import invoices_source
from tests.app_helpers import assert_page_as_plain, seeded_store

PERIOD = "2026-10"
SOURCE = invoices_source(PERIOD)

pytestmark = pytest.mark.both_backends


@pytest.fixture
def store(new_db, demo_folder: Path):
    s = seeded_store(new_db("s"), demo_folder)
    yield s
    s.close()


@pytest.fixture(params=["few", "many"])
def grid(store, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """(run on the grid's database thread, the grid's cache). "many": on PostgreSQL every search
    finds too many rows to be paged by their keys, so the pages read the kept text."""
    if request.param == "many":
        if not store.is_postgres:
            pytest.skip("rows paged by their keys: PostgreSQL only")
        monkeypatch.setattr(grid_query, "FEW_KEYS", 0)
    database_thread = ThreadPoolExecutor(1)
    yield (lambda function, *args: database_thread.submit(function, *args).result()), GridCache(), database_thread
    database_thread.shutdown()


def kept_rows(run, store, cache) -> int | None:
    table = f"grid_search_{cache._number}"
    if store.is_postgres:  # the grid's connection's own temp schema
        exists = "SELECT to_regclass('pg_temp.' || ?) IS NOT NULL"
    else:
        exists = "SELECT COUNT(*) FROM sqlite_temp_master WHERE name = ?"
    if not run(lambda: store.db.execute_sql(exists, (table,)).fetchone()[0]):
        return None
    schema = "pg_temp" if store.is_postgres else "temp"
    return run(lambda: store.db.execute_sql(f"SELECT COUNT(*) FROM {schema}.{table}").fetchone()[0])


def test_a_search_reads_the_kept_text_made_once_the_data_holds_still(store, grid) -> None:
    run, cache, thread = grid
    lines = InvoiceLine.select().where(InvoiceLine.period == PERIOD).count()
    run(fetch_page, store, SOURCE, GridState(), cache)
    assert kept_rows(run, store, cache) is None  # a page without a search keeps no text
    # another connection writes between two fetches: the data is not still, the search scans
    InvoiceLine.update(sync_status="error").where(InvoiceLine.line_id == InvoiceLine.select(
        InvoiceLine.line_id).where(InvoiceLine.period == PERIOD).limit(1)).execute()
    assert_page_as_plain(thread, store, SOURCE, GridState(search="Har"), cache)
    assert kept_rows(run, store, cache) is None
    # nothing written since: the next search makes the text, one row per line of the period (on
    # SQLite not a narrower one: that reads the last matches; PostgreSQL keeps no matches)
    assert_page_as_plain(thread, store, SOURCE, GridState(search="Harbor"), cache)
    if not store.is_postgres:
        assert kept_rows(run, store, cache) is None
        assert_page_as_plain(thread, store, SOURCE, GridState(search="INV"), cache)
    assert kept_rows(run, store, cache) == lines
    for search in ("a", "Har", "Harb", "INV-2026", "CTR-0000", "Exch", "%", "_", "\\", "'", "zzzq"):
        assert_page_as_plain(thread, store, SOURCE, GridState(search=search), cache)
    # with a filter, the search and the filter are one scan; narrowed after it, the kept text again
    filtered = GridState(search="Ha", filters=(("sync", frozenset({"not_synced"})),))
    assert_page_as_plain(thread, store, SOURCE, filtered, cache)
    assert_page_as_plain(thread, store, SOURCE, GridState(search="Harbor", filters=filtered.filters), cache)


def test_a_rename_or_a_changed_line_on_another_connection_is_found_by_its_new_text(store, grid) -> None:
    run, cache, thread = grid
    run(fetch_page, store, SOURCE, GridState(), cache)
    assert_page_as_plain(thread, store, SOURCE, GridState(search="Zephyrine"), cache)
    assert kept_rows(run, store, cache)  # made, and finds nothing
    line = InvoiceLine.select().where(InvoiceLine.period == PERIOD).order_by(InvoiceLine.line_id).first()
    Organization.update(name="Zephyrine Ltd").where(Organization.platform_id == line.organization_id).execute()
    page = run(fetch_page, store, SOURCE, GridState(search="Zephyrine"), cache)
    assert line.line_id in page.keys or page.total > len(page.keys)
    assert_page_as_plain(thread, store, SOURCE, GridState(search="Zephyrine"), cache)
    run(fetch_page, store, SOURCE, GridState(search="Quokka"), cache)  # still: the text is made again
    InvoiceLine.update(subscription_name="Quokka seats").where(InvoiceLine.line_id == line.line_id).execute()
    page = run(fetch_page, store, SOURCE, GridState(search="Quokka"), cache)
    assert page.keys == [line.line_id]
    assert_page_as_plain(thread, store, SOURCE, GridState(search="Quokka"), cache)


def test_a_line_whose_organization_is_missing_is_still_found(store, grid) -> None:
    # the text is read with the lines' organizations and offers joined: a line without one is
    # not in it, and then the kept text answers no search (the LIKE per column finds the line)
    run, cache, thread = grid
    line = InvoiceLine.select().where(InvoiceLine.period == PERIOD).order_by(InvoiceLine.line_id).first()
    InvoiceLine.update(organization_id="no-such-organization").where(InvoiceLine.line_id == line.line_id).execute()
    run(fetch_page, store, SOURCE, GridState(), cache)
    state = GridState(search=line.invoice_number)
    page = run(fetch_page, store, SOURCE, state, cache)
    assert kept_rows(run, store, cache) == InvoiceLine.select().where(InvoiceLine.period == PERIOD).count() - 1
    assert page.total >= 1 and page.all_rows == InvoiceLine.select().where(InvoiceLine.period == PERIOD).count()
    plain = run(lambda: store.db.execute_sql(
        "SELECT COUNT(*) FROM invoice_line WHERE period = ? AND invoice_number LIKE ?",
        (PERIOD, f"%{line.invoice_number}%")).fetchone()[0])
    assert page.total == plain


def test_a_search_holding_the_joining_character_matches_column_by_column(store, grid) -> None:
    run, cache, thread = grid
    line = InvoiceLine.select().where(InvoiceLine.period == PERIOD).order_by(InvoiceLine.line_id).first()
    run(fetch_page, store, SOURCE, GridState(), cache)
    run(fetch_page, store, SOURCE, GridState(search="a"), cache)
    assert kept_rows(run, store, cache)
    # the end of one column and the start of the next, joined as the kept text joins them
    organization = Organization.get(Organization.platform_id == line.organization_id)
    across = f"{line.invoice_number[-3:]}\x1f{organization.name[:2]}"
    page = run(fetch_page, store, SOURCE, GridState(search=across), cache)
    assert page.total == 0
    assert_page_as_plain(thread, store, SOURCE, GridState(search=across), cache)


def test_a_prefill_makes_the_search_text_ahead_of_the_first_search(store, grid) -> None:
    run, cache, thread = grid
    run(fetch_page, store, SOURCE, GridState(), cache)
    assert run(cache.prefill, store, SOURCE) is True
    assert kept_rows(run, store, cache) == InvoiceLine.select().where(InvoiceLine.period == PERIOD).count()
    assert run(cache.prefill, store, SOURCE) is False
    # written between: the search does not wait for the text to be made again, nor trust the old
    InvoiceLine.update(subscription_name="Quokka seats").where(InvoiceLine.line_id == InvoiceLine.select(
        InvoiceLine.line_id).where(InvoiceLine.period == PERIOD).limit(1)).execute()
    assert_page_as_plain(thread, store, SOURCE, GridState(search="Quokka"), cache)
    assert run(cache.prefill, store, SOURCE) is True


def test_letters_of_other_cases_and_scripts_match_as_the_plain_search_matches(store, grid) -> None:
    # PostgreSQL keeps the text lowered and lowers the pattern: what its ILIKE does to both, so
    # whatever the server's lower() makes of a letter (ASCII only in the C locale), the same
    # lines are found; SQLite's LIKE ignores the case of ASCII letters only, in both searches
    run, cache, thread = grid
    line = InvoiceLine.select().where(InvoiceLine.period == PERIOD).order_by(InvoiceLine.line_id).first()
    Organization.update(name="ÉCOLE Straße ΣΑΣ İstanbul").where(Organization.platform_id == line.organization_id).execute()
    InvoiceLine.update(subscription_name="Ærø Ünïcode").where(InvoiceLine.line_id == line.line_id).execute()
    run(fetch_page, store, SOURCE, GridState(), cache)
    run(fetch_page, store, SOURCE, GridState(search="a"), cache)
    assert kept_rows(run, store, cache)
    for search in ("ÉCOLE", "école", "École", "STRASSE", "straße", "ΣΑΣ", "σας", "İstanbul", "istanbul", "ærø",
                   "ÆRØ", "ünïcode", "cole st"):
        assert_page_as_plain(thread, store, SOURCE, GridState(search=search), cache)
    assert run(fetch_page, store, SOURCE, GridState(search="ÉCOLE"), cache).total >= 1


def test_the_kept_text_lives_while_the_data_is_unchanged(store, grid) -> None:
    # PostgreSQL: making the table takes a transaction ID of the grid's own connection, which
    # moves the server's snapshot; the cache must tell that from another connection's commit
    run, cache, thread = grid

    def still_valid() -> bool:
        return run(lambda: cache._version == store.backend.change_marks(store.db))

    def made_as() -> object:  # the table itself: made again, it is another
        table = f"grid_search_{cache._number}"
        if store.is_postgres:
            return run(lambda: store.db.execute_sql("SELECT to_regclass('pg_temp.' || ?)::oid", (table,)).fetchone()[0])
        return run(lambda: store.db.execute_sql("SELECT rootpage FROM sqlite_temp_master WHERE name = ?",
                                                (table,)).fetchone()[0])

    run(fetch_page, store, SOURCE, GridState(), cache)
    run(fetch_page, store, SOURCE, GridState(search="a"), cache)
    assert kept_rows(run, store, cache) and still_valid()
    made = made_as()
    for search in ("Harbor", "INV", "zzzq"):
        assert_page_as_plain(thread, store, SOURCE, GridState(search=search), cache)
        assert still_valid() and made_as() == made
    # another connection's commit: the text is not trusted, and made again once the data holds still
    InvoiceLine.update(subscription_name="Quokka seats").where(InvoiceLine.line_id == InvoiceLine.select(
        InvoiceLine.line_id).where(InvoiceLine.period == PERIOD).limit(1)).execute()
    assert not still_valid()
    assert_page_as_plain(thread, store, SOURCE, GridState(search="Quokka"), cache)
    assert run(fetch_page, store, SOURCE, GridState(search="Quokka"), cache).total == 1
    assert_page_as_plain(thread, store, SOURCE, GridState(search="quokka"), cache)


@pytest.mark.postgres_only
def test_a_prefill_interrupted_on_postgresql_stops_at_once_and_the_cache_stays_valid(store, grid) -> None:
    # the fill waits for another connection's lock on the organizations; the grid wants a page:
    # interrupt() cancels the statement, the fill's transaction rolls back, and the transaction
    # ID it took is not mistaken for another connection's commit
    import psycopg

    run, cache, thread = grid
    run(fetch_page, store, SOURCE, GridState(), cache)
    blocker = psycopg.connect(store.path)
    watcher = psycopg.connect(store.path, autocommit=True)
    try:
        blocker.execute("LOCK TABLE organization IN ACCESS EXCLUSIVE MODE")
        # the lock took a transaction ID, which the server's snapshot lists as in progress only
        # once a later one has ended: one ends, before the prefill looks at the data
        with psycopg.connect(store.path) as other:
            other.execute("SELECT pg_current_xact_id()")
        filling = thread.submit(cache.prefill, store, SOURCE)
        began = time.monotonic()
        while not watcher.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                  "AND query LIKE 'CREATE TEMP TABLE grid_search%%'").fetchone()[0]:
            assert time.monotonic() - began < 30, "the fill never waited for the lock"
            time.sleep(0.01)
        cache.interrupt()
        assert filling.result() is False
        assert run(lambda: cache._version == store.backend.change_marks(store.db))
    finally:
        blocker.rollback()
        blocker.close()
        watcher.close()
    assert kept_rows(run, store, cache) is None and cache._searched is None
    cache.interrupt()  # nothing running: nothing happens, now or to the next statement
    for search in ("Harbor", "INV"):
        assert_page_as_plain(thread, store, SOURCE, GridState(search=search), cache)
    assert kept_rows(run, store, cache) == InvoiceLine.select().where(InvoiceLine.period == PERIOD).count()
    assert run(cache.prefill, store, SOURCE) is True  # Mapping Status, not made before the interrupt


def test_a_search_typed_letter_by_letter_shows_what_the_plain_search_shows(store, grid) -> None:
    # PostgreSQL: a longer search after a shorter one of few lines looks only at those; a line
    # changed between two letters on another connection is found by its new text
    run, cache, thread = grid
    line = InvoiceLine.select().where(InvoiceLine.period == PERIOD).order_by(InvoiceLine.line_id).first()
    run(fetch_page, store, SOURCE, GridState(), cache)
    typed = line.invoice_number.lower()
    for n in range(1, len(typed) + 1):
        assert_page_as_plain(thread, store, SOURCE, GridState(search=typed[:n], sort=(("total", True),)), cache)
        if n == len(typed) - 2:
            InvoiceLine.update(invoice_number=f"{line.invoice_number}x").where(InvoiceLine.line_id == line.line_id).execute()
    assert_page_as_plain(thread, store, SOURCE, GridState(search=f"{typed}X"), cache)
    assert run(fetch_page, store, SOURCE, GridState(search=f"{typed}X"), cache).keys == [line.line_id]


def test_each_searched_column_is_found_in_any_chunk_of_the_kept_text(store, grid) -> None:
    """The kept text is also kept per chunk of 64 lines (each column's distinct values), which a
    search reads first: a value that only one column of one line holds, in a later chunk, is
    found through it, whichever column holds it."""
    import peewee as pw

    from cw_tui.store import Offer

    if store.is_postgres:
        pytest.skip("the chunks are SQLite's (PostgreSQL scans its kept text once)")
    run, cache, thread = grid

    lines = InvoiceLine.select().where(InvoiceLine.period == PERIOD).order_by(pw.SQL("rowid"))
    assert lines.count() >= 66 + 12 * 4 + 1
    picks = [lines.offset(66 + 12 * n).first() for n in range(5)]  # past the first chunk
    InvoiceLine.update(invoice_number="QZINV-1").where(InvoiceLine.line_id == picks[0].line_id).execute()
    Organization.update(name="Qzorg Ltd").where(Organization.platform_id == picks[1].organization_id).execute()
    InvoiceLine.update(subscription_name="Qzsub four").where(InvoiceLine.line_id == picks[3].line_id).execute()
    Offer.update(name="Qzoffer Five").where(Offer.platform_id == picks[4].offer_id).execute()
    run(fetch_page, store, SOURCE, GridState(), cache)
    run(fetch_page, store, SOURCE, GridState(), cache)  # nothing written since: the next search keeps the text
    # (a contract's ID is its lines' link to it: the ID it has, in lower case)
    for token in ("QZINV-1", "qzorg", picks[2].contract_id.lower(), "zsub fo", "offer fiv"):
        page = run(fetch_page, store, SOURCE, GridState(search=token), cache)
        assert kept_rows(run, store, cache) == lines.count()
        assert page.total >= 1, token
        assert_page_as_plain(thread, store, SOURCE, GridState(search=token), cache)
