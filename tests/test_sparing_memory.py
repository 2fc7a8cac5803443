"""Reads and writes of many lines made to spare memory: the Dashboard's (one period at a time, a
small page cache) and a bulk change of lines (a small page cache): the figures are what one
plain query over every line says, and the connection's own settings are back afterwards, after
a change refused too."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from cw_tui.rules.money import from_micros
from cw_tui.services.mapping import LineChange, MappingError, update_line_ids
from cw_tui.store import InvoiceLine, status_reads
from tests.app_helpers import seeded_store

pytestmark = pytest.mark.both_backends


@pytest.fixture
def store(new_db, demo_folder: Path):
    s = seeded_store(new_db("s"), demo_folder)
    yield s
    s.close()


def plain_posted(store, periods: list[str] | None) -> dict:
    result: dict = {}
    for period, currency, posted in store.db.execute_sql(
            "SELECT period, currency, SUM(total) FROM invoice_line WHERE sync_status = 'synced' "
            "GROUP BY period, currency ORDER BY period, currency"):
        if periods is None or period in periods:
            result.setdefault(period, {})[currency] = from_micros(posted or 0)
    return result


def test_posted_per_month_equals_one_plain_group_by(store) -> None:
    periods = [r[0] for r in store.db.execute_sql("SELECT DISTINCT period FROM invoice_line ORDER BY period")]
    # some lines of two periods posted, in two currencies, so that there is something to add up
    for n, period in enumerate(periods[:2]):
        store.db.execute_sql("UPDATE invoice_line SET sync_status = 'synced' WHERE period = ? AND line_id IN "
                             "(SELECT line_id FROM invoice_line WHERE period = ? ORDER BY line_id LIMIT ?)",
                             (period, period, 5 + n))
    assert plain_posted(store, None)
    assert status_reads.posted_per_month(store) == plain_posted(store, None)
    assert status_reads.posted_per_month(store, periods[:1]) == plain_posted(store, periods[:1])
    assert status_reads.posted_per_month(store, []) == {}


def test_the_dashboards_reads_put_the_connections_settings_back(store) -> None:
    if store.is_postgres:
        pytest.skip("PostgreSQL has no page cache settings per connection")
    db = store.db
    before = {name: db.execute_sql(f"PRAGMA {name}").fetchone()[0] for name in ("cache_size", "mmap_size")}
    period = db.execute_sql("SELECT MAX(period) FROM invoice_line").fetchone()[0]
    status_reads.period_counts(store, [period])
    status_reads.amounts_of_period(store, period)
    status_reads.posted_per_month(store)
    assert {name: db.execute_sql(f"PRAGMA {name}").fetchone()[0] for name in before} == before
    assert before["mmap_size"] == 0  # the store reads its pages into its page cache, not through a map


def test_a_bulk_change_puts_the_connections_settings_back(store) -> None:
    if store.is_postgres:
        pytest.skip("PostgreSQL has no page cache settings per connection")
    db = store.db
    before = {name: db.execute_sql(f"PRAGMA {name}").fetchone()[0] for name in ("cache_size", "mmap_size")}
    lines = [r.line_id for r in InvoiceLine.select(InvoiceLine.line_id).where(InvoiceLine.sync_status == "not_synced")]
    assert update_line_ids(store, lines, LineChange(charge_end=date(2030, 12, 31))) == len(lines)
    assert {r.charge_end for r in InvoiceLine.select().where(InvoiceLine.line_id.in_(lines))} == {date(2030, 12, 31)}
    with pytest.raises(MappingError):  # an end before the start: refused, nothing written
        update_line_ids(store, lines, LineChange(charge_end=date(1990, 1, 1)))
    assert {name: db.execute_sql(f"PRAGMA {name}").fetchone()[0] for name in before} == before
