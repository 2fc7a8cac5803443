"""The sync core: one way to post a month, for the CLI, the Mapping screen and the daily
sync alike: `prepare_plan` (what would be done, read from the store and ConnectWise), a
person's confirmation of its fingerprint, then `run_sync(expect_plan=...)` executes that plan
or raises PlanChanged. `reconcile` compares a posted month with what ConnectWise holds.
"""

from cw_tui.store.sync_reads import periods_to_sync, plan_lines
from cw_tui.sync.claims import owner_name, release_stale_claims
from cw_tui.sync.errors import AgreementUnavailable, PlanChanged, SyncNotReady
from cw_tui.sync.plan import (
    build_plan,
    prepare_plan,
    read_markers,
    values_in_connectwise,
)
from cw_tui.sync.reconcile import (
    Mismatch,
    ReconcileReport,
    reconcile,
    totals_by_currency,
)
from cw_tui.sync.results import SyncResult, money, totals_json
from cw_tui.sync.run import run_sync

__all__ = [
    "AgreementUnavailable", "Mismatch", "PlanChanged", "ReconcileReport", "SyncNotReady", "SyncResult", "build_plan", "money",
    "owner_name", "periods_to_sync", "plan_lines", "prepare_plan", "read_markers", "reconcile",
    "release_stale_claims", "run_sync", "totals_by_currency", "totals_json", "values_in_connectwise",
]
