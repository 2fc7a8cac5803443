"""The local store: one SQLite file (WAL, busy timeout) holding Platform data, the cached
ConnectWise records, the mappings, the configuration, sync runs and the System Logs.

Credentials are *not* here (see credentials.py). The schema is versioned with
`PRAGMA user_version`; `open_store` upgrades an older file in place, in one transaction.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import peewee as pw

from cw_tui.services.money import from_micros, to_micros

APP_ID = 0x63777475  # "cwtu": marks the file as ours (PRAGMA application_id)


def _busy_timeout_ms() -> int:
    """How long a write waits for another process's write lock (CW_TUI_LOCK_TIMEOUT seconds)."""
    try:
        return max(0, int(float(os.environ.get("CW_TUI_LOCK_TIMEOUT", "10")) * 1000))
    except ValueError:
        return 10_000


BUSY_TIMEOUT_MS = _busy_timeout_ms()


class StoreError(Exception):
    """The database cannot be used; the message says why and what to do."""


DATABASE_ERRORS = (pw.DatabaseError, sqlite3.DatabaseError, pw.OperationalError, pw.InterfaceError)


# ---------------------------------------------------------------- field types


class MicrosField(pw.BigIntegerField):
    """A Decimal stored exactly as integer micro-units."""

    def db_value(self, value: Decimal | None) -> int | None:
        return None if value is None else to_micros(Decimal(value))

    def python_value(self, value: int | None) -> Decimal | None:
        return None if value is None else from_micros(int(value))


class UTCDateTimeField(pw.TextField):
    """Aware UTC datetimes stored as sortable ISO text ('2026-11-21T21:00:00.000000Z')."""

    def db_value(self, value: datetime | None) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC field")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def python_value(self, value: str | None) -> datetime | None:
        if value is None:
            return None
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class ISODateField(pw.TextField):
    """A date stored as 'YYYY-MM-DD' (sorts correctly, reads back as a date)."""

    def db_value(self, value: date | None) -> str | None:
        return None if value is None else value.isoformat()

    def python_value(self, value: str | None) -> date | None:
        return None if value is None else date.fromisoformat(value)


def utc_to_text(value: datetime) -> str:
    return UTCDateTimeField().db_value(value)  # type: ignore[return-value]


# ---------------------------------------------------------------- models


class BaseModel(pw.Model):
    class Meta:
        database = None  # bound by open_store
        legacy_table_names = False


class Organization(BaseModel):
    """A Platform customer organization, and its mapping to a ConnectWise company."""

    platform_id = pw.TextField(primary_key=True)
    name = pw.TextField(index=True)
    reference = pw.TextField(default="", index=True)
    status = pw.TextField(default="Active")
    # New organizations stay out of sync until a person includes them (SPEC §5.1).
    excluded = pw.BooleanField(default=True, index=True)
    company_id = pw.IntegerField(null=True, index=True)
    mapping_error = pw.TextField(null=True)
    first_seen_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()


class Offer(BaseModel):
    """A Platform offer, and its mapping to a ConnectWise catalog product."""

    platform_id = pw.TextField(primary_key=True)
    name = pw.TextField(index=True)
    external_id = pw.TextField(null=True)  # None = the default offer of custom invoices ("n/a")
    vendor = pw.TextField(default="", index=True)
    product_id = pw.IntegerField(null=True, index=True)
    mapping_error = pw.TextField(null=True)
    updated_at = UTCDateTimeField()


class Contract(BaseModel):
    """A Platform invoice contract, and its mapping to a ConnectWise agreement."""

    platform_id = pw.TextField(primary_key=True)
    organization_id = pw.TextField(index=True)
    billing_day = pw.IntegerField()
    currency = pw.TextField()
    contract_type = pw.TextField(default="")
    agreement_id = pw.IntegerField(null=True)
    updated_at = UTCDateTimeField()
    # v2: a sync creating this contract's agreement (SPEC §8 rule 4) claims it first
    agreement_claimed_by = pw.TextField(null=True)
    agreement_claimed_at = UTCDateTimeField(null=True)


