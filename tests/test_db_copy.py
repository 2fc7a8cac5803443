"""Moving in (issue 17): `cw-tui db copy --to TARGET` between real SQLite files and databases of
the suite's PostgreSQL server, and `cw-tui db migrate` with the README's owner and app roles."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from cw_tui.sandbox.server import SandboxThread, build_sandbox, demo_faults
from cw_tui.store import MODELS, SCHEMA_VERSION, open_store
from cw_tui.store import copy as store_copy
from cw_tui.store.postgres import redact
from tests.conftest import db_connect
from tests.sync_helpers import assert_exactly_once, cw_env, set_up_as_finance

pytestmark = pytest.mark.postgres_only  # every test here has a PostgreSQL side: new_db gives its databases
P1, P2 = "2026-09", "2026-10"


def dump(target: Path | str) -> dict[str, list[dict]]:
    """Every row of every table, by column name (the two backends order columns differently),
    booleans as SQLite keeps them, in a stable order."""
    con = db_connect(target)
    try:
        out = {}
        for model in MODELS:
            cursor = con.cursor()
            cursor.execute(f'SELECT * FROM "{model._meta.table_name}"')
            names = [d[0] for d in cursor.description]
            rows = [{n: int(v) if isinstance(v, bool) else v for n, v in zip(names, row, strict=True)}
                    for row in cursor.fetchall()]
            out[model._meta.table_name] = sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))
        return out
    finally:
        con.close()


def counts(result) -> dict[str, int]:
    return {t["table"]: t["target"] for t in result.json()["tables"]}


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sqlite_to_postgres_and_back_keeps_every_row(cli, journaled, tmp_path: Path, new_db) -> None:
    source = tmp_path / "journal.sqlite3"
    original = dump(source)
    assert original["journal"] and original["sync_run"] and original["log_entry"] and original["setting"]
    assert any(r["sync_status"] == "synced" and r["addition_id"] for r in original["invoice_line"])
    from tests.app_helpers import FIXED_CREDENTIALS

    # ConnectWise credentials are not in the store (a file of the user's): none to copy or show
    assert FIXED_CREDENTIALS.private_key not in json.dumps(original, default=str)
    pg = new_db("pg", migrated=False)  # a new, empty database: the copy gives it the schema

    there = cli("--db", source, "db", "copy", "--to", pg, "--json")
    assert there.code == 0, there.err
    assert counts(there) == {table: len(rows) for table, rows in original.items()}
    assert all(t["source"] == t["copied"] == t["target"] for t in there.json()["tables"])
    assert there.json()["target"] == redact(pg) and there.json()["rows"] == sum(map(len, original.values()))
    assert dump(pg) == original
    with open_store(pg) as store:
        assert store.schema_version() == SCHEMA_VERSION

    back = tmp_path / "back.sqlite3"
    again = cli("--db", pg, "db", "copy", "--to", back, "--json")
    assert again.code == 0, again.err
    assert counts(again) == counts(there)
    assert dump(back) == original
    assert FIXED_CREDENTIALS.private_key not in there.out + there.err + again.out + again.err
    # the app's own reads agree on the copy: run history, the journal, the synced lines
    assert cli("--db", back, "runs", "--json").json() == cli("--db", source, "runs", "--json").json()
    assert cli("--db", pg, "status", "--json").json()["periods"] == cli("--db", source, "status", "--json").json()["periods"]


def test_postgres_to_postgres(cli, journaled, tmp_path: Path, new_db) -> None:
    source = tmp_path / "journal.sqlite3"
    first, second = new_db("a", migrated=False), new_db("b", migrated=False)
    assert cli("--db", source, "db", "copy", "--to", first).code == 0
    result = cli("--db", first, "db", "copy", "--to", second, "--json")
    assert result.code == 0, result.err
    assert result.json()["source"] == redact(first) and dump(second) == dump(source)
    assert cli("--db", first, "db", "copy", "--to", first).code == 2  # itself


def test_the_table_says_what_was_copied(cli, journaled, tmp_path: Path, new_db) -> None:
    pg = new_db("pg", migrated=False)
    result = cli("--db", tmp_path / "journal.sqlite3", "db", "copy", "--to", pg)
    assert result.code == 0, result.err
    assert f"to {redact(pg)}" in result.out and "every table's count checked" in result.out
    lines = {line.split()[0]: line.split()[1:] for line in result.out.splitlines()[2:] if line.strip()}
    assert lines["journal"][0] == lines["journal"][1] != "0"
    assert set(lines) == {m._meta.table_name for m in MODELS}


def test_batches_cross_table_boundaries_and_keep_order(cli, journaled, tmp_path: Path, new_db,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Small batches: every table takes several, PostgreSQL's server-side cursor included."""
    monkeypatch.setattr(store_copy, "BATCH", 7)
    source = tmp_path / "journal.sqlite3"
    pg = new_db("pg", migrated=False)
    assert cli("--db", source, "db", "copy", "--to", pg).code == 0
    back = tmp_path / "back.sqlite3"
    assert cli("--db", pg, "db", "copy", "--to", back).code == 0
    assert dump(back) == dump(source)
    # a SQLite copy keeps a period's lines together in file order (the grids' rowid ranges)
    con = db_connect(back)
    periods = [p for (p,) in con.execute("SELECT period FROM invoice_line ORDER BY rowid")]
    con.close()
    assert periods == sorted(periods)


