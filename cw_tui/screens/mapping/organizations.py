"""The Organizations tab's actions: Sync Organizations, auto-match, include or exclude."""

from __future__ import annotations

from textual.widgets import TabbedContent

from cw_tui.rules.safe_text import safe_text
from cw_tui.rules.words import plural
from cw_tui.screens.base import guarded
from cw_tui.screens.mapping.base import MappingBase, _Busy
from cw_tui.screens.mapping_modals import (
    AutomapModal,
    Matches,
    ShrinkModal,
)
from cw_tui.store import queries
from cw_tui.tasks import run_service
from cw_tui.widgets.grid import SqlGrid


class OrganizationsActions(MappingBase):

    @guarded
    def action_sync_organizations(self) -> None:
        self._to_tab("sync_organizations")
        self._sync_organizations()

    def _ask_shrink(self, refused, on_replace) -> None:
        """A refresh that would drop more than half of a cached list waits for a person."""
        def answered(replace: bool | None) -> None:
            if replace:
                on_replace()
            else:
                self.app.notify("Kept the cached lists: nothing was changed.")

        self.app.push_screen(ShrinkModal(refused.shrinks), self.guard(answered))

    def _sync_organizations(self, accepted=None) -> None:
        import asyncio

        from cw_tui.platform.files import PlatformDataError
        from cw_tui.services import system_log
        from cw_tui.services.connectwise_data import CacheShrinkRefused, sync_organizations

        store = self.app.store

        def job():
            with _Busy(self, "sync-organizations", "organizations-busy", "Sync in progress…"):
                if accepted is not None:
                    return accepted.accept()

                async def go():
                    async with self._client() as client:
                        return await sync_organizations(store, client)
                return asyncio.run(go())

        def failed(error: BaseException) -> bool:
            if isinstance(error, CacheShrinkRefused):
                self._ask_shrink(error, lambda: self._sync_organizations(error))
                return True
            if isinstance(error, PlatformDataError):
                self._platform_error("Sync Organizations", error)
                return True
            return False

        def done(result) -> None:
            self.app.notify(f"{result.organizations} organizations on recent invoices ({result.organizations_added} new); "
                            f"{result.companies} ConnectWise companies, {result.products} products and "
                            f"{result.agreements} agreements.")
            self.refresh_data()

        run_service(self, "Sync Organizations", job, category=system_log.Category.ORGANIZATIONS, done=done, failed=failed,
                    group="sync-organizations")

    @guarded
    def action_automatch(self) -> None:
        self._to_tab("automatch")
        from cw_tui.services.connectwise_data import automap

        found = automap(self.app.store, dry_run=True)
        if not found.organizations and not found.offers:
            self.app.notify("No unmapped organization or offer has an exact, unique match. "
                            "Run Sync Organizations first if ConnectWise data is missing.")
            return

        def chosen(answer: str | None) -> None:
            if answer:
                done = automap(self.app.store, include=answer == "map_include")
                self.app.notify(f"Mapped {plural(len(done.organizations), 'organization')} and "
                                f"{plural(len(done.offers), 'offer')}.")
                self.refresh_data()

        self.app.push_screen(AutomapModal(Matches(found.organizations, found.offers, found.not_active)), self.guard(chosen))

    @guarded
    def action_toggle_excluded(self) -> None:
        """`x`: the organization of the row under the cursor (on a line, the line's), on the tab shown."""
        from cw_tui.services.mapping import MappingError, toggle_excluded

        tab = self.query_one(TabbedContent).active
        if tab == "products":
            self.app.notify("x includes or excludes an organization: use it on the Organizations or Invoices tab.")
            return
        key = self.query_one(f"#grid-{tab}", SqlGrid).current_key()
        if key is None:
            return
        if tab == "invoices":
            key = queries.line_organization(self.app.store, key)
            if key is None:
                return
        try:
            name, excluded = toggle_excluded(self.app.store, key)
        except MappingError as error:
            self.app.notify(str(error), severity="error", markup=False)
            return
        self.app.notify(f"{safe_text(name)} is now {'excluded from' if excluded else 'included in'} sync.", markup=False)
        for grid in (self.query_one("#grid-organizations", SqlGrid), self.query_one("#grid-invoices", SqlGrid)):
            grid.reload()  # its lines' Mapping Status changed too