class InvoiceLine(BaseModel):
    """One Platform invoice line: its Platform values (refreshed while unsynced), charge dates
    with badges, per-line overrides and its state in ConnectWise."""

    line_id = pw.TextField(primary_key=True)
    period = pw.TextField()  # YYYY-MM of the invoice date
    invoice_number = pw.TextField()
    invoice_date = ISODateField()
    invoice_status = pw.TextField()
    organization_id = pw.TextField()
    contract_id = pw.TextField()
    subscription_id = pw.TextField()
    subscription_name = pw.TextField()
    offer_id = pw.TextField()
    charge_type = pw.TextField()
    billing_cycle = pw.TextField()
    quantity = MicrosField()
    unit_price = MicrosField()
    unit_cost = MicrosField()
    total = MicrosField()
    currency = pw.TextField()
    platform_charge_start = ISODateField()
    platform_charge_end = ISODateField(null=True)
    charge_start = ISODateField()
    charge_start_badge = pw.TextField(default="default")
    charge_end = ISODateField(null=True)
    charge_end_badge = pw.TextField(default="default")
    # Per-line overrides (SPEC §6): they win over the organization/offer/contract mappings.
    override_company_id = pw.IntegerField(null=True)
    override_product_id = pw.IntegerField(null=True)
    override_agreement_id = pw.IntegerField(null=True)
    # not_synced | claimed | synced | error  (claimed = a sync owns it; see the sync engine)
    sync_status = pw.TextField(default="not_synced")
    addition_id = pw.IntegerField(null=True)
    last_error = pw.TextField(null=True)
    last_sync_at = UTCDateTimeField(null=True)
    claimed_by = pw.TextField(null=True)
    claimed_at = UTCDateTimeField(null=True)
    loaded_at = UTCDateTimeField()
    # v2: the agreement an attempt posted (or was about to post) to: set before the request,
    # so an unknown outcome is resolved by looking the marker up on that agreement.
    posted_agreement_id = pw.IntegerField(null=True)
    posted_run_id = pw.IntegerField(null=True)

    class Meta:
        indexes = (
            (("period",), False),
            (("period", "invoice_date"), False),
            (("period", "sync_status"), False),
            (("period", "organization_id"), False),
            (("period", "offer_id"), False),
            (("contract_id",), False),
            (("subscription_id",), False),
            (("claimed_by",), False),
        )


class SubscriptionAddition(BaseModel):
    """The persistent Addition of a recurring subscription (SPEC §7): created once, then
    updated; cancelled when a later period has no recurring line for it."""

    subscription_id = pw.TextField(primary_key=True)
    marker = pw.TextField(unique=True)
    agreement_id = pw.IntegerField(null=True)
    addition_id = pw.IntegerField(null=True)
    state = pw.TextField(default="pending")  # pending (not known to exist yet) | active | cancelled
    billing_cycle = pw.TextField(default="Monthly")
    product_id = pw.IntegerField(null=True)
    quantity = MicrosField(null=True)
    unit_price = MicrosField(null=True)
    unit_cost = MicrosField(null=True)
    effective_date = ISODateField(null=True)
    cancelled_date = ISODateField(null=True)
    description = pw.TextField(null=True)
    invoice_description = pw.TextField(null=True)
    company_id = pw.IntegerField(null=True)
    currency = pw.TextField(null=True)
    last_period = pw.TextField(null=True)
    claimed_by = pw.TextField(null=True)
    claimed_at = UTCDateTimeField(null=True)
    created_run_id = pw.IntegerField(null=True)
    updated_at = UTCDateTimeField()


class Company(BaseModel):
    """Cached ConnectWise company."""

    id = pw.IntegerField(primary_key=True)
    identifier = pw.TextField(index=True)
    name = pw.TextField(index=True)
    status_id = pw.IntegerField(null=True)
    status_name = pw.TextField(null=True)
    deleted = pw.BooleanField(default=False)
    default_contact_id = pw.IntegerField(null=True)
    synced_at = UTCDateTimeField()


class CompanyStatus(BaseModel):
    id = pw.IntegerField(primary_key=True)
    name = pw.TextField()
    inactive = pw.BooleanField(default=False)
    synced_at = UTCDateTimeField()


class Product(BaseModel):
    """Cached ConnectWise catalog item."""

    id = pw.IntegerField(primary_key=True)
    identifier = pw.TextField(index=True)
    description = pw.TextField(index=True)
    inactive = pw.BooleanField(default=False)
    synced_at = UTCDateTimeField()


class AgreementType(BaseModel):
    id = pw.IntegerField(primary_key=True)
    name = pw.TextField()
    inactive = pw.BooleanField(default=False)
    synced_at = UTCDateTimeField()


class Agreement(BaseModel):
    """Cached ConnectWise agreement."""

    id = pw.IntegerField(primary_key=True)
    name = pw.TextField()
    company_id = pw.IntegerField(index=True)
    type_id = pw.IntegerField(null=True)
    type_name = pw.TextField(null=True)
    status = pw.TextField(default="Active")
    cancelled = pw.BooleanField(default=False)
    synced_at = UTCDateTimeField()


