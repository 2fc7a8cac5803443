"""The Products tab's actions: Load Products."""

from __future__ import annotations

from cw_tui.rules.words import plural
from cw_tui.screens.base import guarded
from cw_tui.screens.mapping.base import MappingBase, _Busy
from cw_tui.screens.mapping_modals import (
    LoadProductsModal,
)
from cw_tui.tasks import run_service


class ProductsActions(MappingBase):
    @guarded
    def action_load_products(self) -> None:
        self._to_tab("load_products")
        folder = self._folder_or_warn()
        if folder is not None:
            self.app.push_screen(LoadProductsModal(), lambda months: months and self._load_products(folder, months))

    def _load_products(self, folder, months: int) -> None:
        from cw_tui.platform.files import PlatformDataError
        from cw_tui.platform.importer import load_products
        from cw_tui.rules.periods import months_back
        from cw_tui.services import system_log

        since = months_back(self.app.now().date(), months)

        def job():
            with _Busy(self, "load-products", "products-busy", f"Loading offers of the last {months} months…"):
                return load_products(self.app.store, folder, since)

        def failed(error: BaseException) -> bool:
            if isinstance(error, PlatformDataError):
                self._platform_error("Load Products", error)
                return True
            return False

        def done(report) -> None:
            self.app.notify(f"Loaded {plural(report.offers, 'offer')} ({report.offers_added} new).")
            self.refresh_data()

        run_service(self, "Load Products", job, category=system_log.Category.PRODUCTS, done=done, failed=failed,
                    group="load-products")
