"""The store's errors: what the screens and the CLI catch (they import nothing else of the store)."""

from __future__ import annotations

import sqlite3

import peewee as pw

try:
    from psycopg import Error as _PostgresError  # the driver's own, from a cursor used directly
except ImportError:
    _PostgresError = sqlite3.DatabaseError


class StoreError(Exception):
    """The database cannot be used; the message says why and what to do."""


DATABASE_ERRORS = (pw.DatabaseError, sqlite3.DatabaseError, _PostgresError, pw.OperationalError, pw.InterfaceError)
# everything the database can refuse with: a driver error, or our StoreError that names it
STORE_ERRORS = (*DATABASE_ERRORS, StoreError)