class Setting(BaseModel):
    """Configuration, one JSON value per key (see settings.py)."""

    key = pw.TextField(primary_key=True)
    value = pw.TextField()


class SyncRun(BaseModel):
    id = pw.AutoField()
    kind = pw.TextField()  # sync | dry-run | organizations | products | invoices
    period = pw.TextField(null=True)
    started_at = UTCDateTimeField()
    finished_at = UTCDateTimeField(null=True)
    state = pw.TextField(default="running")  # running | ok | partial | failed
    owner = pw.TextField(null=True)  # host:pid of the process that runs it
    created = pw.IntegerField(default=0)
    updated = pw.IntegerField(default=0)
    cancelled = pw.IntegerField(default=0)
    agreements_created = pw.IntegerField(default=0)
    skipped = pw.IntegerField(default=0)
    errors = pw.IntegerField(default=0)
    api_calls = pw.IntegerField(default=0)


class LoadedPeriod(BaseModel):
    """v4: what the last load of a period saw in the Platform export. A period is open
    (SPEC §7) until its month has ended and the export holds no New invoice for it."""

    class Meta:
        table_name = "period_load"

    period = pw.TextField(primary_key=True)
    loaded_at = UTCDateTimeField()
    new_lines = pw.IntegerField(default=0)  # lines of invoices still in status New (not loaded)


class PeriodNewSubscription(BaseModel):
    """v4: subscriptions on a period's New invoices: billed, so never cancelled."""

    period = pw.TextField()
    subscription_id = pw.TextField()

    class Meta:
        primary_key = pw.CompositeKey("period", "subscription_id")


class LogEntry(BaseModel):
    id = pw.AutoField()
    timestamp = UTCDateTimeField(index=True)
    level = pw.TextField(index=True)  # INFO | WARNING | ERROR
    category = pw.TextField(index=True)
    summary = pw.TextField()
    details = pw.TextField(default="")


MODELS: list[type[BaseModel]] = [
    Organization,
    Offer,
    Contract,
    InvoiceLine,
    SubscriptionAddition,
    Company,
    CompanyStatus,
    Product,
    AgreementType,
    Agreement,
    Setting,
    SyncRun,
    LogEntry,
    LoadedPeriod,
    PeriodNewSubscription,
]

# ---------------------------------------------------------------- migrations


def _v1_initial_schema(db: pw.SqliteDatabase) -> None:
    from cw_tui.services.schema_v1 import STATEMENTS

    for statement in STATEMENTS:
        db.execute_sql(statement)

def _v2_sync_engine(db: pw.SqliteDatabase) -> None:
    """Claims and persistent additions for the sync engine."""
    db.execute_sql('ALTER TABLE "invoice_line" ADD COLUMN "posted_agreement_id" INTEGER')
    db.execute_sql('ALTER TABLE "invoice_line" ADD COLUMN "posted_run_id" INTEGER')
    db.execute_sql('ALTER TABLE "contract" ADD COLUMN "agreement_claimed_by" TEXT')
    db.execute_sql('ALTER TABLE "contract" ADD COLUMN "agreement_claimed_at" TEXT')
    db.execute_sql('CREATE INDEX "invoice_line_claimed_by" ON "invoice_line" ("claimed_by")')
    db.execute_sql(
        'CREATE TABLE "subscription_addition" ("subscription_id" TEXT NOT NULL PRIMARY KEY, "marker" TEXT NOT NULL, '
        '"agreement_id" INTEGER, "addition_id" INTEGER, "state" TEXT NOT NULL, "billing_cycle" TEXT NOT NULL, '
        '"product_id" INTEGER, "quantity" INTEGER, "unit_price" INTEGER, "unit_cost" INTEGER, "effective_date" TEXT, '
        '"cancelled_date" TEXT, "description" TEXT, "invoice_description" TEXT, "company_id" INTEGER, "currency" TEXT, '
        '"last_period" TEXT, "claimed_by" TEXT, "claimed_at" TEXT, "created_run_id" INTEGER, "updated_at" TEXT NOT NULL)'
    )
    db.execute_sql('CREATE UNIQUE INDEX "subscription_addition_marker" ON "subscription_addition" ("marker")')


