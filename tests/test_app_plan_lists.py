"""Issue 12: the plan lists, beyond its totals, the lines behind each customer's total, the
agreements it creates, the skipped lines with their reason and amount, and what each update
changes; the same in `sync --dry-run` and its --json. Money in the plan modal is shown to the
cent and never cut at 80x24."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from textual.containers import VerticalScroll
from textual.widgets import Static

from cw_tui.rules.additions import AdditionValues
from cw_tui.rules.mapping import MappingStatus
from cw_tui.rules.sync_plan import (
    CreateAddition,
    NewAgreement,
    PeriodState,
    PersistentAddition,
    Plan,
    Skip,
    UpdateAddition,
    change_text,
    plan_sync,
)
from cw_tui.rules.vocabulary import BillingCycle, ChargeType
from cw_tui.screens.sync_plan_modal import SyncPlanModal
from tests.app_helpers import make_app, run, seeded_store
from tests.sandbox_helpers import sandbox_thread
from tests.sync_helpers import cw_env
from tests.test_app_mapping import configured_store
from tests.test_app_sync_plan import _show_plan
from tests.test_snapshots import settle
from tests.test_sync_plan import AGREEMENTS, TYPE, line


def rendered(widget: Static, width: int = 200) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"), color_system=None)  # noqa: SIM115
    console.print(widget.content)
    return console.export_text()


def _values(quantity: str, price: str, start: date = date(2026, 9, 1), text: str = "Seats") -> AdditionValues:
    return AdditionValues(1000, Decimal(quantity), Decimal(price), Decimal(1), start, None, text, f"{text} from {start}")


# ---------------------------------------------------------------- the rules


def test_an_update_says_what_changes_and_an_unchanged_subscription_is_no_update() -> None:
    monthly = {"billing_cycle": BillingCycle.MONTHLY, "charge_type": ChargeType.CYCLE_FEE, "charge_end": None}
    same = line("s1", subscription_id="SUB-SAME", charge_start=date(2026, 9, 1), **monthly)
    more = line("s2", subscription_id="SUB-MORE", quantity=Decimal(9), **monthly)
    text = line("s3", subscription_id="SUB-TEXT", charge_start=date(2026, 10, 1), **monthly)
    plan0 = plan_sync("2026-09", [same], AGREEMENTS, {}, TYPE, {})
    held = plan0.creates[0].values  # what the first month posted for SUB-SAME

    def persistent(sub: str, values: AdditionValues) -> PersistentAddition:
        return PersistentAddition(sub, 5001, 77, "active", BillingCycle.MONTHLY, values, "2026-09", 250, "USD", "Acme")

    existing = {"SUB-SAME": persistent("SUB-SAME", held),
                "SUB-MORE": persistent("SUB-MORE", AdditionValues(1000, Decimal(8), Decimal("12.50"), Decimal(10),
                                                                  date(2026, 10, 1), None, "M365 E3 - Cycle Fee",
                                                                  plan_sync("2026-10", [more], AGREEMENTS, {}, TYPE, {})
                                                                  .creates[0].values.invoice_description)),
                "SUB-TEXT": persistent("SUB-TEXT", held)}
    plan = plan_sync("2026-10", [same, more, text], AGREEMENTS, existing, TYPE, {})
    assert [u.subscription_id for u in plan.unchanged] == ["SUB-SAME"]  # nothing would change: not an update
    by_sub = {u.subscription_id: u for u in plan.updates}
    assert set(by_sub) == {"SUB-MORE", "SUB-TEXT"}
    assert by_sub["SUB-MORE"].change_text() == "quantity 8 → 9" and not by_sub["SUB-MORE"].text_only
    assert by_sub["SUB-TEXT"].change_text() == "text only" and by_sub["SUB-TEXT"].text_only
    assert plan.text_only_updates == 1
    items = {i.what: i for i in plan.items()}
    assert {i.action for i in items.values()} == {"update"}
    assert change_text({"unitPrice": Decimal(12), "description": "x"}, _values("1", "10")) == "unit price 10.00 → 12.00 (and its text)"
    assert change_text({"cancelledDate": "2026-10-31T00:00:00Z"}, _values("1", "10")) == "end none → 2026-10-31"


def test_skipped_lines_carry_their_reason_and_amount() -> None:
    lines = [line("n", product_id=None, mapping_status=MappingStatus.UNMAPPED, quantity=Decimal(2), unit_price=Decimal("5.25")),
             line("c", company_id=None, mapping_status=MappingStatus.UNMAPPED),
             line("x", mapping_status=MappingStatus.EXCLUDED, currency="EUR"),
             line("m", mapping_status=MappingStatus.UNMAPPED)]  # mapped, but its company has several organizations
    plan = plan_sync("2026-10", lines, AGREEMENTS, {}, TYPE, {}, state=PeriodState("2026-10", True, 4))
    reasons = {s.line_id: (s.reason, s.amount, s.currency) for s in plan.skips}
    assert reasons == {"n": ("no product mapped", Decimal("10.5"), "USD"),
                       "c": ("no company mapped", Decimal("37.5"), "USD"),
                       "x": ("organization excluded", Decimal("37.5"), "EUR"),
                       "m": ("company shared by several organizations: choose an agreement", Decimal("37.5"), "USD")}
    assert plan.new_lines_skipped == 4  # "invoice is New": not loaded, counted
    assert plan.skipped_by_reason() == [
        ("company shared by several organizations: choose an agreement", 1, {"USD": Decimal("37.5")}),
        ("no company mapped", 1, {"USD": Decimal("37.5")}), ("no product mapped", 1, {"USD": Decimal("10.5")}),
        ("organization excluded", 1, {"EUR": Decimal("37.5")})]


# ---------------------------------------------------------------- over the real sandbox


@pytest.fixture
def second_month(cli, tmp_path: Path, demo_folder: Path, monkeypatch: pytest.MonkeyPatch):
    """September synced, October loaded: October's plan updates subscriptions, creates agreements
    and skips unmapped lines."""
    with sandbox_thread() as sandbox:
        for key, value in cw_env(sandbox).items():
            monkeypatch.setenv(key, value)
        db = tmp_path / "p.sqlite3"
        store = configured_store(db, demo_folder, sandbox)
        for args in (("sync-organizations",), ("load-invoices", "--period", "2026-09"), ("automap", "--include"),
                     ("sync", "--period", "2026-09"), ("load-invoices", "--period", "2026-10")):
            assert cli("--db", db, *args).code == 0, args
        yield sandbox, db, store
        store.close()


def test_the_dry_run_lists_lines_changes_and_skips(cli, second_month) -> None:
    _, db, _ = second_month
    planned = cli("--db", db, "sync", "--period", "2026-10", "--dry-run", "--json").json()
    changes = {u["change"] for u in planned["updates"]}
    assert "text only" in changes and any(c.startswith("quantity ") and " → " in c for c in changes)
    assert planned["text_only_updates"] == sum(1 for u in planned["updates"] if u["text_only"])
    assert all(Decimal(s["amount"]) and s["customer"] and s["currency"] for s in planned["skips"])
    assert {r["reason"] for r in planned["skipped_by_reason"]} >= {"no product mapped", "no company mapped"}
    assert sum(r["lines"] for r in planned["skipped_by_reason"]) == planned["skipped"]
    assert planned["new_agreements"]

    text = cli("--db", db, "sync", "--period", "2026-10", "--dry-run").out
    assert f"to update ({planned['text_only_updates']} text only)" in text
    update = next(u for u in planned["updates"] if u["change"].startswith("quantity"))
    assert f"{update['lines'][0]}; " in text and update["change"] in text
    skip = planned["skips"][0]
    assert f"  {skip['line']}  {skip['customer']}  {skip['currency']} {Decimal(skip['amount']):,.2f}: {skip['reason']}" in text
    assert f"new: {planned['new_agreements'][0]['name']}" in text


def test_the_plan_modal_lists_lines_agreements_changes_and_skips(second_month) -> None:
    _, _, store = second_month

    async def scenario() -> None:
        app = make_app(store, clock=lambda: datetime(2026, 11, 18, 9, 0, tzinfo=UTC))
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await _show_plan(pilot, "post")
            modal = app.screen
            plan = modal.plan
            lines = rendered(modal.query_one("#lines", Static))
            update = next(u for u in plan.updates if not u.text_only)
            assert update.change_text() in lines and update.line_ids[0] in lines
            assert "text only" in lines
            for create in plan.creates[:3]:
                assert create.line_ids[0] in lines
            agreements = rendered(modal.query_one("#agreements", Static))
            assert all(a.name in agreements for a in plan.new_agreements)
            skipped = rendered(modal.query_one("#skipped", Static))
            for reason, count, _amounts in plan.skipped_by_reason():
                assert f"{count} line{'s' if count != 1 else ''}: {reason}" in skipped
            first = plan.skips[0]
            assert first.line_id in skipped and f"{first.currency} {first.amount:,.2f}" in skipped
            summary = str(modal.query_one("#summary", Static).render())
            assert f"update {len(plan.updates)} ({plan.text_only_updates} text only)" in summary

            body = modal.query_one("#body", VerticalScroll)
            assert body.max_scroll_y > 0  # more than a screen: the keys scroll it, the focus stays on Post
            await pilot.press("end")
            await pilot.pause()
            assert body.scroll_y == body.max_scroll_y and app.focused.id == "post"
            post = modal.query_one("#post")
            assert post.region.y >= 0 and post.region.bottom <= 24
            await pilot.press("escape")

    run(scenario())


# ---------------------------------------------------------------- the snapshot


def long_amounts_plan() -> Plan:
    """A plan with amounts in the millions, a quantity change, a text-only update and skips."""
    new = NewAgreement("CTR-000001", 250, 2, "Harborview Motors LLC - CTR-000001")
    big = _values("1", "1234567.89", text="Azure Plan - Usage Fee")
    creates = [CreateAddition("cwt:L:LN-1", ("LN-2026-10-00001-0001",), new, big, 250, "Harborview Motors LLC", "USD"),
               CreateAddition("cwt:L:LN-2", ("LN-2026-10-00002-0001",), 5001, _values("3", "964.5", text="NinjaOne RMM - Usage Fee"),
                              251, "Northwind Foods Group International Holdings", "EUR")]
    before = _values("8", "513.37", text="Microsoft 365 E3 - Cycle Fee")
    after = _values("9", "513.37", text="Microsoft 365 E3 - Cycle Fee", start=date(2026, 9, 1))
    text_before = _values("12", "22", text="Exchange Online Plan 2 - Cycle Fee")
    text_after = AdditionValues(1000, Decimal(12), Decimal(22), Decimal(1), date(2026, 9, 1), None,
                                "Exchange Online Plan 2 - Cycle Fee", "another text")
    updates = [UpdateAddition("SUB-1", "cwt:S:SUB-1", ("LN-2026-10-00001-0002",), 5001, 77, after,
                              after.changes_from(before), "Harborview Motors LLC", "USD", before=before),
               UpdateAddition("SUB-2", "cwt:S:SUB-2", ("LN-2026-10-00001-0003",), 5001, 78, text_after,
                              text_after.changes_from(text_before), "Harborview Motors LLC", "USD", before=text_before)]
    skips = [Skip("LN-2026-10-00003-0001", "no product mapped", "Pinnacle Dental Pty Ltd", "USD", Decimal("98765.43")),
             Skip("LN-2026-10-00004-0001", "organization excluded", "Sapphire Legal", "GBP", Decimal(1000000))]
    return Plan("2026-10", creates=creates, updates=updates, new_agreements=[new], skips=skips,
                state=PeriodState("2026-10", True, 2), agreement_names={5001: "Harborview Motors LLC - Cloud Services"})


def test_long_amounts_are_shown_to_the_cent(tmp_path: Path, demo_folder: Path) -> None:
    store = seeded_store(tmp_path / "s.sqlite3", demo_folder)

    async def scenario() -> None:
        app = make_app(store)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("2")
            await settle(pilot)
            app.push_screen(SyncPlanModal(long_amounts_plan()))
            await settle(pilot)
            totals = rendered(app.screen.query_one("#totals", Static), width=app.screen.query_one("#totals").size.width)
            # USD: 1,234,567.89 + 513.37 × 9 + 22 × 12, to the cent, in its column and in the total
            assert "1,239,452.22" in totals.splitlines()[1] and "2,893.50" in totals.splitlines()[2]
            assert "Total: EUR 2,893.50, USD 1,239,452.22" in totals
            widget = app.screen.query_one("#lines", Static)
            assert rendered(widget, width=widget.size.width).count("1,234,567.89") == 2  # the price and the amount
            assert "quantity 8 → 9" in rendered(widget) and "text only" in rendered(widget)

    run(scenario())
    store.close()


def test_snapshot_of_the_plan_with_long_amounts_at_80x24(snap_compare, tmp_path: Path, demo_folder: Path) -> None:
    store = seeded_store(tmp_path / "s.sqlite3", demo_folder)

    async def run_before(pilot) -> None:
        await pilot.press("2")
        await settle(pilot)
        pilot.app.push_screen(SyncPlanModal(long_amounts_plan()))
        await settle(pilot)

    assert snap_compare(make_app(store), terminal_size=(80, 24), run_before=run_before)
    store.close()
