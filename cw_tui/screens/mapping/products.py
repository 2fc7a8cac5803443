"""The Products tab's actions: Load Products."""

from __future__ import annotations

from textual import work

from cw_tui.screens.base import guarded
from cw_tui.screens.mapping.base import MappingBase, _Busy
from cw_tui.screens.mapping_modals import (
    LoadProductsModal,
)


class ProductsActions(MappingBase):
    @guarded
    def action_load_products(self) -> None:
        self._to_tab("load_products")
        folder = self._folder_or_warn()
        if folder is not None:
            self.app.push_screen(LoadProductsModal(), lambda months: months and self._load_products(folder, months))

    @work(thread=True, exclusive=True, group="load-products", exit_on_error=False)
    def _load_products(self, folder, months: int) -> None:
        from cw_tui.platform.files import PlatformDataError
        from cw_tui.platform.importer import load_products
        from cw_tui.rules.periods import months_back

        with _Busy(self, "load-products", "products-busy", f"Loading offers of the last {months} months…"):
            try:
                report = load_products(self.app.store, folder, months_back(self.app.now().date(), months))
            except PlatformDataError as error:
                self._platform_error("Load Products", error)
                return
        self.app.call_from_thread(self.app.notify, f"Loaded {report.offers} offers ({report.offers_added} new).")
        self.app.call_from_thread(self.refresh_data)
