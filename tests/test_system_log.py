from __future__ import annotations

from datetime import timedelta

import pytest

from cw_tui.services import system_log
from cw_tui.services.system_log import Category, Level, LogQuery
from cw_tui.store import now_utc

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (issue 17)


def test_write_query_filter_page_and_purge(store) -> None:
    now = now_utc()
    system_log.write(store, Level.INFO, Category.SYNC, "Sync started", at=now - timedelta(days=40))
    for i in range(30):
        system_log.write(store, Level.INFO, Category.INVOICES, f"Loaded {i}", at=now - timedelta(minutes=i))
    system_log.write(store, Level.ERROR, Category.SYNC, "Line L-1 failed", "400 Product is inactive", at=now)
    system_log.write(store, Level.WARNING, Category.SYNC, "Line L-2 skipped: unmapped", at=now)

    assert system_log.count(store) == 33
    assert [e.summary for e in system_log.entries(store, LogQuery(level=Level.ERROR))] == ["Line L-1 failed"]
    assert system_log.count(store, LogQuery(category=Category.SYNC)) == 3
    assert system_log.count(store, LogQuery(text="inactive")) == 1  # details are searched too
    assert system_log.count(store, LogQuery(since=now - timedelta(days=1))) == 32
    page = system_log.entries(store, offset=5, limit=10)
    assert len(page) == 10
    newest = system_log.entries(store, limit=1)[0]
    assert system_log.count(store, LogQuery(after_id=newest.id)) == 0

    assert system_log.purge(store, now) == 1
    assert system_log.count(store) == 32


def test_secrets_never_reach_an_entry(store) -> None:
    system_log.register_secret("s3cr3tPrivateKey")
    entry = system_log.write(
        store, Level.ERROR, Category.AUTHENTICATION,
        "401 with key s3cr3tPrivateKey",
        "Authorization: Basic Y29tcGFueStwdWI6czNjcjN0 clientId=1234-abcd private_key=xyz",
    )
    text = entry.summary + entry.details
    assert "s3cr3tPrivateKey" not in text
    assert "Y29tcGFueStwdWI6czNjcjN0" not in text
    assert "1234-abcd" not in text and "xyz" not in text
    assert system_log.MASK in entry.summary
    # echoed as JSON, as an odd answer may echo the request's headers
    echoed = system_log.redact('{"Authorization": "Basic Y29tcGFueStwdWI6czNjcjN0", "clientId": "5678-ef ab", '
                               "'privateKey': 'p w'}")
    assert echoed == f'{{"Authorization": "{system_log.MASK}", "clientId": {system_log.MASK}, \'privateKey\': {system_log.MASK}}}'


def test_logs_search_is_literal_and_ignores_case_on_both_backends(cli, db_target) -> None:
    """`logs --search`: % and _ are those characters, never wildcards; ASCII case is ignored."""
    from cw_tui.store import open_store

    with open_store(db_target) as store:
        for summary in ("Loaded 50% of lines", "Loaded 5000 lines", "Line A_1 failed", "Line AB1 failed", "SYNC of 2026-10"):
            system_log.write(store, Level.INFO, Category.SYNC, summary)
    def found(text: str) -> list[str]:
        result = cli("--db", db_target, "logs", "--search", text, "--json")
        assert result.code == 0, result.err
        return sorted(e["summary"] for e in result.json())
    assert found("50%") == ["Loaded 50% of lines"]
    assert found("a_1") == ["Line A_1 failed"]
    assert found("sync of") == ["SYNC of 2026-10"]
    assert found("nothing like it") == []
