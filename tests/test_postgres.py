"""The store on PostgreSQL: a real server the suite starts itself (tests/pg_server.py), the
version marks, libpq's conventions and no password in any text."""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import date
from decimal import Decimal

import pytest

from cw_tui.services import settings
from cw_tui.store import SCHEMA_VERSION, LoadedPeriod, StoreError, SyncRun, now_utc, open_store, postgres
from cw_tui.store.postgres import conninfo, has_password, pyformat, redact, redact_text
from tests.conftest import db_connect


def test_the_server_runs_with_fsync_off_on_loopback(pg_server) -> None:
    with db_connect(pg_server.url()) as connection:
        assert connection.execute("SHOW fsync").fetchone()[0] == "off"
        assert connection.execute("SELECT inet_server_addr()::text").fetchone()[0].startswith("127.0.0.1")
    assert pg_server.startup_seconds < 30


def test_a_new_database_gets_the_schema_and_the_version_mark(pg_databases) -> None:
    url = pg_databases.create(migrated=False)
    with open_store(url) as s:
        assert s.is_postgres and s.schema_version() == SCHEMA_VERSION
        assert {"invoice_line", "organization", "setting", "sync_run"} <= postgres.table_names(s.db)
        assert s.path == url  # no password in it to hide
    with open_store(url) as s:  # reopened: nothing to do
        assert s.schema_version() == SCHEMA_VERSION
    pg_databases.drop(url)


def _fillfactor(url: str) -> list | None:
    with db_connect(url) as connection:
        return connection.execute("SELECT reloptions FROM pg_class WHERE relname = 'invoice_line'").fetchone()[0]


def test_invoice_lines_leave_room_on_their_pages_new_or_upgraded(pg_databases) -> None:
    """Schema 9: invoice lines fill their pages to 70% (postgres.room_for_updates), and the synced
    ones' posting times have an index, whether the database is new or a schema 8 one upgraded; a
    bulk change then rewrites lines on their own pages (HOT updates, no index entries)."""
    from datetime import date as day

    from cw_tui.services.mapping import LineChange, update_line_ids
    from cw_tui.store import InvoiceLine

    url = pg_databases.create(migrated=False)
    open_store(url).close()
    assert _fillfactor(url) == ["fillfactor=70"]
    with db_connect(url) as connection:  # as schema 8 left it
        connection.execute("ALTER TABLE invoice_line RESET (fillfactor)")
        connection.execute("DROP INDEX invoice_line_posted")
        connection.execute("UPDATE cw_tui_meta SET value = 8 WHERE key = 'schema_version'")
    with open_store(url) as s:
        assert s.schema_version() == SCHEMA_VERSION
        assert _fillfactor(url) == ["fillfactor=70"]
        plan = " ".join(r[0] for r in s.db.execute_sql(
            "EXPLAIN SELECT MAX(last_sync_at) FROM invoice_line WHERE sync_status = 'synced'"))
        assert "invoice_line_posted" in plan  # the Dashboard's last posting, from the index of synced lines
        InvoiceLine.insert_many([dict(
            line_id=f"L{n}", period="2026-11", invoice_number="I", invoice_date=day(2026, 11, 8), invoice_status="Processed",
            organization_id="O", contract_id="C", subscription_id=f"S{n}", subscription_name="n", offer_id="F",
            charge_type="Usage Fee", billing_cycle="None", quantity=Decimal(1), unit_price=Decimal(1), unit_cost=Decimal(1),
            total=Decimal(1), currency="USD", platform_charge_start=day(2026, 11, 1), charge_start=day(2026, 11, 1),
            sync_status="not_synced", loaded_at=now_utc()) for n in range(200)]).execute()
        with db_connect(url) as connection:
            before = connection.execute("SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'invoice_line'"
                                        ).fetchone()[0]
        # a quarter of them (one line in four on each page): their new versions fit in the room left
        assert update_line_ids(s, [f"L{n}" for n in range(0, 200, 4)], LineChange(charge_end=day(2026, 11, 30))) == 50
        if s.db.execute_sql("SELECT 1 FROM pg_proc WHERE proname = 'pg_stat_force_next_flush'").fetchone():
            s.db.execute_sql("SELECT pg_stat_force_next_flush()")  # PostgreSQL 15: counters sent at once
        deadline = time.monotonic() + 20
        while True:  # else the server's counters are sent within seconds of the transaction
            with db_connect(url) as connection:
                hot = connection.execute("SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'invoice_line'"
                                         ).fetchone()[0] - before
            if hot >= 45 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert hot >= 45, hot  # at 100%, only the last page's lines (a few) would be
    pg_databases.drop(url)


