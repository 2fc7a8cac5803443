"""Issue 10, part 6: an empty, redirected or cut-short answer from ConnectWise never wipes the
cache. The real CLI against the real sandbox on a loopback socket, with the sandbox's odd
answers switched on; each test ends with the store. The guard's own tests (a shrunk list refused,
--allow-shrink, the half rule, the sync stopped) run on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cw_tui.sandbox.odd_answers import OddAnswer
from cw_tui.services import settings
from cw_tui.services.status import LAST_ORGANIZATIONS_SYNC
from cw_tui.store import Agreement, AgreementType, Company, CompanyStatus, InvoiceLine, Product, SyncRun, open_store
from tests.sandbox_helpers import sandbox_thread

P1 = "2026-09"
CT = "application/vnd.connectwise.com+json; version=2025.1"  # what the sandbox answers with


def cache(db: Path | str) -> dict[str, object]:
    """Every cached ConnectWise row, and the time of the last organizations sync."""
    with open_store(db) as store:
        tables = {model.__name__: sorted(model.select().tuples()) for model in
                  (Company, CompanyStatus, Product, AgreementType, Agreement)}
        tables["last_sync"] = settings.get_value(store, LAST_ORGANIZATIONS_SYNC)
        return tables


@pytest.fixture
def synced(cli, new_db, monkeypatch: pytest.MonkeyPatch, demo_folder: Path):
    """A sandbox and a store after one good Sync Organizations (400 companies)."""
    with sandbox_thread() as sandbox:
        creds = sandbox.credentials
        for key, value in {"CW_URL": creds.url, "CW_COMPANY_ID": creds.company_id, "CW_PUBLIC_KEY": creds.public_key,
                           "CW_PRIVATE_KEY": creds.private_key, "CW_CLIENT_ID": creds.client_id}.items():
            monkeypatch.setenv(key, value)
        db = new_db("guard")
        for args in (("connect",), ("configure", "--platform-dir", demo_folder, "--agreement-type", "Cloud Services"),
                     ("sync-organizations",)):
            result = cli("--db", db, *args)
            assert result.code == 0, (args, result.err)
        assert len(cache(db)["Company"]) == 400
        yield sandbox, db


def companies_json(sandbox, count: int) -> str:
    rows = sorted(sandbox.sandbox.state.companies.values(), key=lambda c: c["id"])[:count]
    return json.dumps([{"id": c["id"], "identifier": c["identifier"], "name": c["name"]} for c in rows])


@pytest.mark.parametrize(("odd", "code", "said"), [
    (OddAnswer("body", "/company/companies", {"text": "[]"}), 2, "ConnectWise sent 0 companies where 400 are cached"),
    (OddAnswer("empty", "/company/companies"), 1, "answered GET /company/companies with 200 (application/vnd.connectwise.com+json; version=2025.1) and an empty body"),
    (OddAnswer("redirect", "/company/companies", {"status": 302}), 2, "with 302 (no content type), a redirect to"),
    (OddAnswer("redirect", "/company/companies", {"status": 301, "json_body": True}), 2, "with 301 (application/vnd.connectwise.com+json; version=2025.1), a redirect to"),
    (OddAnswer("body", "/company/companies", {"text": '{"count": 0}'}), 1,
     f'(page 1) with 200 ({CT}), something other than a list of records: "{{"count": 0}}"'),
    (OddAnswer("body", "/procurement/catalog", {"text": "[]"}), 2, "0 catalog products where"),
    (OddAnswer("body", "/finance/agreements", {"text": "[]"}), 2, "0 agreements where"),
])
def test_an_odd_answer_never_changes_the_cache(synced, cli, odd: OddAnswer, code: int, said: str) -> None:
    sandbox, db = synced
    before = cache(db)
    sandbox.sandbox.faults.odd_answers.append(odd)
    result = cli("--db", db, "sync-organizations")
    assert result.code == code, result.err
    assert said in result.err
    assert "Synced" not in result.out
    assert cache(db) == before  # still its 400 companies, products and agreements
    if code == 2 and "redirect" not in said:
        assert "nothing was changed" in result.err and "--allow-shrink" in result.err


@pytest.mark.both_backends
def test_allow_shrink_accepts_the_smaller_list(synced, cli) -> None:
    sandbox, db = synced
    sandbox.sandbox.faults.odd_answers.append(
        OddAnswer("body", "/company/companies", {"text": companies_json(sandbox, 3)}))
    refused = cli("--db", db, "sync-organizations", "--json")
    assert refused.code == 2 and "3 companies where 400 are cached" in refused.err
    assert len(cache(db)["Company"]) == 400

    accepted = cli("--db", db, "sync-organizations", "--allow-shrink", "--json")
    assert accepted.code == 0, accepted.err
    assert accepted.json()["companies"] == 3
    assert len(cache(db)["Company"]) == 3
    logs = cli("--db", db, "logs", "--category", "Organizations", "--json").json()
    summaries = [e["summary"] for e in logs]
    assert any(s.startswith("Refresh refused, nothing changed: companies 400 -> 3") for s in summaries)
    assert any(s.startswith("Smaller lists from ConnectWise accepted: companies 400 -> 3") for s in summaries)


@pytest.mark.both_backends
@pytest.mark.parametrize(("count", "code"), [(200, 0), (199, 2)])
def test_half_of_the_list_is_kept_more_than_half_dropped_is_refused(synced, cli, count: int, code: int) -> None:
    sandbox, db = synced
    sandbox.sandbox.faults.odd_answers.append(
        OddAnswer("body", "/company/companies", {"text": companies_json(sandbox, count)}))
    result = cli("--db", db, "sync-organizations")
    assert result.code == code, result.err
    assert len(cache(db)["Company"]) == (count if code == 0 else 400)


@pytest.mark.both_backends
def test_a_shrunk_agreements_list_stops_the_sync_and_the_dry_run_before_anything_is_sent(synced, cli) -> None:
    sandbox, db = synced
    for args in (("load-invoices", "--period", P1), ("automap", "--include")):
        assert cli("--db", db, *args).code == 0
    state = sandbox.sandbox.state
    before, additions, agreements = cache(db), len(state.additions), len(state.agreements)
    sandbox.sandbox.faults.odd_answers.append(OddAnswer("body", "/finance/agreements", {"text": "[]"}))

    for args in (("sync", "--period", P1, "--dry-run"), ("sync", "--period", P1)):
        result = cli("--db", db, *args)
        assert result.code == 2, (args, result.out, result.err)
        assert "0 agreements where" in result.err and "are cached" in result.err
        assert "sync-organizations --allow-shrink" in result.err and "then sync again" in result.err
        assert cache(db) == before

    assert (len(state.additions), len(state.agreements)) == (additions, agreements)  # nothing was sent
    with open_store(db):
        assert InvoiceLine.select().where(InvoiceLine.sync_status != "not_synced").count() == 0
        assert InvoiceLine.select().where(InvoiceLine.claimed_by.is_null(False)).count() == 0
        assert [r.state for r in SyncRun.select().where(SyncRun.kind == "sync")] == ["failed"]

    # the control: with the real agreements list the plan is made
    sandbox.sandbox.faults.odd_answers.clear()
    planned = cli("--db", db, "sync", "--period", P1, "--dry-run", "--json")
    assert planned.code == 0 and planned.json()["creates"]
