"""cw-tui: post cloud-marketplace invoice lines into ConnectWise Manage as Agreement Additions."""

import sys

__version__ = "0.1.0"

# peewee imports every database driver it finds when it is imported, and psycopg (the
# `postgres` extra) takes 50-100 ms to import (libpq and its TLS libraries): a SQLite user
# would pay for it at every start. This file runs before any module of cw_tui, so peewee is
# first imported here, without its PostgreSQL drivers; the store links psycopg to it when it
# opens a PostgreSQL database (store/psycopg_driver.py).
PEEWEE_SKIPS = ("psycopg", "psycopg2", "psycopg2cffi")


def _import_peewee_without_drivers() -> None:
    if "peewee" in sys.modules:
        return  # imported before cw_tui: with whatever it found, which works as well
    # A None in sys.modules makes `import name` fail with ImportError (the documented way to
    # block an import), which peewee takes as "not installed". A driver already imported costs
    # nothing more: peewee takes it as usual.
    blocked = [name for name in PEEWEE_SKIPS if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import peewee  # noqa: F401
    finally:
        for name in blocked:
            if sys.modules.get(name, "") is None:
                del sys.modules[name]


_import_peewee_without_drivers()
