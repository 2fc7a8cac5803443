"""The store's errors: what the screens and the CLI catch (they import nothing else of the store)."""

from __future__ import annotations

import sqlite3

import peewee as pw


class StoreError(Exception):
    """The database cannot be used; the message says why and what to do."""


DATABASE_ERRORS = (pw.DatabaseError, sqlite3.DatabaseError, pw.OperationalError, pw.InterfaceError)
# everything the database can refuse with: a driver error, or our StoreError that names it
STORE_ERRORS = (*DATABASE_ERRORS, StoreError)
