"""What the sync core raises for its own conditions (nothing was sent in either case)."""

from __future__ import annotations

from cw_tui.rules.sync_plan import (
    Plan,
)


class SyncNotReady(Exception):
    """Configuration missing (agreement type); nothing was sent."""


class PlanChanged(Exception):
    """SPEC §10: the plan a person confirmed is not what the run would do now (the store or
    ConnectWise changed); nothing was sent. `plan` is the new plan, when there is one."""

    def __init__(self, message: str, plan: Plan | None = None):
        super().__init__(message)
        self.plan = plan


class AgreementUnavailable(Exception):
    """The sync core's own reason why a line cannot get its agreement in this run (another run
    is creating it, the company has no default contact); the line becomes Error with it."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def details(self) -> str:
        return self.message