def _v3_period_index(db: pw.SqliteDatabase) -> None:
    """An index on the period alone: the grids find a period's first and last row in it at
    once, and scan the rows between in file order instead of one index lookup per line."""
    db.execute_sql('CREATE INDEX IF NOT EXISTS "invoice_line_period" ON "invoice_line" ("period")')


def _v4_period_loads(db: pw.SqliteDatabase) -> None:
    """What each period's last load saw: New invoices keep a period open (no cancels)."""
    db.execute_sql('CREATE TABLE "period_load" ("period" TEXT NOT NULL PRIMARY KEY, "loaded_at" TEXT NOT NULL, '
                   '"new_lines" INTEGER NOT NULL)')
    db.execute_sql('CREATE TABLE "period_new_subscription" ("period" TEXT NOT NULL, "subscription_id" TEXT NOT NULL, '
                   'PRIMARY KEY ("period", "subscription_id"))')


# Index i holds the step from version i to i+1. Never edit a released step: add a new one.
MIGRATIONS: list[Callable[[pw.SqliteDatabase], None]] = [
    _v1_initial_schema, _v2_sync_engine, _v3_period_index, _v4_period_loads,
]
SCHEMA_VERSION = len(MIGRATIONS)


# ---------------------------------------------------------------- opening


class Store:
    """An open store. Models are bound to its database while it is open."""

    def __init__(self, path: Path, db: pw.SqliteDatabase):
        self.path = path
        self.db = db
        self._closed = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        key = str(self.path.resolve())
        entry = _OPEN.get(key)
        if entry is not None and entry[0] is self.db:
            if entry[1] > 1:
                _OPEN[key] = (entry[0], entry[1] - 1)
                return
            del _OPEN[key]
        if not self.db.is_closed():
            self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def atomic(self, lock_type: str = "IMMEDIATE") -> Iterator[pw._transaction]:
        """A write transaction that takes the write lock at its start. A deferred one that
        reads first and writes later fails at once with "database is locked" (SQLite's
        BUSY_SNAPSHOT in WAL mode) when another process wrote in between; waiting for the
        lock up front lets the busy timeout do its job.

        When SQLite has already rolled back by itself (a full disk, an I/O error), peewee's
        own ROLLBACK fails with "no transaction is active": the first error is the one that
        says what happened, so it is the one raised."""
        transaction = self.db.atomic(lock_type)
        helper = transaction.__enter__()
        try:
            yield helper
        except BaseException as error:
            try:
                transaction.__exit__(type(error), error, error.__traceback__)
            except DATABASE_ERRORS:
                pass
            raise
        try:
            transaction.__exit__(None, None, None)
        except DATABASE_ERRORS as error:
            cause = first_cause(error)  # the failed COMMIT, under the failed ROLLBACK(s)
            if cause is error:
                raise
            raise cause from None

    def describe(self, error: BaseException) -> str:
        """A database error in a finance user's words: the file, the cause, what to do."""
        return describe_error(self.path, error)

    def schema_version(self) -> int:
        return self.db.execute_sql("PRAGMA user_version").fetchone()[0]


def lock_holder(path: Path) -> str:
    """Which cw-tui is working on the database, when it says so: its running operation is a
    committed row, which a reader sees while that process holds the write lock."""
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1)
        try:
            rows = con.execute("SELECT kind, period, owner, started_at FROM sync_run WHERE state = 'running' "
                               "ORDER BY id DESC LIMIT 5").fetchall()
        finally:
            con.close()
    except (sqlite3.Error, OSError, ValueError):
        return ""
    for kind, period, owner, started in rows:
        host, _, rest = (owner or "").partition("|")
        pid = rest.split("|", 1)[0]
        if host == socket.gethostname() and pid.isdigit() and not process_alive(int(pid)):
            continue  # a run left by a process that is gone holds nothing
        what = {"sync": "a sync", "invoices": "a load of invoice lines", "products": "a load of products",
                "organizations": "a sync of organizations"}.get(kind, kind)
        where = f"process {pid}" + (f" on {host}" if host and host != socket.gethostname() else "")
        return f"{what}{' of ' + period if period else ''} ({where}, started {(started or '')[:16].replace('T', ' ')} UTC)"
    return ""


def first_cause(error: BaseException) -> BaseException:
    """A failed ROLLBACK after SQLite rolled back by itself hides the error that says why."""
    while "no transaction is active" in str(error) and isinstance(error.__context__, DATABASE_ERRORS):
        error = error.__context__
    return error


