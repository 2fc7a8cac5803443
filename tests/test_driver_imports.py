"""psycopg is imported only for a PostgreSQL store: peewee is imported without it
(cw_tui/__init__.py) and linked to it when a PostgreSQL database is opened
(store/psycopg_driver.py). Each case runs in a fresh process: what a process imported first
decides."""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import peewee
import pytest

from cw_tui.store import DATABASE_ERRORS, open_store

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


SQLITE_START = """
import json, sys
from cw_tui.cli import main  # what the cw-tui command imports
import cw_tui.app
from cw_tui.store import open_store
with open_store(sys.argv[1]) as store:
    store.db.execute_sql("SELECT 1")
print(json.dumps({"drivers": sorted(m for m in sys.modules if m.startswith("psycopg"))}))
"""


def test_a_sqlite_store_never_imports_psycopg(tmp_path: Path) -> None:
    assert _run(SQLITE_START, str(tmp_path / "s.sqlite3")) == {"drivers": []}


POSTGRES_START = """
import json, sys
if sys.argv[2] == "driver-first":
    import psycopg, peewee  # peewee imported before cw_tui finds the driver itself
from cw_tui.store import DATABASE_ERRORS, open_store, Setting
import peewee as pw
linked_before = pw.psycopg is not None
with open_store(sys.argv[1]) as store:
    Setting.insert(key="k", value="v").execute()
    with store.atomic():
        Setting.update(value="w").where(Setting.key == "k").execute()
    with store.db.cursor().copy("COPY setting (key, value) FROM STDIN") as copy:
        copy.write_row(("c", "3"))
    rows = [tuple(r) for r in store.db.execute_sql("SELECT key, value FROM setting WHERE key IN (?, ?) ORDER BY key", ("c", "k"))]
    try:
        store.db.cursor().execute("SELECT 1/0")
        refused = ""
    except DATABASE_ERRORS as error:
        refused = type(error).__name__
    Setting.delete().where(Setting.key.in_(["c", "k"])).execute()
print(json.dumps({"linked_before": linked_before, "rows": rows, "refused": refused,
                  "adapter": type(store.db._adapter).__name__}))
"""


@pytest.mark.parametrize("order", ["cw-tui-first", "driver-first"])
def test_a_postgres_store_works_whichever_imported_peewee_first(pg_databases, order: str) -> None:
    url = pg_databases.create()
    answer = _run(POSTGRES_START, url, order)
    assert answer == {"linked_before": order == "driver-first", "rows": [["c", "3"], ["k", "w"]],
                      "refused": "DataError", "adapter": "Adapter"}
    pg_databases.drop(url)


def test_the_link_gives_peewee_every_name_its_import_would() -> None:
    """The names peewee binds in its own `import psycopg` block are the ones link_peewee
    sets: a peewee that binds another one fails here, not on a user's PostgreSQL."""
    from cw_tui.store.psycopg_driver import PEEWEE_NAMES

    tree = ast.parse(inspect.getsource(peewee))
    blocks = [node for node in tree.body if isinstance(node, ast.Try)
              and any(isinstance(s, ast.Import) and any(a.name == "psycopg" for a in s.names) for s in node.body)]
    assert len(blocks) == 1
    bound = {alias.asname or alias.name.split(".")[0] for s in blocks[0].body if isinstance(s, ast.Import | ast.ImportFrom)
             for alias in s.names}
    assert bound == set(PEEWEE_NAMES)


@pytest.mark.both_backends
def test_what_the_database_refuses_is_one_of_the_store_errors(db_target) -> None:
    """On both backends, through peewee and on the store's own cursor (the bulk loads): the
    screens and the CLI catch DATABASE_ERRORS, which names no driver's class."""
    with open_store(db_target) as store:
        with pytest.raises(DATABASE_ERRORS):
            store.db.execute_sql("SELECT * FROM no_such_table")
        with pytest.raises(DATABASE_ERRORS):
            store.db.cursor().execute("SELECT * FROM no_such_table")
        if store.is_postgres:  # a class two levels under OperationalError (peewee's wrapper looks one up)
            with pytest.raises(peewee.OperationalError):
                store.db.cursor().execute("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40001'; END $$")