def test_a_target_with_rows_is_refused_untouched(cli, journaled, tmp_path: Path, new_db) -> None:
    source = tmp_path / "journal.sqlite3"
    pg = new_db("pg", migrated=False)
    assert cli("--db", source, "db", "copy", "--to", pg).code == 0
    before = dump(pg)
    refused = cli("--db", source, "db", "copy", "--to", pg)
    assert refused.code == 1
    assert f"database {redact(pg)} is not empty" in refused.err and "nothing was copied" in refused.err
    assert "Traceback" not in refused.err and refused.out == ""
    assert dump(pg) == before

    # a SQLite file with one row is refused too, byte for byte unchanged
    filled = tmp_path / "filled.sqlite3"
    with open_store(filled) as store:
        store.db.execute_sql("INSERT INTO setting (key, value) VALUES ('x', '1')")
    digest = file_hash(filled)
    again = cli("--db", pg, "db", "copy", "--to", filled)
    assert again.code == 1 and f"database {filled} is not empty (table setting has rows)" in again.err
    assert file_hash(filled) == digest


def test_a_target_at_the_schema_but_empty_is_taken(cli, journaled, tmp_path: Path, new_db) -> None:
    pg = new_db("pg")  # migrated already, no rows
    assert cli("--db", tmp_path / "journal.sqlite3", "db", "copy", "--to", pg).code == 0


def test_a_failed_copy_leaves_the_target_empty(cli, journaled, tmp_path: Path, new_db) -> None:
    """A journal insert that fails (a trigger, as a failing disk would) after the tables before
    it were copied: the one transaction is rolled back, the target holds no row, exit 2."""
    pg = new_db("pg")
    con = db_connect(pg)
    con.execute("CREATE FUNCTION no_journal() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'disk I/O error'; END $$")
    con.execute("CREATE TRIGGER no_journal BEFORE INSERT ON journal FOR EACH ROW EXECUTE FUNCTION no_journal()")
    con.commit()
    con.close()
    failed = cli("--db", tmp_path / "journal.sqlite3", "db", "copy", "--to", pg)
    assert failed.code == 2 and "nothing was copied" in failed.err and "disk I/O error" in failed.err, failed.err
    assert "Traceback" not in failed.err
    assert all(not rows for rows in dump(pg).values())

    into = tmp_path / "into.sqlite3"
    open_store(into).close()
    con = db_connect(into)
    con.execute("CREATE TRIGGER no_journal BEFORE INSERT ON journal BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
    con.commit()
    con.close()
    failed = cli("--db", tmp_path / "journal.sqlite3", "db", "copy", "--to", into)
    assert failed.code == 2 and "nothing was copied" in failed.err, failed.err
    assert all(not rows for rows in dump(into).values())


def test_refusals_name_the_problem(cli, journaled, tmp_path: Path, new_db) -> None:
    source = tmp_path / "journal.sqlite3"
    same = cli("--db", source, "db", "copy", "--to", source)
    assert same.code == 2 and "is the database being copied" in same.err
    secret = new_db("pg", migrated=False).replace("cwtui@", "cwtui:hunter2@")
    with_password = cli("--db", source, "db", "copy", "--to", secret)
    assert with_password.code == 2 and "hunter2" not in with_password.err + with_password.out
    assert "password does not go in the URL" in with_password.err
    nowhere = cli("--db", source, "db", "copy", "--to", tmp_path / "no-such-folder" / "x.sqlite3")
    assert nowhere.code == 2 and "does not exist" in nowhere.err
    assert cli("--db", source, "db").code == 2


class WriteCounter:
    """Counts the sandbox's write requests (every method but GET) as they reach it."""

    def __init__(self, app) -> None:
        self.app, self.writes = app, 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] != "GET":
            self.writes += 1
        await self.app(scope, receive, send)


