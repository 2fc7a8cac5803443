"""The headless CLI, run as a separate process the way a user or cron runs it."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from cw_tui.rules.periods import resolve_period
from tests.conftest import run_process

COMMANDS = ["demo", "demo-data", "sandbox", "connect", "configure", "sync-organizations", "automap", "load-invoices",
            "load-products", "status", "logs", "export"]


def test_help_lists_every_command_and_each_has_help() -> None:
    result = run_process("--help")
    assert result.code == 0
    for command in COMMANDS:
        assert command in result.out
    for command in COMMANDS:
        sub = run_process(command, "--help")
        assert sub.code == 0 and "--db" in sub.out, command


def test_usage_errors_exit_2(cli, tmp_path: Path) -> None:
    assert run_process("no-such-command").code == 2
    db = tmp_path / "x.sqlite3"
    result = cli("--db", db, "load-invoices", "--period", "previous")
    assert result.code == 2 and "no Platform export folder is configured" in result.err
    assert cli("--db", db, "load-invoices", "--period", "2026-13", "--platform-dir", tmp_path).code == 2
    assert cli("--db", db, "configure", "--platform-dir", tmp_path / "missing").code == 2
    assert cli("--db", db, "configure", "--end-rule", "Cycle Fee=sometimes").code == 2
    assert cli("--db", db, "logs", "--since", "yesterday-ish").code == 2


def test_the_foundation_walkthrough(tmp_path: Path) -> None:
    """Issue 2, must show 2: demo-data, configure, load the previous month, load products, status."""
    folder, db = tmp_path / "D", tmp_path / "X"
    assert run_process("demo-data", folder, "--seed", "7").code == 0
    assert run_process("--db", db, "configure", "--platform-dir", folder).code == 0
    loaded = run_process("--db", db, "load-invoices", "--period", "previous")
    assert loaded.code == 0, loaded.err
    assert run_process("--db", db, "load-products", "--months", "3").code == 0
    result = run_process("--db", db, "status", "--json")
    assert result.code == 0
    status = json.loads(result.out)
    previous = resolve_period("previous", date.today())
    [period] = status["periods"]
    assert period["period"] == previous and period["lines"] > 300
    assert period["unmapped"] == period["lines"] == period["not_synced"]
    assert period["mapped"] == period["excluded"] == period["synced"] == period["error"] == 0
    assert status["products"]["total"] >= 30 and status["products"]["mapped"] == 0
    assert status["organizations"]["total"] > 200
    assert status["organizations"]["excluded"] == status["organizations"]["total"]  # new ones start excluded
    assert status["last_sync_to_psa"] is None and status["daily_sync"] == {"enabled": False, "next_run": None}
    assert set(status) == {"organizations", "products", "periods", "last_sync_to_psa", "last_organizations_sync", "daily_sync"}


def test_status_counts_add_up(cli, demo_folder: Path, tmp_path: Path) -> None:
    db = tmp_path / "x.sqlite3"
    cli("--db", db, "configure", "--platform-dir", demo_folder, "--daily-sync", "on")
    assert cli("--db", db, "load-invoices", "--period", "2026-08", "--period", "2026-10").code == 0
    status = cli("--db", db, "status", "--json").json()
    assert [p["period"] for p in status["periods"]] == ["2026-10", "2026-08"]
    for p in status["periods"]:
        assert p["lines"] == p["mapped"] + p["unmapped"] + p["excluded"] == p["not_synced"] + p["synced"] + p["error"]
    assert status["daily_sync"]["enabled"] is True and status["daily_sync"]["next_run"].endswith("T00:00:00Z")
    human = cli("--db", db, "status")
    assert human.code == 0 and "2026-10" in human.out


def test_configure_round_trips_rules_and_names(cli, tmp_path: Path) -> None:
    db = tmp_path / "x.sqlite3"
    result = cli(
        "--db", db, "configure",
        "--end-rule", "usage fee=Last day of invoice month",
        "--start-rule", "Annual=invoice_date",
        "--charge-type-name", "Cycle Fee=Monthly subscription",
        "--json",
    )
    assert result.code == 0
    config = cli("--db", db, "configure", "--json").json()
    assert config["end_rules"] == {"Usage Fee": "last_day_of_invoice_month"}
    assert config["start_rules"] == {"Annual": "invoice_date"}
    assert config["charge_type_names"] == {"Cycle Fee": "Monthly subscription"}
    logs = cli("--db", db, "logs", "--category", "configuration", "--json").json()
    assert logs and logs[0]["summary"] == "Configuration saved"


def test_rules_configured_are_applied_at_load(cli, demo_folder: Path, tmp_path: Path) -> None:
    from cw_tui.store import InvoiceLine, open_store

    db = tmp_path / "x.sqlite3"
    cli("--db", db, "configure", "--platform-dir", demo_folder, "--end-rule", "Cycle Fee=first_day_of_following_month")
    assert cli("--db", db, "load-invoices", "--period", "2026-09").code == 0
    with open_store(db):
        cycle = InvoiceLine.select().where(InvoiceLine.charge_type == "Cycle Fee").first()
        assert cycle.charge_end_badge == "system" and cycle.charge_end == date(2026, 10, 1)
        usage = InvoiceLine.select().where(InvoiceLine.charge_type == "Usage Fee").first()
        assert usage.charge_end_badge == "default"


@pytest.mark.parametrize("since", ["7d", "2026-01-01", "12h"])
def test_logs_since(cli, tmp_path: Path, since: str) -> None:
    db = tmp_path / "x.sqlite3"
    cli("--db", db, "configure", "--daily-sync", "off")
    assert cli("--db", db, "logs", "--since", since).code == 0
