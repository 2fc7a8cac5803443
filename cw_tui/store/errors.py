"""The store's errors: what the screens and the CLI catch (they import nothing else of the store)."""

from __future__ import annotations

import sqlite3

import peewee as pw


class StoreError(Exception):
    """The database cannot be used; the message says why and what to do."""


# Everything the database can refuse with. No driver class of PostgreSQL: the store raises
# peewee's errors for psycopg's (store/psycopg_driver.py), so that a SQLite store never
# imports psycopg.
DATABASE_ERRORS = (pw.DatabaseError, sqlite3.DatabaseError, pw.OperationalError, pw.InterfaceError)
# and our StoreError, which names what the database refused and what to do
STORE_ERRORS = (*DATABASE_ERRORS, StoreError)
