"""The Reconciliation screen's grids (store/journal_reads.py) on SQLite and on PostgreSQL: the
month's last reconciliation, kept as one JSON value, read in SQL per row and per item, with the
grid engine's search, sort, filters, distinct values and export, and a row by its key. The same
report (tests/journal_helpers.py: one Addition missing, one changed) gives the same rows on both."""

from __future__ import annotations

from pathlib import Path

import pytest

from cw_tui.services import reconciliation
from cw_tui.store.grid import GridCache, GridState, distinct_values, fetch_page, matching_rows
from cw_tui.store.journal_reads import reconciliation_items_source, reconciliation_source
from tests.journal_helpers import journal_store

pytestmark = pytest.mark.both_backends

P = "2026-09"


@pytest.fixture
def reconciled(new_db, demo_folder: Path):
    store = journal_store(new_db("journal"), demo_folder)
    yield store
    store.close()


def _page(store, source, **state):
    return fetch_page(store, source, GridState(page_size=500, **state), GridCache())


def test_the_rows_of_a_reconciliation_mismatches_first_with_numbers_as_numbers(reconciled) -> None:
    source = reconciliation_source(reconciled, P)
    page = _page(reconciled, source)
    keys = [c.key for c in source.columns]
    rows = [dict(zip(keys, row, strict=True)) for row in page.rows]
    assert page.total == len(rows) >= 3
    # the report's order (mismatched rows first), amounts in micros as integers
    assert [(r["status"], r["reasons"]) for r in rows[:2]] == [("1 mismatch", "changed in ConnectWise since posted"),
                                                               ("1 mismatch", "missing in ConnectWise")]
    assert rows[0]["connectwise"] > rows[0]["posted"]  # the changed one holds more than was posted
    assert all(isinstance(r["posted"], int) and isinstance(r["lines"], int) for r in rows)
    assert "missing in ConnectWise" in " ".join(r["reasons"] for r in rows)
    # a sort by a number is numeric, a search finds a reason, a filter keeps its value
    by_posted = [dict(zip(keys, row, strict=True))["posted"] for row in _page(reconciled, source, sort=(("posted", True),)).rows]
    assert by_posted == sorted(by_posted, reverse=True)
    found = _page(reconciled, source, search="MISSING in")
    assert found.total >= 1 and all("missing in ConnectWise" in dict(zip(keys, r, strict=True))["reasons"] for r in found.rows)
    statuses = dict(distinct_values(reconciled, source, "status", GridState()))
    assert statuses.get("OK", 0) >= 1
    ok = _page(reconciled, source, filters=(("status", frozenset({"OK"})),))
    assert ok.total == statuses["OK"]
    # a row by its grid key, as the screen opens its items
    first = reconciliation.row(reconciled, P, str(page.keys[0]))
    assert first is not None and first["customer"] == rows[0]["customer"] and first["period"] == P
    assert reconciliation.row(reconciled, P, "9999") is None
    assert reconciliation.row(reconciled, "2026-01", "0") is None  # a month never reconciled: no rows
    assert _page(reconciled, reconciliation_source(reconciled, "2026-01")).total == 0


def test_the_items_behind_a_row_and_their_export(reconciled) -> None:
    rows = reconciliation_source(reconciled, P)
    keys = [c.key for c in rows.columns]
    top = dict(zip(keys, _page(reconciled, rows).rows[0], strict=True))
    source = reconciliation_items_source(reconciled, P, top["customer"], top["currency"])
    items = _page(reconciled, source)
    item_keys = [c.key for c in source.columns]
    texts = [dict(zip(item_keys, r, strict=True)) for r in items.rows]
    assert items.total == len(texts) == top["additions"] + top["not_posted"]
    assert texts[0]["status"] in ("missing", "changed") and texts[0]["marker"].startswith("cwt:")
    assert all(t["agreement"] in (None, 5001) for t in texts)
    marker = texts[0]["marker"]
    assert [dict(zip(item_keys, r, strict=True))["marker"] for r in _page(reconciled, source, search=marker).rows] == [marker]
    exported = list(matching_rows(reconciled, source, GridState()))
    assert len(exported) == items.total
    with pytest.raises(ValueError):
        reconciliation_source(reconciled, "2026-09'; --")
