"""Editing on any tab: edit, unmap, bulk update; on a line: sync it, its detail."""

from __future__ import annotations

from textual import on
from textual.widgets import Button, Select, TabbedContent

from cw_tui.rules.safe_text import safe_text
from cw_tui.rules.words import plural
from cw_tui.screens.base import guarded
from cw_tui.screens.mapping.base import MappingBase
from cw_tui.services import system_log
from cw_tui.store import queries
from cw_tui.store.grid import selected_keys
from cw_tui.tasks import run_service
from cw_tui.widgets.grid import SqlGrid


class EditActions(MappingBase):
    @guarded
    def action_edit(self) -> None:
        from cw_tui.screens.pickers import COMPANIES, PRODUCTS, PickerModal
        from cw_tui.services.mapping import ChangedMeanwhile, MappingError, map_offers, map_organizations

        current = self._current_row()
        if current is None:
            return
        grid, key, tab = current
        store = self.app.store
        if tab == "invoices":
            self._edit_line(key)
            return
        if tab == "organizations":
            kind, suggest, apply = COMPANIES, queries.organization_name(store, key), map_organizations
        else:
            kind, suggest, apply = PRODUCTS, queries.offer_name(store, key), map_offers
        if suggest is None:
            return  # gone since the page was read
        read = queries.change_stamp(store, "organization" if tab == "organizations" else "offer", key)

        def chosen(value) -> None:
            if value is None:
                return
            try:
                apply(store, [key], None if value[0] == "clear" else value[0], read=read)
            except MappingError as error:
                self.app.notify(str(error), severity="error", markup=False)
                if isinstance(error, ChangedMeanwhile):
                    grid.reload()  # someone else saved it meanwhile: show it as it is now
                return
            grid.reload()

        self.app.push_screen(PickerModal(store, kind, suggest_for=suggest, clear_label="Unmap"), self.guard(chosen))

    def _edit_line(self, key: str) -> None:
        from cw_tui.screens.mapping_modals import LineEditModal
        from cw_tui.services.mapping import (
            ChangedMeanwhile,
            LineChange,
            MappingError,
            forget_gone_agreement,
            map_contract,
            update_line_ids,
        )

        line = self._line(key)
        if line is None:
            return
        if line["sync_status"] in ("synced", "claimed"):
            self.app.notify("Synced lines are read-only: correct them in ConnectWise.", severity="warning")
            return
        store = self.app.store
        grid = self._grid()
        read = queries.change_stamp(store, "line", key)  # a colleague's save after this one is refused

        def apply(changes: dict, scope: str) -> None:
            def value(name: str):
                chosen = changes.get(name, ...)
                return ... if chosen is ... else (None if chosen == "clear" else chosen[0] if isinstance(chosen, tuple) else chosen)

            try:
                with store.atomic():  # the contract and the line change together, or nothing changes
                    if changes.get("agreement") == "forget":  # the contract's agreement is gone from ConnectWise
                        forget_gone_agreement(store, line["contract_id"])
                        changes = {name: chosen for name, chosen in changes.items() if name != "agreement"}
                    agreement = value("agreement")
                    if scope == "contract" and agreement is not ...:
                        map_contract(store, line["contract_id"], agreement)
                        agreement = ...
                    change = LineChange(company_id=value("company"), product_id=value("product"), agreement_id=agreement,
                                        charge_start=changes.get("start", ...), charge_end=changes.get("end", ...))
                    update_line_ids(store, [key], change, read=read)
            except MappingError as error:
                self.app.notify(str(error), severity="error", markup=False)
                if isinstance(error, ChangedMeanwhile):
                    grid.reload()  # someone else saved it meanwhile: show it as it is now
                return
            self.app.notify("Line updated." if scope == "line" else f"Contract {line['contract_id']} updated.")
            grid.reload()

        def edited(changes: dict | None) -> None:
            if changes:  # a changed agreement was asked for its scope in the form (Cancel there keeps the form)
                scope = changes.pop("scope", "line")
                apply(changes, scope)

        self.app.push_screen(LineEditModal(store, line), self.guard(edited))

    @guarded
    def action_unmap(self) -> None:
        from cw_tui.services.mapping import LineChange, map_offers, map_organizations, update_line_ids

        current = self._current_row()
        if current is None:
            return
        grid, key, tab = current
        store = self.app.store
        if tab == "organizations":
            map_organizations(store, [key], None)
        elif tab == "products":
            map_offers(store, [key], None)
        else:
            changed = update_line_ids(store, [key], LineChange(company_id=None, product_id=None, agreement_id=None))
            if not changed:
                self.app.notify("Synced lines are read-only.", severity="warning")
                return
        self.app.notify("Unmapped: the row stays, its status is back to Unmapped." if tab != "invoices"
                        else "The line's own mappings were removed: it follows its organization, offer and contract.")
        grid.reload()

    @guarded
    def action_bulk_update(self) -> None:
        from cw_tui.screens.mapping_modals import BulkUpdateModal
        from cw_tui.screens.pickers import COMPANIES, PRODUCTS, PickerModal
        from cw_tui.services.mapping import LineChange, MappingError, map_offers, map_organizations, update_lines

        grid = self._grid()
        count = grid.marked_count()
        if not count:
            self.app.notify("Mark rows first: space marks one, ctrl+a marks all matching.", severity="warning")
            return
        store = self.app.store
        tab = self.query_one(TabbedContent).active
        marked = grid.marked_selection()

        def done(changed: int) -> None:
            self.app.notify(f"Updated {plural(changed, 'row')}.")
            grid.reload(clear_marks=True)  # the rows changed: show them as they are now

        if tab in ("organizations", "products"):
            keys = selected_keys(store, marked)
            apply = map_organizations if tab == "organizations" else map_offers

            def picked(value) -> None:
                if value is not None:
                    try:
                        done(apply(store, keys, None if value[0] == "clear" else value[0]))
                    except MappingError as error:
                        self.app.notify(str(error), severity="error", markup=False)

            self.app.push_screen(PickerModal(store, COMPANIES if tab == "organizations" else PRODUCTS, clear_label="Unmap"),
                                 self.guard(picked))
            return

        def bulk(result) -> None:
            if result is None:
                return
            field, value = result
            chosen = None if isinstance(value, tuple) and value[0] == "clear" else (value[0] if isinstance(value, tuple) else value)
            names = {"company": "company_id", "product": "product_id", "agreement": "agreement_id",
                     "start": "charge_start", "end": "charge_end"}
            change = LineChange(**{names[field]: chosen})

            def refused(error: BaseException) -> bool:
                if isinstance(error, MappingError):
                    self.app.notify(str(error), severity="error", markup=False)
                    return True
                return False

            # in a thread: 50,000 lines take ~0.2 s on SQLite and over a second on PostgreSQL
            run_service(self, "Bulk Update", lambda: update_lines(store, marked, change),
                        category=system_log.Category.INVOICES, done=done, failed=refused, group="bulk-update")

        self.app.push_screen(BulkUpdateModal(store, count, marked), self.guard(bulk))

    @guarded
    def action_sync_row(self) -> None:
        self._to_tab("sync_invoices")
        grid = self.query_one("#grid-invoices", SqlGrid)
        key = grid.current_key()
        period = self.query_one("#period", Select).value
        if key is None or not isinstance(period, str):
            return
        line = self._line(key)
        if line is not None and line["sync_status"] in ("synced", "claimed"):
            self.app.notify(f"Line {safe_text(key)} is already synced: it is never posted again (v shows what was sent).",
                            markup=False)
            return
        self._plan(period, {key})

    @on(SqlGrid.RowChosen)
    def _row_chosen(self, event: SqlGrid.RowChosen) -> None:
        """`enter`: a synced line is read-only, so it opens the line's detail; any other row, its edit."""
        if event.control.id == "grid-invoices":
            line = self._line(event.key)
            if line is not None and line["sync_status"] in ("synced", "claimed"):
                self.action_line_detail()
                return
        self.action_edit()

    @guarded
    def action_line_detail(self) -> None:
        """`v`: the read-only detail of the invoice line under the cursor."""
        from cw_tui.screens.line_detail import LineDetailModal
        from cw_tui.services.line_detail import line_detail

        if self.query_one(TabbedContent).active != "invoices":
            self.app.notify("v shows an invoice line's detail on the Invoices tab, an organization's on the Organizations tab.")
            return
        key = self.query_one("#grid-invoices", SqlGrid).current_key()
        detail = line_detail(self.app.store, key) if key is not None else None
        if detail is not None:
            self.app.push_screen(LineDetailModal(detail))

    @guarded
    def action_organization_detail(self) -> None:
        """`v` on the Organizations tab: the read-only detail of the organization under the cursor."""
        from cw_tui.screens.organization_detail import OrganizationDetailModal
        from cw_tui.services.organization_detail import organization_detail

        key = self.query_one("#grid-organizations", SqlGrid).current_key()
        detail = organization_detail(self.app.store, key) if key is not None else None
        if detail is not None:
            self.app.push_screen(OrganizationDetailModal(detail))

    BUTTON_ACTIONS = {
        "sync-organizations": "sync_organizations", "automatch": "automatch", "toggle-excluded": "toggle_excluded",
        "load-products": "load_products", "load-invoices": "load_invoices", "sync-invoices": "sync_invoices",
        "best-practices": "best_practices",
    }

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        """Each toolbar button does what its key does."""
        action = self.BUTTON_ACTIONS.get(event.button.id or "")
        if action:
            event.stop()
            getattr(self, f"action_{action}")()

    @on(TabbedContent.TabActivated)
    def _tab_changed(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_bindings()
        self._focus_shown_grid(event.tabbed_content.active)  # a click on a tab changes it too
