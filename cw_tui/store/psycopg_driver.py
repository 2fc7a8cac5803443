"""psycopg, the PostgreSQL driver: imported when a PostgreSQL database is opened (postgres.py
asks for it), never for a SQLite store. It costs 50-100 ms to import (libpq and its TLS
libraries), so peewee is imported without it (cw_tui/__init__.py) and linked to it here.

Every statement the store runs on PostgreSQL, peewee's and its own (bulk loads, COPY), goes
through QmarkCursor: it takes the store's `?` SQL, and raises peewee's errors, never the
driver's, so that the store's DATABASE_ERRORS (store/errors.py) name no driver class.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import peewee as pw
import psycopg
from psycopg.pq import TransactionStatus
from psycopg.types.json import Json, Jsonb

from cw_tui.store.postgres import _has_qmark, _translate, pyformat

# What peewee's own import binds when it finds psycopg (its `import psycopg` block at the top of
# peewee.py; tests/test_postgres.py checks the list against that block).
PEEWEE_NAMES = {"psycopg": psycopg, "TransactionStatus": TransactionStatus, "Json_pg3": Json, "Jsonb_pg3": Jsonb}


def link_peewee() -> None:
    """Give peewee the driver it did not find at its import, as if it had: its PostgreSQL
    database then chooses its psycopg 3 adapter, which connects through this psycopg. Nothing
    is changed when peewee found psycopg itself (imported before cw_tui)."""
    for name, value in PEEWEE_NAMES.items():
        if getattr(pw, name, None) is None:
            setattr(pw, name, value)


link_peewee()


class Adapter(pw.Psycopg3Adapter):
    """peewee's psycopg 3 adapter. peewee sets its transaction states in the class body only
    when psycopg was there at its import; here they are in any case."""

    txn_idle = TransactionStatus.IDLE
    txn_inerror = TransactionStatus.INERROR
    txn_unknown = TransactionStatus.UNKNOWN


def peewee_error(error: psycopg.Error) -> Exception:
    """The peewee error for a driver's: the nearest DB-API class in its ancestry (psycopg has a
    class for each SQLSTATE, e.g. LockNotAvailable under OperationalError, SerializationFailure
    two levels under it: peewee's own wrapper looks one level up only)."""
    for cls in type(error).__mro__:
        mapped = pw.EXCEPTIONS.get(cls.__name__)
        if mapped is not None:
            return mapped(error, *error.args)
    return pw.DatabaseError(error, *error.args)


@contextmanager
def peewee_errors() -> Iterator[None]:
    try:
        yield
    except psycopg.Error as error:
        raise peewee_error(error) from error


class QmarkCursor(psycopg.Cursor):
    """A psycopg cursor that takes the store's SQL, and raises peewee's errors: every raw
    statement of the store runs through here, whether by execute_sql or on the cursor (the
    bulk loads, COPY)."""

    def execute(self, query, params=None, **kwargs):
        if isinstance(query, str):
            query, params = pyformat(query, params)
        with peewee_errors():
            return super().execute(query, params, **kwargs)

    def executemany(self, query, params_seq, **kwargs):
        if isinstance(query, str) and _has_qmark(query):
            query = _translate(query, True)
        with peewee_errors():
            return super().executemany(query, params_seq, **kwargs)

    @contextmanager
    def copy(self, statement, params=None, **kwargs):
        with peewee_errors(), super().copy(statement, params, **kwargs) as copy:
            yield copy

    def fetchone(self):
        with peewee_errors():
            return super().fetchone()

    def fetchmany(self, size: int = 0):
        with peewee_errors():
            return super().fetchmany(size)

    def fetchall(self):
        with peewee_errors():
            return super().fetchall()

    def __next__(self):  # iterating: psycopg's cursor is its own iterator
        with peewee_errors():
            return super().__next__()