def test_must_show_4_the_demo_store_moves_to_postgres_and_posts_nothing_again(
        cli, demo_folder: Path, tmp_path: Path, new_db, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 17, Must show 4: the demo's SQLite store (as `cw-tui demo` makes it, its sandbox with
    the demo's throttle), a month synced there; copied to PostgreSQL, a sync there posts
    nothing, reconcile is clean, and the next month's sync posts each of its lines once, in a
    run numbered after the copied ones."""
    sandbox = build_sandbox(7, demo_faults())
    counter = WriteCounter(sandbox.app)
    sandbox.app = counter
    with SandboxThread(sandbox) as running:
        for key, value in cw_env(running).items():
            monkeypatch.setenv(key, value)
        demo = tmp_path / "demo.sqlite3"
        set_up_as_finance(cli, demo, demo_folder, P1, sync=True)
        synced = cli("--db", demo, "status", "--json").json()
        assert next(p for p in synced["periods"] if p["period"] == P1)["synced"] > 50
        runs_before = cli("--db", demo, "runs", "--json").json()

        pg = new_db("team", migrated=False)
        copied = cli("--db", demo, "db", "copy", "--to", pg, "--json")
        assert copied.code == 0, copied.err
        lines = dump(pg)["invoice_line"]
        assert lines == dump(demo)["invoice_line"]
        assert all(r["addition_id"] for r in lines if r["sync_status"] == "synced")

        writes = counter.writes
        again = cli("--db", pg, "sync", "--period", P1, "--json")
        assert again.code == 0, again.err
        summary = again.json()
        assert summary["created"] == summary["updated"] == summary["cancelled"] == summary["agreements_created"] == 0
        assert counter.writes == writes  # not one POST, PATCH or PUT
        reconciled = cli("--db", pg, "reconcile", "--period", P1, "--json")
        assert reconciled.code == 0 and reconciled.json()["mismatches"] == [], reconciled.out
        assert summary["run_id"] > max(r["id"] for r in runs_before)  # the sequence moved past the copied runs

        assert cli("--db", pg, "load-invoices", "--period", P2).code == 0
        assert cli("--db", pg, "automap", "--include").code == 0
        assert cli("--db", pg, "sync", "--period", P2).code == 0
        assert counter.writes > writes
        assert_exactly_once(running, pg)
        assert cli("--db", pg, "reconcile", "--period", P2, "--json").json()["mismatches"] == []
        ids = [r["id"] for r in cli("--db", pg, "runs", "--json").json()]
        assert len(ids) == len(set(ids))


# ---- the README's roles: an owner that runs migrations, an app role with only the rights it needs

ROLE_SETUP_AS_OWNER = [  # README, "Team mode: the roles" (run connected to the database as its owner)
    "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
    "GRANT USAGE ON SCHEMA public TO {app}",
    "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}",
    "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {app}",
]


@pytest.fixture
def roles(pg_server, pg_databases):
    """A database owned by an owner role, and an app role, set up as the README says."""
    import os

    import psycopg

    suffix = os.getpid()
    owner, app, name = f"cwtui_owner_{suffix}", f"cwtui_app_{suffix}", f"team_{suffix}"
    admin = psycopg.connect(pg_server.url(), autocommit=True)
    for sql in (f"CREATE ROLE {owner} LOGIN", f"CREATE ROLE {app} LOGIN", f"CREATE DATABASE {name} OWNER {owner}",
                f"REVOKE ALL ON DATABASE {name} FROM PUBLIC", f"GRANT CONNECT, TEMPORARY ON DATABASE {name} TO {app}"):
        admin.execute(sql)
    base = pg_server.url(name)
    urls = {who: base.replace("cwtui@", f"{role}@") for who, role in (("owner", owner), ("app", app))}
    with psycopg.connect(urls["owner"], autocommit=True) as connection:
        for sql in ROLE_SETUP_AS_OWNER:
            connection.execute(sql.format(owner=owner, app=app))
    yield urls
    from cw_tui.store import database

    for url in urls.values():
        entry = database._OPEN.pop(url, None)
        if entry is not None and not entry[0].is_closed():
            entry[0].close()
    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.execute(f"DROP ROLE IF EXISTS {app}")
    admin.execute(f"DROP ROLE IF EXISTS {owner}")
    admin.close()


def test_the_app_role_syncs_but_leaves_migrations_to_the_owner(cli, roles, demo_folder: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # a migration due (here the first: the schema itself): the app role is told who must run it
    refused = cli("--db", roles["app"], "status")
    assert refused.code == 2, refused.err
    assert "db migrate" in refused.err and "owner" in refused.err and "Traceback" not in refused.err
    assert cli("--db", roles["app"], "db", "migrate").code == 2

    migrated = cli("--db", roles["owner"], "db", "migrate", "--json")
    assert migrated.code == 0, migrated.err
    assert migrated.json()["schema_before"] == 0 and migrated.json()["schema"] == SCHEMA_VERSION
    assert "nothing to do" in cli("--db", roles["owner"], "db", "migrate").out
    # an upgrade due on a database in use (its mark one step back): refused with the same words
    import psycopg

    with psycopg.connect(roles["owner"], autocommit=True) as connection:
        connection.execute("UPDATE cw_tui_meta SET value = value - 1 WHERE key = 'schema_version'")
        older = cli("--db", roles["app"], "status")
        assert older.code == 2 and f"is at schema {SCHEMA_VERSION - 1}, this cw-tui needs {SCHEMA_VERSION}" in older.err
        assert "db migrate" in older.err and "must be owner" in older.err, older.err
        mark = connection.execute("SELECT value FROM cw_tui_meta WHERE key = 'schema_version'").fetchone()[0]
        assert mark == SCHEMA_VERSION - 1  # rolled back: nothing changed
        connection.execute("UPDATE cw_tui_meta SET value = value + 1 WHERE key = 'schema_version'")

    with SandboxThread(build_sandbox(7)) as running:
        for key, value in cw_env(running).items():
            monkeypatch.setenv(key, value)
        set_up_as_finance(cli, roles["app"], demo_folder, P1, sync=True)
        assert_exactly_once(running, roles["app"])
    assert "nothing to do" in cli("--db", roles["app"], "db", "migrate").out

    # the app role may not change the schema, whatever it tries
    with psycopg.connect(roles["app"], autocommit=True) as connection:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute('ALTER TABLE "invoice_line" ADD COLUMN "x" TEXT')
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute('CREATE TABLE "x" ("y" TEXT)')


def test_db_migrate_upgrades_an_older_sqlite_file(cli, tmp_path: Path) -> None:
    import sqlite3

    from cw_tui.store import APP_ID
    from cw_tui.store.schema_v1 import STATEMENTS

    old = tmp_path / "v1.sqlite3"
    con = sqlite3.connect(old)
    for statement in STATEMENTS:  # schema version 1, as the first release wrote it
        con.execute(statement)
    con.execute(f"PRAGMA application_id = {APP_ID}")
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()
    result = cli("--db", old, "db", "migrate", "--json")
    assert result.code == 0, result.err
    assert result.json() == {"database": str(old), "schema_before": 1, "schema": SCHEMA_VERSION}
    again = cli("--db", old, "db", "migrate")
    assert again.code == 0 and f"is at schema {SCHEMA_VERSION}, this cw-tui's: nothing to do" in again.out