def process_alive(pid: int) -> bool:
    """Whether a process of this machine still runs (a claim's or a run's owner)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe_error(path: Path, error: BaseException) -> str:
    error = first_cause(error)
    text = str(error).lower()
    if "locked" in text or "busy" in text:
        holder = lock_holder(path)
        who = f"another cw-tui holds its write lock ({holder})" if holder else \
            "another program (perhaps another cw-tui) holds its write lock"
        return f"database {path} is busy: {who}; nothing was changed. Try again when it has finished"
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return (
            f"database {path} is damaged or is not a cw-tui database ({error}); "
            "restore it from a backup or choose another file with --db"
        )
    if ("disk" in text and ("full" in text or "i/o" in text)) or "too big" in text or "file too large" in text:
        return f"cannot write database {path}: the disk is full or failing ({error}); nothing was changed. Free some space and try again"
    if "readonly" in text or "read-only" in text or "permission" in text:
        return f"cannot write database {path}: it is read-only for this user ({error}); nothing was changed"
    if "unable to open" in text:
        return f"cannot open database {path}: check that the file and its folder exist and can be written"
    return f"database {path} cannot be used: {error}"


# One database object per file in a process: the models are bound to one database at a
# time, and two objects on one file would give one thread two connections, each waiting for
# the other's write lock.
_OPEN: dict[str, tuple[pw.SqliteDatabase, int]] = {}


def open_store(path: Path | str, *, migrate: bool = True, create_folder: bool = True) -> Store:
    """Open (creating if needed) and upgrade the store at `path`; binds the models to it.
    `create_folder` is for the default location only: a mistyped --db must not quietly
    become a new, empty database somewhere."""
    path = Path(path).expanduser()
    key = str(path.resolve())
    shared = _OPEN.get(key)
    if shared is not None:
        db, count = shared
        _OPEN[key] = (db, count + 1)
        db.bind(MODELS, bind_refs=False, bind_backrefs=False)
        return Store(path, db)
    if path.is_dir():
        raise StoreError(f"{path} is a folder, not a database file: give a file name, e.g. {path / 'cw-tui.sqlite3'}")
    if not path.parent.is_dir():
        if not create_folder:
            raise StoreError(f"the folder {path.parent} does not exist, so database {path} cannot be created there; "
                             "check the path (--db or CW_TUI_DB), or create the folder first")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"cannot create the folder for database {path}: {error.strerror}") from None
    db = pw.SqliteDatabase(
        str(path),
        timeout=BUSY_TIMEOUT_MS / 1000,
        pragmas={
            "journal_mode": "wal",
            "busy_timeout": BUSY_TIMEOUT_MS,
            "synchronous": "normal",
            "foreign_keys": 1,
            "cache_size": -65536,  # 64 MiB: grids sort and count 100k-line periods
            "mmap_size": 268_435_456,  # reads through the OS page cache: full scans are about 30% faster
            "temp_store": 2,  # the grids' sets of matching rows are temp tables: keep them in memory
        },
        check_same_thread=False,
    )
    try:
        db.connect()
        version = db.execute_sql("PRAGMA user_version").fetchone()[0]
        app_id = db.execute_sql("PRAGMA application_id").fetchone()[0]
        tables = {row[0] for row in db.execute_sql("SELECT name FROM sqlite_master WHERE type='table'")}
        if version == 0 and tables:
            raise StoreError(f"{path} is an SQLite file of another program, not a cw-tui database")
        if version and app_id != APP_ID:
            raise StoreError(f"{path} is an SQLite file of another program, not a cw-tui database")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"database {path} was written by a newer cw-tui (schema {version}, this one "
                f"knows {SCHEMA_VERSION}); upgrade cw-tui"
            )
        db.bind(MODELS, bind_refs=False, bind_backrefs=False)
        if migrate and version < SCHEMA_VERSION:
            _migrate(db, version)
    except StoreError:
        db.close()
        raise
    except DATABASE_ERRORS as error:
        db.close()
        raise StoreError(describe_error(path, error)) from None
    _OPEN[key] = (db, 1)
    return Store(path, db)


def _migrate(db: pw.SqliteDatabase, version: int) -> None:
    # BEGIN IMMEDIATE: two processes upgrading at once serialise instead of racing.
    with db.atomic("IMMEDIATE"):
        current = db.execute_sql("PRAGMA user_version").fetchone()[0]
        for step in range(current, SCHEMA_VERSION):
            MIGRATIONS[step](db)
        db.execute_sql(f"PRAGMA application_id = {APP_ID}")
        db.execute_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")


def now_utc() -> datetime:
    return datetime.now(UTC)
