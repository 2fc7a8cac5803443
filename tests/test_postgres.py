"""The store on PostgreSQL: a real server the suite starts itself (tests/pg_server.py), the
version marks, libpq's conventions and no password in any text."""

from __future__ import annotations

import os
import socket
import threading

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
        SyncRun.create(kind="sync", period="2026-11", started_at=now_utc(), owner=f"{socket.gethostname()}|{os.getpid()}|t")
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
        assert settings.get_value(s, "k") == 1
    pg_databases.drop(url)
