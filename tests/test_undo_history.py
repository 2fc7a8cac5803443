"""Issue 16: run history shows undo runs (kind "undo of #N", what they undid in words) and the
syncs they undid ("undone by #M", "partly undone by #M" when the undo refused items or had
errors): journal.list_runs, the runs grid's source (its SQL: no JSON function) and `cw-tui runs`."""

from __future__ import annotations

import json

from cw_tui.store import SyncRun, journal, now_utc
from cw_tui.store.grid import GridCache, GridState, fetch_page
from cw_tui.store.journal_reads import run_totals_text, runs_source, undo_text

COUNTS = {"deleted": 37, "restored": 33, "ended": 0, "agreements_deleted": 1, "released": 2, "refused": 2, "kept": 0,
          "errors": 0, "lines_not_synced": 27}


def _undo(target: int, *, state: str = "finished", **counts: int) -> int:
    tallies = {**dict.fromkeys(COUNTS, 0), **counts}
    run = SyncRun.create(kind="undo", period="2026-09", started_at=now_utc(), finished_at=now_utc(), state=state,
                         who="finance", trigger="app", undoes_run_id=target, errors=tallies["errors"],
                         synced_lines=tallies["lines_not_synced"], counts=json.dumps(tallies, sort_keys=True))
    return run.id


def _sync_id() -> int:
    return SyncRun.get((SyncRun.kind == "sync") & (SyncRun.period == "2026-09")).id


def test_undo_words_name_what_was_undone_never_what_was_posted() -> None:
    assert undo_text(COUNTS) == "37 deleted, 33 restored, 1 agreement deleted, 27 lines back to Not Synced, 2 refused"
    assert undo_text(dict.fromkeys(COUNTS, 0)) == "nothing undone"
    assert undo_text({"deleted": 1, "lines_not_synced": 1, "errors": 2}) == "1 deleted, 1 line back to Not Synced, 2 errors"
    assert run_totals_text(json.dumps(COUNTS)) == undo_text(COUNTS)
    assert run_totals_text(json.dumps({"USD": "12.50", "EUR": "1234.5"})) == "EUR 1,234.50 · USD 12.50"


def test_list_runs_lists_syncs_and_undos_and_a_sync_knows_its_finished_undos(journaled) -> None:
    sync_id = _sync_id()
    failed = _undo(sync_id, state="failed")  # refused before anything was sent: not an undo of it
    runs = {r.id: r for r in journal.list_runs(journaled)}
    assert {r.kind for r in runs.values()} == {"sync", "undo"}
    assert runs[sync_id].undone_by == () and runs[sync_id].undone_text == ""
    assert runs[failed].undoes_run_id == sync_id
    partly = _undo(sync_id, deleted=5, refused=2, lines_not_synced=5)
    runs = {r.id: r for r in journal.list_runs(journaled)}
    assert runs[sync_id].undone_by == (partly,) and runs[sync_id].undone_text == f"partly undone by #{partly}"
    assert runs[partly].counts["refused"] == 2 and runs[partly].totals == {}
    whole = _undo(sync_id, deleted=2, lines_not_synced=2)
    runs = {r.id: r for r in journal.list_runs(journaled)}
    assert runs[sync_id].undone_by == (partly, whole) and runs[sync_id].undone_text == f"undone by #{whole}"
    assert [r.kind for r in journal.list_runs(journaled, kind="sync")] == ["sync", "sync"]
    assert {r.id for r in journal.list_runs(journaled, kind="undo")} == {failed, partly, whole}
    data = runs[sync_id].as_json()
    assert data["kind"] == "sync" and data["undone_by"] == [partly, whole] and data["undoes_run_id"] is None
    data = runs[whole].as_json()
    assert data["kind"] == "undo" and data["undoes_run_id"] == sync_id and "undone_by" not in data
    detail = journal.run_detail(journaled, sync_id)
    assert detail is not None and detail.run.undone_text == f"undone by #{whole}"


def _rows(store, source) -> dict[int, dict]:
    page = fetch_page(store, source, GridState(page_size=100), GridCache())
    return {row[0]: {c.key: c.shown(v) if c.display else v for c, v in zip(source.columns, row, strict=True)}
            for row in page.rows}


def test_the_runs_grid_shows_the_kind_the_undone_state_and_an_undos_words(journaled) -> None:
    sync_id = _sync_id()
    partly = _undo(sync_id, **{k: v for k, v in COUNTS.items()})
    rows = _rows(journaled, runs_source())
    assert rows[partly]["kind"] == f"undo of #{sync_id}" and rows[sync_id]["kind"] == "sync"
    assert rows[sync_id]["state"] == f"undone by #{partly}"  # without list_runs: "undone by"
    assert rows[partly]["state"] == "finished" and rows[partly]["created"] is None
    assert rows[partly]["totals"] == undo_text(COUNTS) and "posted" not in rows[partly]["totals"]
    assert rows[partly]["lines"] == 27 and rows[sync_id]["totals"].startswith("AUD ")
    # the screen passes what list_runs knows: this undo refused items
    partly_ids = [r.id for r in journal.list_runs(journaled) if r.undone == "partly undone"]
    assert partly_ids == [sync_id]
    rows = _rows(journaled, runs_source((), partly_ids))
    assert rows[sync_id]["state"] == f"partly undone by #{partly}"
    # the state filter offers what the grid shows
    page = fetch_page(journaled, runs_source((), partly_ids),
                      GridState(filters=(("state", frozenset({f"partly undone by #{partly}"})),)), GridCache())
    assert [row[0] for row in page.rows] == [sync_id]


def test_cw_tui_runs_names_the_kind_and_the_undo(cli, journaled) -> None:
    sync_id = _sync_id()
    undo_id = _undo(sync_id, deleted=3, lines_not_synced=4)
    db = journaled.path
    text = cli("--db", db, "runs")
    assert text.code == 0, text.err
    assert f"undo of #{sync_id}" in text.out and f"undone by #{undo_id}" in text.out
    assert "3 deleted, 4 lines back to Not Synced" in " ".join(text.out.split())
    shown = cli("--db", db, "runs", "show", str(undo_id))
    assert shown.code == 0 and f"an undo of run {sync_id}" in shown.out
