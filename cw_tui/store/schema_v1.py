"""Schema version 1, frozen as the SQL it was first released with.

Migrations replay these statements on a new file, so later changes to the peewee models never
rewrite history: a model change ships as a new migration step in store.MIGRATIONS, and
tests/test_store.py checks that the migrated schema matches the models.
"""

STATEMENTS = [
    'CREATE TABLE IF NOT EXISTS "agreement" ("id" INTEGER NOT NULL PRIMARY KEY, "name" TEXT NOT NULL, "company_id" INTEGER NOT NULL, "type_id" INTEGER, "type_name" TEXT, "status" TEXT NOT NULL, "cancelled" INTEGER NOT NULL, "synced_at" TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "agreement_company_id" ON "agreement" ("company_id")',
    'CREATE TABLE IF NOT EXISTS "agreement_type" ("id" INTEGER NOT NULL PRIMARY KEY, "name" TEXT NOT NULL, "inactive" INTEGER NOT NULL, "synced_at" TEXT NOT NULL)',
    'CREATE TABLE IF NOT EXISTS "company" ("id" INTEGER NOT NULL PRIMARY KEY, "identifier" TEXT NOT NULL, "name" TEXT NOT NULL, "status_id" INTEGER, "status_name" TEXT, "deleted" INTEGER NOT NULL, "default_contact_id" INTEGER, "synced_at" TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "company_identifier" ON "company" ("identifier")',
    'CREATE INDEX IF NOT EXISTS "company_name" ON "company" ("name")',
    'CREATE TABLE IF NOT EXISTS "company_status" ("id" INTEGER NOT NULL PRIMARY KEY, "name" TEXT NOT NULL, "inactive" INTEGER NOT NULL, "synced_at" TEXT NOT NULL)',
    'CREATE TABLE IF NOT EXISTS "contract" ("platform_id" TEXT NOT NULL PRIMARY KEY, "organization_id" TEXT NOT NULL, "billing_day" INTEGER NOT NULL, "currency" TEXT NOT NULL, "contract_type" TEXT NOT NULL, "agreement_id" INTEGER, "updated_at" TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "contract_organization_id" ON "contract" ("organization_id")',
    'CREATE TABLE IF NOT EXISTS "invoice_line" ("line_id" TEXT NOT NULL PRIMARY KEY, "period" TEXT NOT NULL, "invoice_number" TEXT NOT NULL, "invoice_date" TEXT NOT NULL, "invoice_status" TEXT NOT NULL, "organization_id" TEXT NOT NULL, "contract_id" TEXT NOT NULL, "subscription_id" TEXT NOT NULL, "subscription_name" TEXT NOT NULL, "offer_id" TEXT NOT NULL, "charge_type" TEXT NOT NULL, "billing_cycle" TEXT NOT NULL, "quantity" INTEGER NOT NULL, "unit_price" INTEGER NOT NULL, "unit_cost" INTEGER NOT NULL, "total" INTEGER NOT NULL, "currency" TEXT NOT NULL, "platform_charge_start" TEXT NOT NULL, "platform_charge_end" TEXT, "charge_start" TEXT NOT NULL, "charge_start_badge" TEXT NOT NULL, "charge_end" TEXT, "charge_end_badge" TEXT NOT NULL, "override_company_id" INTEGER, "override_product_id" INTEGER, "override_agreement_id" INTEGER, "sync_status" TEXT NOT NULL, "addition_id" INTEGER, "last_error" TEXT, "last_sync_at" TEXT, "claimed_by" TEXT, "claimed_at" TEXT, "loaded_at" TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "invoice_line_period_invoice_date" ON "invoice_line" ("period", "invoice_date")',
    'CREATE INDEX IF NOT EXISTS "invoice_line_period_sync_status" ON "invoice_line" ("period", "sync_status")',
    'CREATE INDEX IF NOT EXISTS "invoice_line_period_organization_id" ON "invoice_line" ("period", "organization_id")',
    'CREATE INDEX IF NOT EXISTS "invoice_line_period_offer_id" ON "invoice_line" ("period", "offer_id")',
    'CREATE INDEX IF NOT EXISTS "invoice_line_contract_id" ON "invoice_line" ("contract_id")',
    'CREATE INDEX IF NOT EXISTS "invoice_line_subscription_id" ON "invoice_line" ("subscription_id")',
    'CREATE TABLE IF NOT EXISTS "log_entry" ("id" INTEGER NOT NULL PRIMARY KEY, "timestamp" TEXT NOT NULL, "level" TEXT NOT NULL, "category" TEXT NOT NULL, "summary" TEXT NOT NULL, "details" TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "log_entry_timestamp" ON "log_entry" ("timestamp")',
    'CREATE INDEX IF NOT EXISTS "log_entry_level" ON "log_entry" ("level")',
    'CREATE INDEX IF NOT EXISTS "log_entry_category" ON "log_entry" ("category")',
    'CREATE TABLE IF NOT EXISTS "offer" ("platform_id" TEXT NOT NULL PRIMARY KEY, "name" TEXT NOT NULL, "external_id" TEXT, "vendor" TEXT NOT NULL, "product_id" INTEGER, "mapping_error" TEXT, "updated_at" TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "offer_name" ON "offer" ("name")',
    'CREATE INDEX IF NOT EXISTS "offer_vendor" ON "offer" ("vendor")',
    'CREATE INDEX IF NOT EXISTS "offer_product_id" ON "offer" ("product_id")',
    'CREATE TABLE IF NOT EXISTS "organization" ("platform_id" TEXT NOT NULL PRIMARY KEY, "name" TEXT NOT NULL, "reference" TEXT NOT NULL, "status" TEXT NOT NULL, "excluded" INTEGER NOT NULL, "company_id" INTEGER, "mapping_error" TEXT, "first_seen_at" TEXT NOT NULL, "updated_at" TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "organization_name" ON "organization" ("name")',
    'CREATE INDEX IF NOT EXISTS "organization_reference" ON "organization" ("reference")',
    'CREATE INDEX IF NOT EXISTS "organization_excluded" ON "organization" ("excluded")',
    'CREATE INDEX IF NOT EXISTS "organization_company_id" ON "organization" ("company_id")',
    'CREATE TABLE IF NOT EXISTS "product" ("id" INTEGER NOT NULL PRIMARY KEY, "identifier" TEXT NOT NULL, "description" TEXT NOT NULL, "inactive" INTEGER NOT NULL, "synced_at" TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "product_identifier" ON "product" ("identifier")',
    'CREATE INDEX IF NOT EXISTS "product_description" ON "product" ("description")',
    'CREATE TABLE IF NOT EXISTS "setting" ("key" TEXT NOT NULL PRIMARY KEY, "value" TEXT NOT NULL)',
    'CREATE TABLE IF NOT EXISTS "sync_run" ("id" INTEGER NOT NULL PRIMARY KEY, "kind" TEXT NOT NULL, "period" TEXT, "started_at" TEXT NOT NULL, "finished_at" TEXT, "state" TEXT NOT NULL, "owner" TEXT, "created" INTEGER NOT NULL, "updated" INTEGER NOT NULL, "cancelled" INTEGER NOT NULL, "agreements_created" INTEGER NOT NULL, "skipped" INTEGER NOT NULL, "errors" INTEGER NOT NULL, "api_calls" INTEGER NOT NULL)',
]