def test_two_processes_creating_the_schema_at_once_take_turns(pg_databases) -> None:
    url = pg_databases.create(migrated=False)
    errors: list[BaseException] = []

    def open_and_close() -> None:
        from cw_tui.store import database

        try:  # two database objects, as two processes would have (not the shared one)
            db = postgres.database(url, 5000)
            db.connect()
            with db.atomic():
                postgres.lock_migrations(db, database.APP_ID)
                if postgres.user_version(db) == 0:
                    postgres.create_schema(db, database.MODELS)
                    postgres.mark(db, database.APP_ID, SCHEMA_VERSION)
            db.close()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=open_and_close) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with open_store(url) as s:
        assert s.schema_version() == SCHEMA_VERSION
    pg_databases.drop(url)


def test_another_programs_database_and_a_newer_schema_are_refused(pg_databases) -> None:
    other = pg_databases.create(migrated=False)
    with db_connect(other) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(StoreError, match="another program"):
        open_store(other)
    newer = pg_databases.create()
    with db_connect(newer) as connection:
        connection.execute("UPDATE cw_tui_meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 5,))
    with pytest.raises(StoreError, match="newer cw-tui"):
        open_store(newer)
    pg_databases.drop(other)
    pg_databases.drop(newer)


def test_a_password_in_the_url_is_refused_and_never_shown() -> None:
    url = "postgresql://finance:s3cret-pw@db.example.com:5432/cwtui"
    with pytest.raises(StoreError) as caught:
        open_store(url)
    assert "s3cret-pw" not in str(caught.value) and "~/.pgpass" in str(caught.value)
    assert has_password(url) and has_password("postgresql://u@h/db?password=x")
    assert not has_password("postgresql://u@h/db?sslmode=require")
    assert redact(url) == "postgresql://finance:***@db.example.com:5432/cwtui"
    assert "x1y2" not in redact("postgresql://u@h/db?password=x1y2&sslmode=require")
    assert "s3cret-pw" not in redact_text(f"could not reach {url}: timeout")


def test_a_host_that_is_not_loopback_requires_tls_unless_sslmode_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGSSLMODE", raising=False)
    monkeypatch.delenv("PGHOST", raising=False)
    assert conninfo("postgresql://u@db.example.com/cw") == ("postgresql://u@db.example.com/cw?sslmode=require", True)
    assert conninfo("postgresql://u@10.0.0.5:5432/cw?connect_timeout=5")[0].endswith("&sslmode=require")
    for local in ("postgresql://u@localhost/cw", "postgresql://u@127.0.0.1:5432/cw", "postgresql://u@[::1]/cw",
                  "postgresql:///cw?host=/var/run/postgresql"):
        assert conninfo(local) == (local, False)
    assert conninfo("postgresql://u@db.example.com/cw?sslmode=disable")[1] is False  # the user chose
    monkeypatch.setenv("PGSSLMODE", "verify-full")
    assert conninfo("postgresql://u@db.example.com/cw")[1] is False


def test_a_connection_error_names_the_database_without_secrets(pg_server) -> None:
    url = f"postgresql://nobody@127.0.0.1:{pg_server.port}/no_such_database"
    with pytest.raises(StoreError, match="does not exist") as caught:
        open_store(url)
    assert url in str(caught.value)


def test_the_store_sql_is_put_in_psycopg_style() -> None:
    assert pyformat("SELECT a FROM t WHERE b = ? AND c LIKE ? ESCAPE '\\'", ["x", "%y%"])[0] == \
        "SELECT a FROM t WHERE b = %s AND c ILIKE %s ESCAPE '\\'"
    assert pyformat("SELECT '?', '%' || ? FROM t", [1])[0] == "SELECT '?', '%%' || %s FROM t"
    assert pyformat("SELECT 1 FROM t WHERE name ILIKE ?", [1])[0] == "SELECT 1 FROM t WHERE name ILIKE %s"
    assert pyformat('SELECT "x" FROM t WHERE y = %s', [1]) == ('SELECT "x" FROM t WHERE y = %s', [1])  # peewee's own
    assert pyformat("SELECT '%' FROM t", ()) == ("SELECT '%' FROM t", None)


def test_postgres_specifics_of_the_store(pg_databases) -> None:
    with open_store(pg_databases.create()) as s:
        settings.set_value(s, "k", 1)
        settings.set_value(s, "k", 2)  # INSERT OR REPLACE: an upsert on the key
        assert settings.get_value(s, "k") == 2
        LoadedPeriod.insert(period="2026-10", loaded_at=now_utc(), new_lines=1).on_conflict_replace().execute()
        LoadedPeriod.insert(period="2026-10", loaded_at=now_utc(), new_lines=3).on_conflict_replace().execute()
        assert LoadedPeriod.get().new_lines == 3
        for day, end in (("2024-02-10", "2024-02-29"), ("2026-12-31", "2026-12-31"), ("2026-11-01", "2026-11-30")):
            assert s.db.execute_sql(f"SELECT {s.backend.month_end_sql('?')}", (day,)).fetchone()[0] == end
        with s.atomic("IMMEDIATE"):  # SQLite's lock mode: a plain transaction here
            s.db.execute_sql("INSERT INTO setting (key, value) VALUES (?, ?)", ("t", "1"))
        assert s.db.execute_sql("SELECT value FROM setting WHERE key LIKE ?", ("T",)).fetchone()[0] == "1"


def test_a_row_another_session_holds_makes_a_write_wait_then_refuse(pg_databases, monkeypatch: pytest.MonkeyPatch) -> None:
    import peewee as pw

    url = pg_databases.create()
    monkeypatch.setattr("cw_tui.store.database.BUSY_TIMEOUT_MS", 200)
    with open_store(url) as s:
        settings.set_value(s, "k", 1)
        run = SyncRun.create(kind="sync", period="2026-11", started_at=now_utc(), owner="")
        run.owner = f"{socket.gethostname()}|{os.getpid()}|{run.id}"
        run.save()
        alive = s.hold_run(run.id)
        holder = db_connect(url)
        holder.execute("UPDATE setting SET value = '5' WHERE key = 'k'")  # open transaction: the row is held
        try:
            with pytest.raises(pw.OperationalError) as caught, s.atomic("IMMEDIATE"):
                settings.set_value(s, "k", 2)
            assert s.describe(caught.value).startswith(f"database {url} is busy: another cw-tui holds what this needs "
                                                       f"(a sync of 2026-11 (process {os.getpid()}, started ")
            assert "nothing was changed" in s.describe(caught.value)
        finally:
            holder.rollback()
            holder.close()
            alive.release()
        assert settings.get_value(s, "k") == 1
    pg_databases.drop(url)


def test_a_run_is_alive_while_its_lock_is_held_on_whichever_host(pg_databases) -> None:
    """Claims across machines (issue 17): a run's liveness is its advisory lock, not host|pid.
    Another machine's run (a session of its own, as that machine's process would hold) is
    alive while it holds the lock and dead the moment its session ends; its claims are then
    released and its run recorded interrupted, as a dead local process's are."""
    from cw_tui.store import InvoiceLine, lock_holder, owner_alive
    from cw_tui.sync.claims import release_stale_claims

    url = pg_databases.create()
    with open_store(url) as s:
        run = SyncRun.create(kind="sync", period="2026-11", started_at=now_utc(), owner="")
        run.owner = f"finance-laptop|4242|{run.id}"
        run.save()
        elsewhere = postgres.RunLock(s.db.database, run.id)  # that machine's own session
        InvoiceLine.insert(line_id="L1", period="2026-11", invoice_number="I", invoice_date=date(2026, 11, 8),
                           invoice_status="Processed", organization_id="O", contract_id="C", subscription_id="S",
                           subscription_name="n", offer_id="F", charge_type="Usage Fee", billing_cycle="None",
                           quantity=Decimal(1), unit_price=Decimal(1), unit_cost=Decimal(1), total=Decimal(1), currency="USD",
                           platform_charge_start=date(2026, 11, 1), charge_start=date(2026, 11, 1), sync_status="claimed",
                           claimed_by=run.owner, claimed_at=now_utc(), posted_agreement_id=7,
                           loaded_at=now_utc()).execute()
        assert owner_alive(run.owner) and not owner_alive(f"finance-laptop|4242|{run.id + 1}")
        assert "process 4242 on finance-laptop" in lock_holder(url)
        assert release_stale_claims(s) == 0 and InvoiceLine.get().sync_status == "claimed"
        elsewhere.release()  # the process on that machine is gone: the server ends its session
        assert not owner_alive(run.owner) and lock_holder(url) == ""
        assert release_stale_claims(s, resolved_by=99) == 1
        line = InvoiceLine.get()
        assert (line.sync_status, line.claimed_by) == ("error", None) and "checks ConnectWise" in line.last_error
        assert SyncRun.get_by_id(run.id).state == "interrupted"
    pg_databases.drop(url)


def test_a_run_holds_its_lock_from_the_moment_its_row_is_seen(pg_databases) -> None:
    """The lock is taken in the transaction that creates the run's row: no other session
    sees the run running without it, so none takes it for dead and releases its claims."""
    from cw_tui.store import owner_alive

    url = pg_databases.create()
    with open_store(url) as s:
        with s.atomic():
            run = SyncRun.create(kind="sync", period="2026-11", started_at=now_utc(), owner="")
            alive = s.hold_run(run.id)
        assert owner_alive(f"h|1|{run.id}")
        with alive:
            assert run.id in postgres.held_runs(s.db)
        assert not owner_alive(f"h|1|{run.id}")
    pg_databases.drop(url)
