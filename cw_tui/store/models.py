"""The tables of the store, as peewee models (bound to the open database by open_store)."""

from __future__ import annotations

import peewee as pw

from cw_tui.store.fields import ISODateField, MicrosField, UTCDateTimeField


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
    # who last changed it by hand (an edit, a bulk update, auto-match), and when (migrations._who_changed)
    changed_by = pw.TextField(null=True)
    changed_at = UTCDateTimeField(null=True)


class Offer(BaseModel):
    """A Platform offer, and its mapping to a ConnectWise catalog product."""

    platform_id = pw.TextField(primary_key=True)
    name = pw.TextField(index=True)
    external_id = pw.TextField(null=True)  # None = the default offer of custom invoices ("n/a")
    vendor = pw.TextField(default="", index=True)
    product_id = pw.IntegerField(null=True, index=True)
    mapping_error = pw.TextField(null=True)
    updated_at = UTCDateTimeField()
    # who last changed it by hand (an edit, a bulk update, auto-match), and when (migrations._who_changed)
    changed_by = pw.TextField(null=True)
    changed_at = UTCDateTimeField(null=True)


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
    # who last changed it by hand (an edit, a bulk update, auto-match), and when (migrations._who_changed)
    changed_by = pw.TextField(null=True)
    changed_at = UTCDateTimeField(null=True)


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
    # who last changed it by hand (an edit, a bulk update, auto-match), and when (migrations._who_changed)
    changed_by = pw.TextField(null=True)
    changed_at = UTCDateTimeField(null=True)

    class Meta:
        indexes = (
            (("period",), False),
            # the grid's sorts and filters of one period (migrations._v8_grid_indexes)
            (("period", "invoice_date", "line_id"), False),
            (("period", "total", "line_id"), False),
            (("period", "charge_type"), False),
            # and what the Dashboard sums per period, read from the index alone (migrations._v9_dashboard_indexes)
            (("period", "sync_status", "currency", "total"), False),
            (("period", "organization_id"), False),
            (("period", "offer_id"), False),
            (("contract_id",), False),
            (("subscription_id",), False),
            (("claimed_by",), False),
        )


# the newest posting of a synced line (the Dashboard's "last posted"), read without reading
# every line: only synced lines are in it (migrations._v9_dashboard_indexes)
InvoiceLine.add_index(InvoiceLine.last_sync_at, where=(InvoiceLine.sync_status == "synced"), name="invoice_line_posted")


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
    """A run: a sync of a period (SPEC §15 run history), or a load or cache refresh recorded
    while it runs (services/activity.py)."""

    id = pw.AutoField()
    kind = pw.TextField()  # sync | undo | dry-run | organizations | products | invoices
    period = pw.TextField(null=True)
    started_at = UTCDateTimeField()
    finished_at = UTCDateTimeField(null=True)
    # a sync: running | finished | interrupted | failed (before v5: ok | partial | refused);
    # a load: running | ok | failed. A running row whose process is gone is shown interrupted.
    state = pw.TextField(default="running")
    owner = pw.TextField(null=True)  # host:pid of the process that runs it
    created = pw.IntegerField(default=0)
    updated = pw.IntegerField(default=0)
    cancelled = pw.IntegerField(default=0)
    agreements_created = pw.IntegerField(default=0)
    skipped = pw.IntegerField(default=0)
    errors = pw.IntegerField(default=0)
    api_calls = pw.IntegerField(default=0)
    # v5: run history (SPEC §15)
    who = pw.TextField(null=True)  # CW_TUI_USER, else the OS user
    trigger = pw.TextField(null=True)  # app | cli | scheduled
    fingerprint = pw.TextField(null=True)  # of the plan the run executed
    adopted = pw.IntegerField(default=0)
    unchanged = pw.IntegerField(default=0)
    synced_lines = pw.IntegerField(default=0)
    totals = pw.TextField(null=True)  # JSON: currency -> amount posted (Decimal as text)
    duration_s = pw.FloatField(null=True)
    note = pw.TextField(null=True)  # why it failed, or what a later run found of it
    resolved_run_id = pw.IntegerField(null=True)  # the run that released an interrupted run's claims
    # v6: an undo run (kind "undo") names the run it undoes, and keeps its tallies (JSON)
    undoes_run_id = pw.IntegerField(null=True)
    counts = pw.TextField(null=True)


class JournalEntry(BaseModel):
    """v5: one write to ConnectWise (SPEC §10 journal), committed before its request is sent and
    completed with its outcome; an adoption (nothing sent, an Addition taken over) too. Kept for
    good: never purged with the logs. Values are JSON with Decimals as text."""

    class Meta:
        table_name = "journal"

    id = pw.AutoField()
    run_id = pw.IntegerField(index=True)
    period = pw.TextField(null=True)  # the run's period
    action = pw.TextField()  # create | update | cancel | adopt | new_agreement
    marker = pw.TextField(null=True, index=True)
    agreement_id = pw.IntegerField(null=True)
    addition_id = pw.IntegerField(null=True, index=True)
    subscription_id = pw.TextField(null=True)
    contract_id = pw.TextField(null=True)  # new_agreement: the contract it is for
    customer = pw.TextField(default="")
    currency = pw.TextField(default="")
    sent = pw.TextField(null=True)  # the request's body (JSON)
    before = pw.TextField(null=True)  # update, cancel: what the Addition held before (JSON)
    after = pw.TextField(null=True)  # what cw-tui means the Addition to hold after it (adopt: what it held) (JSON)
    amount = MicrosField(null=True)  # quantity x unit price of `after`
    outcome = pw.TextField(default="pending", index=True)  # pending | done | error | unknown
    error_status = pw.IntegerField(null=True)
    error_code = pw.TextField(null=True)
    error_message = pw.TextField(null=True)
    written_at = UTCDateTimeField()
    finished_at = UTCDateTimeField(null=True)
    # an unknown outcome, resolved by a later look in ConnectWise
    resolved_at = UTCDateTimeField(null=True)
    resolved_run_id = pw.IntegerField(null=True)
    resolution = pw.TextField(null=True)
    who = pw.TextField(default="")
    undoes_id = pw.IntegerField(null=True, index=True)  # v6: an undo's entry names the entry it reverts


class JournalLine(BaseModel):
    """v5: the invoice lines a journal entry covers."""

    journal_id = pw.IntegerField()
    line_id = pw.TextField(index=True)

    class Meta:
        primary_key = pw.CompositeKey("journal_id", "line_id")


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
    JournalEntry,
    JournalLine,
]
