from __future__ import annotations

from datetime import timedelta

from cw_tui.services import system_log
from cw_tui.services.system_log import Category, Level, LogQuery
from cw_tui.store import now_utc


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
