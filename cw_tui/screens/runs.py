"""Run history (SPEC §15, issues 15 and 16): the list of sync and undo runs in the shared SQL
grid, and one run's actions (its journal entries) in the same grid: search, sort, filter by
action and outcome, ctrl+e export. Reached from the Dashboard's Last Sync tile and the command
palette. One key here leads to a write: `u` opens the undo plan of the highlighted run, and only
that modal's "Undo run N" button undoes it."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from cw_tui.rules.safe_text import safe_text
from cw_tui.rules.words import plural
from cw_tui.screens.base import AreaScreen
from cw_tui.services.system_log import Category
from cw_tui.store import journal
from cw_tui.store.journal_reads import duration_text, run_actions_source, runs_source, totals_text, undo_text
from cw_tui.tasks import run_service
from cw_tui.widgets.grid import SqlGrid

STATE_STYLES = {"finished": "green", "running": "cyan", "interrupted": "bold yellow", "failed": "bold red"}
OUTCOME_STYLES = {"done": "green", "pending": "cyan", "unknown": "bold yellow", "error": "bold red"}


def _badge(styles: dict[str, str]):
    def formatter(text: str, _value: object = None) -> Text:
        style = styles.get(text, "")
        if not style and "undone by" in text:
            style = "bold yellow" if text.startswith("partly") else "magenta"
        return Text(text, style=style)
    return formatter


def why_not_undo(run_id: int, kind: str | None, state: str | None, undoes: int | None = None,
                 period: str | None = None) -> str | None:
    """Why `u` cannot undo this run (its row or summary as read), or None."""
    if kind and kind != "sync":
        of = f" of run #{undoes}" if undoes else ""
        return (f"Run #{run_id} is an undo{of}: an undo cannot be undone. To post its lines again, sync "
                f"{period or 'the month'} again (Mapping → Invoices, P).")
    if state == "running":
        return f"Run #{run_id} is still running: undo it when it has finished."
    return None


def open_undo(screen, run_id: int, changed) -> None:
    """The undo plan modal of `run_id` (its plan is read there, in a worker)."""
    from cw_tui.screens.undo_modal import UndoPlanModal

    if any(isinstance(s, UndoPlanModal) for s in screen.app.screen_stack):
        return  # one at a time
    screen.app.push_screen(UndoPlanModal(run_id, changed=changed))


class RunsScreen(AreaScreen):
    """Every sync and undo run, newest first; enter opens the run's actions, u its undo plan."""

    AREA = "dashboard"
    AUTO_FOCUS = "GridTable"
    BINDINGS = [
        Binding("escape", "back", "Back", id="runs.back"),
        Binding("u", "undo", "Undo", id="runs.undo"),
        Binding("ctrl+r", "reload", "Refresh", id="runs.refresh"),
    ]

    def compose_area(self) -> ComposeResult:
        yield Static(Text("Sync runs · enter: the run's actions · u: undo the run · esc: back", style="bold"),
                      classes="screen-title")
        yield SqlGrid(runs_source(), id="runs-grid", formatters={"state": _badge(STATE_STYLES)},
                      summary=lambda page: f"Showing {len(page.rows):,} of {plural(page.total, 'run')}")

    def on_mount(self) -> None:
        super().on_mount()
        self._load()

    def refresh_data(self) -> None:
        self._load()

    def action_reload(self) -> None:
        self._load()

    def _load(self) -> None:
        """Which running runs are interrupted (their process is gone): the store asks, the grid shows."""
        store = self.app.store  # type: ignore[attr-defined]

        def states() -> tuple[list[int], list[int]]:
            runs = journal.list_runs(store)
            return ([r.id for r in runs if r.state == "interrupted" and r.stored_state == "running"],
                    [r.id for r in runs if r.undone == "partly undone"])

        run_service(self, "Reading the sync runs", states, category=Category.SYNC, group="runs",
                    done=lambda ids: self.query_one("#runs-grid", SqlGrid).set_source(runs_source(*ids)))

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_undo(self) -> None:
        """The highlighted run's undo plan; an undo or a running run: why not, at once."""
        grid = self.query_one("#runs-grid", SqlGrid)
        row = grid.current_values()
        if row is None:
            self.app.notify("No run to undo here.", markup=False)
            return
        run_id = int(row["id"])
        kind = "undo" if str(row.get("kind") or "").startswith("undo") else "sync"
        undoes = str(row.get("kind") or "").rpartition("#")[2]
        why = why_not_undo(run_id, kind, str(row.get("state") or ""), int(undoes) if undoes.isdigit() else None,
                           str(row.get("period") or "") or None)
        if why:
            self.app.notify(why, severity="warning", timeout=8, markup=False)
            return
        open_undo(self, run_id, self._load)

    @on(SqlGrid.RowChosen, "#runs-grid")
    def _chosen(self, event: SqlGrid.RowChosen) -> None:
        self.app.push_screen(RunActionsScreen(int(event.key)))


