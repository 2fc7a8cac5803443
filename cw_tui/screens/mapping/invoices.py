"""The Invoices tab's actions: Load Invoices, the plan and the sync (SPEC §10)."""

from __future__ import annotations

from textual.widgets import ProgressBar, Select

from cw_tui.rules.words import plural
from cw_tui.screens.base import guarded
from cw_tui.screens.mapping.base import MappingBase, _Busy
from cw_tui.screens.mapping_modals import (
    ConfirmRemovalsModal,
    LoadInvoicesModal,
    SyncPlanModal,
)
from cw_tui.tasks import run_service
from cw_tui.widgets.grid import SqlGrid


class InvoicesActions(MappingBase):
    @guarded
    def action_load_invoices(self) -> None:
        self._to_tab("load_invoices")
        folder = self._folder_or_warn()
        if folder is not None:
            self.app.push_screen(LoadInvoicesModal(self.app.now().date()), lambda which: which and self._load_invoices(folder, self._periods(which)))

    def _periods(self, which: list[str]) -> list[str]:
        from cw_tui.rules.periods import resolve_period

        return [resolve_period(w, self.app.now().date()) for w in which]

    def _load_invoices(self, folder, periods: list[str], allow_removals: str | None = None) -> None:
        from cw_tui.platform.files import PlatformDataError
        from cw_tui.platform.importer import RemovalsNeedConsent, load_invoices
        from cw_tui.services import settings, system_log

        store = self.app.store

        def job():
            with _Busy(self, "load-invoices", "invoices-busy", f"Loading {', '.join(periods)}…"):
                return load_invoices(store, folder, periods, settings.load_configuration(store).rules,
                                     allow_removals=allow_removals)

        def failed(error: BaseException) -> bool:
            if isinstance(error, PlatformDataError):
                self._platform_error("Load Invoices", error)
                return True
            if isinstance(error, RemovalsNeedConsent):
                self.app.push_screen(ConfirmRemovalsModal(error),
                                     lambda remove: self._removals_answered(folder, periods, error, remove))
                return True
            return False

        def done(report) -> None:
            text = "; ".join(f"{p.period}: {plural(p.lines, 'line')} ({p.summary()})" for p in report.periods)
            self.app.notify(f"Loaded {text}.")
            self._after_load(periods[-1] if len(periods) == 1 else max(periods))

        run_service(self, "Load Invoices", job, category=system_log.Category.INVOICES, done=done, failed=failed,
                    group="load-invoices")

    def _removals_answered(self, folder, periods: list[str], need, remove: bool | None) -> None:
        if remove:
            self._load_invoices(folder, periods, need.consent)  # asks again if the lines to remove have changed
        else:
            self.app.notify(f"Nothing was loaded: the {plural(need.count, 'unsynced line')} {'is' if need.count == 1 else 'are'} kept.")

    def _after_load(self, period: str) -> None:
        self._fill_periods()
        self.query_one("#period", Select).value = period
        self.refresh_data()


    @guarded
    def action_sync_invoices(self) -> None:
        self._to_tab("sync_invoices")
        period = self.query_one("#period", Select).value
        if not isinstance(period, str):
            self.app.notify("Load invoice lines first.", severity="warning")
            return
        self._plan(period)

    def _plan(self, period: str, only_lines: set[str] | None = None, accepted=None) -> None:
        """The plan first (SPEC §10): read in a worker, shown in the plan modal."""
        import asyncio

        from cw_tui.services import system_log
        from cw_tui.services.connectwise_data import CacheShrinkRefused
        from cw_tui.sync import prepare_plan

        store = self.app.store

        def job():
            with _Busy(self, "sync-invoices", "invoices-busy", "Planning…"):
                async def go():
                    async with self._client() as client:
                        # `accepted`: a person said the smaller agreements list is right
                        return await prepare_plan(store, client, period, only_lines=only_lines,
                                                  today=self.app.now().date(), accepted=accepted)
                return asyncio.run(go())

        def failed(error: BaseException) -> bool:
            if isinstance(error, CacheShrinkRefused):
                self._ask_shrink(error, lambda: self._plan(period, only_lines, error))
                return True
            return False

        run_service(self, "Planning the sync", job, category=system_log.Category.SYNC, failed=failed,
                    done=lambda plan: self._show_plan(plan, only_lines), group="sync-invoices")

    def _show_plan(self, plan, only_lines: set[str] | None, changed: bool = False) -> None:
        """The plan a person confirms is the plan posted: its fingerprint goes with the run."""
        self.app.push_screen(SyncPlanModal(plan, changed=changed),
                             lambda ok: ok and self._sync(plan.period, only_lines, plan.fingerprint))

    def _sync(self, period: str, only_lines: set[str] | None = None, fingerprint: str | None = None) -> None:
        """Post the confirmed plan through the sync core; a plan that changed meanwhile sends
        nothing and is shown again."""
        import asyncio
        import time

        from cw_tui.services import system_log
        from cw_tui.sync import PlanChanged, run_sync

        store = self.app.store
        bar = self.query_one("#sync-progress", ProgressBar)
        grid = self.query_one("#grid-invoices", SqlGrid)
        last_reload = [0.0]
        bar.add_class("-running")

        def progress(done: int, total: int) -> None:
            self.app.call_from_thread(bar.update, total=total, progress=done)
            if time.monotonic() - last_reload[0] > 0.5:  # each line's Status in PSA as it goes
                last_reload[0] = time.monotonic()
                self.app.call_from_thread(grid.reload)

        def job():
            with _Busy(self, "sync-invoices", "invoices-busy", "Posting to ConnectWise…"):
                async def go():
                    async with self._client() as client:
                        return await run_sync(store, client, period, only_lines=only_lines, progress=progress,
                                              expect_plan=fingerprint, today=self.app.now().date())
                try:
                    return asyncio.run(go())
                finally:
                    self.app.call_from_thread(bar.remove_class, "-running")

        def failed(error: BaseException) -> bool:
            if isinstance(error, PlanChanged):
                self.app.notify(str(error), severity="warning", timeout=12)
                if error.plan is not None:
                    self._show_plan(error.plan, only_lines, True)
                return True
            return False

        def done(result) -> None:
            adopted = f", {result.adopted} already in ConnectWise" if result.adopted else ""
            self.app.notify(
                f"{period}: {plural(result.synced_lines, 'line')} synced ({result.created:,} created, "
                f"{result.updated:,} updated, {result.cancelled:,} cancelled{adopted}); {result.skipped:,} skipped; "
                f"{plural(result.errors, 'error')}.", severity="error" if result.errors else "information", timeout=12)
            self.refresh_data()

        run_service(self, "Sync", job, category=system_log.Category.SYNC, done=done, failed=failed, group="sync-invoices")
