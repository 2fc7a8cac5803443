"""The store: schema versioning, WAL, and clear errors for files it cannot use. The tests of
SQLite files (PRAGMAs, migrations of old files, damaged and locked files) are SQLite's; the
others run on PostgreSQL too (tests/test_postgres.py has its own)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from cw_tui.store import MODELS, SCHEMA_VERSION, StoreError, open_store
from cw_tui.store import migrations as store_module

pytestmark = pytest.mark.both_backends
sqlite_only = pytest.mark.sqlite_only


@sqlite_only
def test_a_new_store_is_at_the_current_schema_in_wal_mode(tmp_path: Path) -> None:
    with open_store(tmp_path / "new" / "deep" / "s.sqlite3") as s:
        assert s.schema_version() == SCHEMA_VERSION
        assert s.db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s.db.execute_sql("PRAGMA busy_timeout").fetchone()[0] >= 5000


@sqlite_only
def test_the_migrated_schema_matches_the_models(tmp_path: Path) -> None:
    """Migrations build the schema from frozen SQL; the models must agree with it."""
    with open_store(tmp_path / "s.sqlite3") as s:
        for model in MODELS:
            table = model._meta.table_name
            columns = {row[1]: row for row in s.db.execute_sql(f'PRAGMA table_info("{table}")')}
            assert set(columns) == {f.column_name for f in model._meta.sorted_fields}, table
            for field in model._meta.sorted_fields:
                assert bool(columns[field.column_name][3]) == (not field.null) or field.primary_key, (table, field.name)
            indexes = {row[1] for row in s.db.execute_sql(f'PRAGMA index_list("{table}")') if row[3] == "c"}
            expected = {idx._name for idx in model._meta.fields_to_index()}
            assert expected <= indexes, table


def test_reopening_upgrades_nothing_and_keeps_data(db_target) -> None:
    path = db_target
    with open_store(path) as s:
        s.db.execute_sql("INSERT INTO setting (key, value) VALUES ('k', '1')")
    with open_store(path) as s:
        assert s.db.execute_sql("SELECT value FROM setting").fetchone()[0] == "1"


@sqlite_only
def test_an_older_schema_is_upgraded_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A later release adds a step; a file of the previous version gains it on open."""
    path = tmp_path / "s.sqlite3"
    open_store(path).close()

    def add_column(db) -> None:
        db.execute_sql("ALTER TABLE setting ADD COLUMN note TEXT")

    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, add_column])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with open_store(path) as s:
        assert s.schema_version() == SCHEMA_VERSION + 1
        assert "note" in {row[1] for row in s.db.execute_sql('PRAGMA table_info("setting")')}


@sqlite_only
def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    open_store(path).close()
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    con.close()
    with pytest.raises(StoreError, match="newer cw-tui"):
        open_store(path)


@sqlite_only
def test_a_corrupt_file_gives_a_message(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    path.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(StoreError, match="damaged or is not a cw-tui database"):
        open_store(path)


@sqlite_only
def test_another_programs_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="another program"):
        open_store(path)


@sqlite_only
def test_a_locked_database_gives_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.sqlite3"
    open_store(path).close()
    monkeypatch.setattr("cw_tui.store.database.BUSY_TIMEOUT_MS", 200)
    holder = sqlite3.connect(path)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        # the schema-upgrade path takes a write lock; force it by pretending to be older
        con = sqlite3.connect(path)
        con.close()
        monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
        monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, lambda db: None])
        with pytest.raises(StoreError, match="is busy: another program .* holds its write lock"):
            open_store(path)
    finally:
        holder.rollback()
        holder.close()


@sqlite_only
def test_cli_reports_store_errors_without_traceback(cli, tmp_path: Path) -> None:
    path = tmp_path / "bad.sqlite3"
    path.write_bytes(b"garbage" * 1000)
    result = cli("--db", path, "status")
    assert result.code == 2 and "damaged" in result.err and "Traceback" not in result.err


def test_two_threads_share_a_store(db_target) -> None:
    with open_store(db_target) as s:
        errors = []

        def write(n: int) -> None:
            try:
                for i in range(50):
                    s.db.execute_sql("INSERT INTO setting (key, value) VALUES (?, ?) "
                                     "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (f"k{n}-{i}", "v"))
            except Exception as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert s.db.execute_sql("SELECT COUNT(*) FROM setting").fetchone()[0] == 200


@sqlite_only
def test_a_version_1_file_is_upgraded_to_the_current_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "v1.sqlite3"
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:1])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 1)
    with open_store(path) as s:
        s.db.execute_sql("INSERT INTO setting (key, value) VALUES ('kept', '1')")
    monkeypatch.undo()
    with open_store(path) as s:
        assert s.schema_version() == SCHEMA_VERSION >= 2
        assert s.db.execute_sql("SELECT value FROM setting WHERE key='kept'").fetchone()[0] == "1"
        columns = {row[1] for row in s.db.execute_sql('PRAGMA table_info("invoice_line")')}
        assert "posted_agreement_id" in columns
        indexes = {row[1] for row in s.db.execute_sql('PRAGMA index_list("invoice_line")')}
        assert "invoice_line_period" in indexes  # version 3