class RunActionsScreen(AreaScreen):
    """One run: what it was, and every write it sent to ConnectWise (the journal); u its undo plan."""

    AREA = "dashboard"
    AUTO_FOCUS = "GridTable"
    BINDINGS = [
        Binding("escape", "back", "Back", id="run.back"),
        Binding("u", "undo", "Undo", id="run.undo"),
        Binding("ctrl+r", "reload", "Refresh", id="run.refresh"),
    ]

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.detail: journal.RunDetail | None = None

    def compose_area(self) -> ComposeResult:
        yield Static(Text(f"Run #{self.run_id}", style="bold"), id="run-summary", classes="screen-title")
        yield SqlGrid(run_actions_source(self.run_id), id="run-actions-grid",
                      formatters={"outcome": _badge(OUTCOME_STYLES)},
                      summary=lambda page: f"Showing {len(page.rows):,} of {plural(page.total, 'action')} · "
                                           "enter: the line's detail")

    def on_mount(self) -> None:
        super().on_mount()
        self._load()

    def refresh_data(self) -> None:
        self._load()
        self.query_one(SqlGrid).reload()

    def action_reload(self) -> None:
        self.refresh_data()

    def _load(self) -> None:
        store, run_id = self.app.store, self.run_id  # type: ignore[attr-defined]
        run_service(self, "Reading the run", lambda: journal.run_detail(store, run_id), category=Category.SYNC,
                    group="run-detail", done=self._show)

    def _show(self, detail: journal.RunDetail | None) -> None:
        self.detail = detail
        line = self.query_one("#run-summary", Static)
        if detail is None:
            line.update(Text(f"Run #{self.run_id} is not in the database any more.", style="bold red"))
            return
        r = detail.run
        started = r.started_at.astimezone()
        state = r.undone_text or r.state
        text = Text.assemble((f"Run #{r.id}", "bold"), (f" · undo of run #{r.undoes_run_id}", "bold")
                             if r.kind == "undo" else "", f" · {r.period or 'no period'} · ",
                             (state, STATE_STYLES.get(r.state, "") if not r.undone_text else "magenta"),
                             f" · {started:%Y-%m-%d %H:%M} {started.tzname() or ''} · by {safe_text(r.who) or '?'} "
                             f"({'CLI' if r.trigger == 'cli' else r.trigger or '?'})")
        if r.kind == "undo":
            text.append(f"\nUndid run #{r.undoes_run_id}: {undo_text(r.counts)}")
            text.append(f"\n{plural(r.api_calls, 'API call')} in {duration_text(r.duration_s) or '?'}")
            if r.note:
                text.append(f" · {safe_text(r.note)}", style="dim")
            line.update(text)
            return
        text.append(f"\n{plural(r.synced_lines, 'line')} synced: {r.created:,} created, {r.updated:,} updated, "
                    f"{r.cancelled:,} cancelled, {r.adopted:,} adopted · ")
        text.append(plural(r.errors, "error"), style="bold red" if r.errors else "")
        totals = totals_text(_totals_json(r.totals))
        text.append(f"\n{plural(r.api_calls, 'API call')} in {duration_text(r.duration_s) or '?'} · posted "
                    f"{totals or 'nothing'}" + (f" · {len(detail.resolved)} earlier outcomes resolved"
                                                 if detail.resolved else ""))
        if r.note:
            text.append(f" · {safe_text(r.note)}", style="dim")
        line.update(text)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_undo(self) -> None:
        """This run's undo plan (an undo, or a run still running: why not)."""
        r = self.detail.run if self.detail is not None else None
        why = why_not_undo(self.run_id, r.kind, r.state, r.undoes_run_id, r.period) if r is not None else None
        if why:
            self.app.notify(why, severity="warning", timeout=8, markup=False)
            return
        open_undo(self, self.run_id, self.refresh_data)

    @on(SqlGrid.RowChosen, "#run-actions-grid")
    def _chosen(self, event: SqlGrid.RowChosen) -> None:
        """The detail of the first line the action covers (an agreement's creation covers none)."""
        store = self.app.store  # type: ignore[attr-defined]
        journal_id = int(event.key)

        def detail():
            from cw_tui.services.line_detail import line_detail

            found = journal.entry(store, journal_id)
            if found is None or not found.line_ids:
                return None
            return line_detail(store, found.line_ids[0]), len(found.line_ids)

        def show(result) -> None:
            if result is None or result[0] is None:
                self.app.notify("This action covers no invoice line (a new agreement).", markup=False)
                return
            from cw_tui.screens.line_detail import LineDetailModal

            shown, lines = result
            if lines > 1:
                self.app.notify(f"The action covers {lines:,} lines: showing the first.", markup=False)
            self.app.push_screen(LineDetailModal(shown))

        run_service(self, "Reading the line", detail, category=Category.SYNC, group="run-line", done=show)


def _totals_json(totals: dict) -> str:
    import json

    return json.dumps({k: str(v) for k, v in totals.items()})
