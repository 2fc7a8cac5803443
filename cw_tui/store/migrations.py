"""Schema versions: `PRAGMA user_version` says which steps a file has had."""

from __future__ import annotations

from collections.abc import Callable

import peewee as pw


def _v1_initial_schema(db: pw.SqliteDatabase) -> None:
    from cw_tui.store.schema_v1 import STATEMENTS

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


def _v5_journal(db: pw.SqliteDatabase) -> None:
    """The journal of every write to ConnectWise, and run history (SPEC §10, §15)."""
    for column in ('"who" TEXT', '"trigger" TEXT', '"fingerprint" TEXT', '"adopted" INTEGER NOT NULL DEFAULT 0',
                   '"unchanged" INTEGER NOT NULL DEFAULT 0', '"synced_lines" INTEGER NOT NULL DEFAULT 0', '"totals" TEXT',
                   '"duration_s" REAL', '"note" TEXT', '"resolved_run_id" INTEGER'):
        db.execute_sql(f'ALTER TABLE "sync_run" ADD COLUMN {column}')
    # runs of earlier versions, in the states of run history
    db.execute_sql("UPDATE sync_run SET state = 'finished' WHERE kind = 'sync' AND state IN ('ok', 'partial')")
    db.execute_sql("UPDATE sync_run SET state = 'failed', note = 'the plan changed: nothing was sent' "
                   "WHERE kind = 'sync' AND state = 'refused'")
    db.execute_sql(
        'CREATE TABLE "journal" ("id" INTEGER NOT NULL PRIMARY KEY, "run_id" INTEGER NOT NULL, "period" TEXT, '
        '"action" TEXT NOT NULL, "marker" TEXT, "agreement_id" INTEGER, "addition_id" INTEGER, "subscription_id" TEXT, '
        '"contract_id" TEXT, "customer" TEXT NOT NULL, "currency" TEXT NOT NULL, "sent" TEXT, "before" TEXT, "after" TEXT, '
        '"amount" INTEGER, "outcome" TEXT NOT NULL, "error_status" INTEGER, "error_code" TEXT, "error_message" TEXT, '
        '"written_at" TEXT NOT NULL, "finished_at" TEXT, "resolved_at" TEXT, "resolved_run_id" INTEGER, "resolution" TEXT, '
        '"who" TEXT NOT NULL)')
    db.execute_sql('CREATE INDEX "journal_run_id" ON "journal" ("run_id")')
    db.execute_sql('CREATE INDEX "journal_marker" ON "journal" ("marker")')
    db.execute_sql('CREATE INDEX "journal_addition_id" ON "journal" ("addition_id")')
    db.execute_sql('CREATE INDEX "journal_outcome" ON "journal" ("outcome")')
    db.execute_sql('CREATE TABLE "journal_line" ("journal_id" INTEGER NOT NULL, "line_id" TEXT NOT NULL, '
                   'PRIMARY KEY ("journal_id", "line_id"))')
    db.execute_sql('CREATE INDEX "journal_line_line_id" ON "journal_line" ("line_id")')


def _v6_undo(db: pw.Database) -> None:
    """Undo of a run (SPEC §15): an undo run names the run it undoes, each of its journal
    entries the entry it reverts; `counts` holds an undo run's tallies (JSON)."""
    db.execute_sql('ALTER TABLE "sync_run" ADD COLUMN "undoes_run_id" INTEGER')
    db.execute_sql('ALTER TABLE "sync_run" ADD COLUMN "counts" TEXT')
    db.execute_sql('ALTER TABLE "journal" ADD COLUMN "undoes_id" INTEGER')
    db.execute_sql('CREATE INDEX "journal_undoes_id" ON "journal" ("undoes_id")')


def _who_changed(db: pw.Database) -> None:
    """Team mode (issue 17): who last changed a mapping or a line, and when: a person's change
    (an edit, a bulk update, auto-match), not a load's refresh (that is `updated_at`). A save
    compares `changed_at` with the one its editor read: another's save in between is refused."""
    for table in ("organization", "offer", "contract", "invoice_line"):
        for column in ("changed_by", "changed_at"):
            db.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN "{column}" TEXT')


# The indexes of schema 8, as the models name them (models.InvoiceLine.Meta): (name, columns).
GRID_INDEXES = (
    ("invoice_line_period_invoice_date_line_id", ("period", "invoice_date", "line_id")),
    ("invoice_line_period_total_line_id", ("period", "total", "line_id")),
    ("invoice_line_period_charge_type", ("period", "charge_type")),
)


def _v8_grid_indexes(db: pw.Database) -> None:
    """The Invoices grid works on one period at a time, whatever else the store holds: its
    sorts (Invoice Date, Total) walk an index of the period in the grid's order, the
    line ID (the tie-breaker) included, so a page is read without sorting the period; a
    Charge Type filter reads only the period's lines of those types. (period, invoice_date)
    gives way to its longer form."""
    db.execute_sql('DROP INDEX IF EXISTS "invoice_line_period_invoice_date"')
    for name, columns in GRID_INDEXES:
        quoted = ", ".join(f'"{column}"' for column in columns)
        db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{name}" ON "invoice_line" ({quoted})')


def _v9_dashboard_indexes(db: pw.Database) -> None:
    """The Dashboard read every line it counts (3 s at 15 months of 100k lines). When the newest
    synced line was posted: an index of the synced lines' posting times answers it. What is
    posted per period and currency: the index of (period, sync status) also holds the currency
    and the total, so the sums are read from it alone. PostgreSQL's form (postgres.UPGRADES)
    also leaves room on the invoice lines' pages."""
    db.execute_sql('CREATE INDEX IF NOT EXISTS "invoice_line_posted" ON "invoice_line" ("last_sync_at") '
                   "WHERE (\"sync_status\" = 'synced')")
    db.execute_sql('CREATE INDEX IF NOT EXISTS "invoice_line_period_sync_status_currency_total" ON "invoice_line" '
                   '("period", "sync_status", "currency", "total")')
    db.execute_sql('DROP INDEX IF EXISTS "invoice_line_period_sync_status"')


# Index i holds the step from version i to i+1. Never edit a released step: add a new one.
MIGRATIONS: list[Callable[[pw.SqliteDatabase], None]] = [
    _v1_initial_schema, _v2_sync_engine, _v3_period_index, _v4_period_loads, _v5_journal, _v6_undo, _who_changed,
    _v8_grid_indexes, _v9_dashboard_indexes,
]
# Steps written in SQL that PostgreSQL takes as well: a PostgreSQL database made by an older
# cw-tui is upgraded by these too (postgres.UPGRADES has the others' PostgreSQL form).
PORTABLE: set[Callable[[pw.Database], None]] = {_v6_undo, _who_changed, _v8_grid_indexes}
SCHEMA_VERSION = len(MIGRATIONS)
