"""The store: every table, query and transaction of cw-tui's database. Nothing above this
package writes SQL. `database` opens and guards the file, `models` and `migrations` define it,
`sqlite` holds what only SQLite understands, `fields` how values are kept (money: rules/money.py), the
grid engine (`grid`) and the app's grids (`grid_sources`), and the
query modules (`line_sql`, `queries`, ...) answer the screens, the CLI and the sync engine.
"""

from cw_tui.store.database import (
    APP_ID,
    BUSY_TIMEOUT_MS,
    Store,
    describe_error,
    first_cause,
    lock_holder,
    open_store,
    owner_alive,
    process_alive,
)
from cw_tui.store.errors import DATABASE_ERRORS, StoreError
from cw_tui.store.fields import (
    ISODateField,
    MicrosField,
    UTCDateTimeField,
    now_utc,
    utc_to_text,
)
from cw_tui.store.migrations import MIGRATIONS, SCHEMA_VERSION
from cw_tui.store.models import (
    MODELS,
    Agreement,
    AgreementType,
    BaseModel,
    Company,
    CompanyStatus,
    Contract,
    InvoiceLine,
    JournalEntry,
    JournalLine,
    LoadedPeriod,
    LogEntry,
    Offer,
    Organization,
    PeriodNewSubscription,
    Product,
    Setting,
    SubscriptionAddition,
    SyncRun,
)

__all__ = [
    "APP_ID", "BUSY_TIMEOUT_MS", "DATABASE_ERRORS", "MIGRATIONS", "MODELS", "SCHEMA_VERSION", "Agreement",
    "AgreementType", "BaseModel", "Company", "CompanyStatus", "Contract", "ISODateField", "InvoiceLine", "JournalEntry", "JournalLine",
    "LoadedPeriod", "LogEntry", "MicrosField", "Offer", "Organization", "PeriodNewSubscription", "Product",
    "Setting", "Store", "StoreError", "SubscriptionAddition", "SyncRun", "UTCDateTimeField", "describe_error",
    "first_cause", "lock_holder", "now_utc", "open_store", "owner_alive", "process_alive", "utc_to_text",
]
