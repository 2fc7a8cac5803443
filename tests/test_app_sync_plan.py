"""Issue 10 in the app: an open month's plan says so, cancels nothing and does not offer Post
as the default; the plan a person confirms is the plan posted (a changed plan sends nothing
and is shown again)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from textual.widgets import Static

from cw_tui.screens.mapping import MappingScreen
from cw_tui.screens.mapping_modals import SyncPlanModal
from cw_tui.store import InvoiceLine, Organization
from tests.app_helpers import make_app, run, wait_for
from tests.sandbox_helpers import sandbox_thread
from tests.test_app_mapping import configured_store, modal_ready


def _texts(screen) -> str:
    return "\n".join(str(w.render()) for w in screen.query(Static))


def _set_up(cli, db: Path, sandbox) -> None:
    for args in (("sync-organizations",), ("load-invoices", "--period", "2026-10"), ("automap", "--include")):
        assert cli("--db", db, *args).code == 0, args


async def _show_plan(pilot, default_button: str) -> None:
    """Mapping → Invoices → `P`: the plan modal is up with its default button focused."""
    app = pilot.app
    await pilot.press("2")
    await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
    app.screen.show_tab("invoices")
    await pilot.pause()
    await pilot.press("P")
    await modal_ready(pilot, SyncPlanModal, default_button, timeout=60)


def _synced() -> int:
    return InvoiceLine.select().where(InvoiceLine.sync_status == "synced").count()


def test_an_open_months_plan_says_so_and_cancel_is_the_default(tmp_path: Path, demo_folder: Path, cli) -> None:
    with sandbox_thread() as sandbox:
        db = tmp_path / "s.sqlite3"
        store = configured_store(db, demo_folder, sandbox)
        _set_up(cli, db, sandbox)
        in_october = datetime(2026, 10, 20, 9, 0, tzinfo=UTC)  # the demo's last month has not ended

        async def scenario() -> None:
            app = make_app(store, clock=lambda: in_october)
            async with app.run_test(size=(80, 24), notifications=True) as pilot:
                await _show_plan(pilot, "cancel")
                plan = app.screen.plan
                assert plan.open and plan.cancels == []
                text = _texts(app.screen)
                assert "Open period" in text and "2026-10-31" in text and "none is sent now" in text
                post = app.screen.query_one("#post")
                assert post.region.bottom <= 24 and post.region.y >= 0  # the buttons are on screen at 80x24
                await pilot.press("enter")  # Cancel
                await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
                await pilot.pause(0.3)
                assert _synced() == 0

        run(scenario())
        assert not sandbox.sandbox.state.additions or all(
            not str(a.get("serialNumber", "")).startswith("cwt:") for a in sandbox.sandbox.state.additions.values())
        store.close()


def test_a_plan_that_changed_after_it_was_shown_sends_nothing(tmp_path: Path, demo_folder: Path, cli) -> None:
    with sandbox_thread() as sandbox:
        db = tmp_path / "s.sqlite3"
        store = configured_store(db, demo_folder, sandbox)
        _set_up(cli, db, sandbox)
        in_november = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)

        async def scenario() -> None:
            app = make_app(store, clock=lambda: in_november)
            async with app.run_test(size=(100, 30), notifications=True) as pilot:
                await _show_plan(pilot, "post")
                shown = app.screen.plan
                # a colleague excludes a customer while the plan is on screen
                org = Organization.select().where(Organization.excluded == False, Organization.company_id.is_null(False)).first()  # noqa: E712
                Organization.update(excluded=True).where(Organization.platform_id == org.platform_id).execute()
                await pilot.press("enter")  # Post
                await wait_for(pilot, lambda: isinstance(app.screen, SyncPlanModal) and app.screen.changed, timeout=60)
                assert app.screen.plan.fingerprint != shown.fingerprint
                assert "nothing was sent" in _texts(app.screen)
                assert _synced() == 0
                app.screen.query_one("#post").focus()  # the new plan can be posted as it is now
                await pilot.press("enter")
                await wait_for(pilot, lambda: _synced() > 50, timeout=60)
                assert not InvoiceLine.select().where(InvoiceLine.organization_id == org.platform_id,
                                                      InvoiceLine.sync_status == "synced").exists()

        run(scenario())
        store.close()
