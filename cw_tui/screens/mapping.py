"""Mapping (SPEC §5): Organizations, Products and Invoices, each one SQL-paged grid."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Label, ProgressBar, Select, Static, TabbedContent, TabPane

from cw_tui.grid.query import GridSource, Page, invoices_source, organizations_source, products_source, selected_keys
from cw_tui.rules.safe_text import safe_text
from cw_tui.rules.words import plural
from cw_tui.screens.base import AreaScreen, guarded
from cw_tui.screens.mapping_modals import (
    AutomapModal,
    ConfirmRemovalsModal,
    LoadInvoicesModal,
    LoadProductsModal,
    Matches,
    ShrinkModal,
    SyncPlanModal,
)
from cw_tui.services.display import dated_source, exact_money_text, group_thousands, quantity_text
from cw_tui.store import queries
from cw_tui.tasks import run_service
from cw_tui.widgets.grid import SqlGrid
from cw_tui.widgets.modal import Modal

BEST_PRACTICES = (
    ("Map organizations and products first", "Unmapped invoice lines cannot be posted."),
    ("Load Products incrementally", "Start with a 1–3 month window."),
    ("Keep organizations current", "Run Sync Organizations after onboarding customers."),
    ("Check for Response Errors", "A Response Error badge means ConnectWise did not answer; retry in a few minutes."),
    ("Post invoices after month-end", "Partial months create reconciliation issues."),
    ("Manage Automated Sync", "Enable it when volume is steady, disable it while remapping."),
    ("Handle multi-org mapping", "When several Platform Organizations map to one ConnectWise company, choose the "
                                 "Agreement for each invoice line yourself."),
    ("Charge End Date", "Without rules or overrides, end dates are set at sync: one-time lines end on the last day of "
                        "their start month; recurring lines are sent without an end date."),
)
STATUS_DOTS = {"Active": "green", "New": "dodger_blue1", "Suspended": "orange1", "Inactive": "grey50"}
BADGES = {"System Updated": ("S", "bold black on #5fafff"), "User Updated": ("U", "bold black on #ffaf00")}


class PeriodSelect(Select):
    """"Show invoices": the loaded months, newest first. With none loaded it is hidden (the bar
    says so) and holds no choice; once a month is loaded there is no blank choice to pick."""

    def set_periods(self, periods: list[str]) -> None:
        self._allow_blank = not periods  # Textual 8.2 reads it in set_options; only an empty list needs a blank
        self.set_options([(p, p) for p in periods])
        self.display = bool(periods)


class BestPractices(Modal):
    """The eight recommendations (SPEC §5). The list has the focus, so the arrows and page
    keys scroll it; Close stays in view below it at any size; escape closes too."""

    BINDINGS = [Binding("escape", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("💡 Best Practices", style="bold"), classes="title")
            with VerticalScroll(id="practices"):
                for number, (title, text) in enumerate(BEST_PRACTICES, start=1):
                    yield Static(Text.assemble((f"{number}. {title}\n", "bold"), text), classes="item")
            with Horizontal(classes="buttons"):
                yield Static(f"↑↓ PgUp PgDn scroll · {len(BEST_PRACTICES)} items · tab, then enter: Close",
                             classes="hint")
                yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#practices", VerticalScroll).focus()
        self.call_after_refresh(self._all_shown)

    def _all_shown(self) -> None:
        if self.query_one("#practices", VerticalScroll).max_scroll_y == 0:  # nothing to scroll: enter closes
            self.query_one("#close", Button).focus()

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss()


def status_dot(text: str, _value: object = None) -> Text:
    return Text.assemble(("● ", STATUS_DOTS.get(text, "magenta")), text)


def amount(text: str, _value: object = None) -> str:
    """The exact decimal text the export holds, with thousands separators."""
    return group_thousands(text)


def dated(text: str, value: str | None) -> Text:
    """The date, and a letter for where it came from (User Updated, System Updated)."""
    shown = Text(text) if text else Text("—", style="dim")
    badge = BADGES.get(dated_source(value))
    if badge:
        shown.append(" ")
        shown.append(badge[0], style=badge[1])
    return shown


def mapping_badge(text: str, _value: object = None) -> Text:
    styles = {"Mapped": "green", "Unmapped": "yellow", "Excluded": "grey50", "Response Error": "bold red"}
    return Text(text, style=styles.get(text, ""))


def psa_status(text: str, _value: object = None) -> Text:
    styles = {"Synced": "green", "Error": "bold red", "Posting…": "cyan"}
    return Text(text, style=styles.get(text, ""))


def click_to_select(text: str, _value: object = None) -> Text:
    return Text(text) if text else Text("Click to select", style="dim italic")


def agreement_cell(text: str, value: object = None) -> Text:
    """The agreement's telling part, "New agreement (<type>)" where sync will create one (SPEC
    §8 rule 4), "Click to select" where none can be chosen yet."""
    if text.startswith("New agreement"):
        return Text(text, style="italic")
    return click_to_select(text, value)


def error_reason(text: str, _value: object = None) -> Text:
    return Text(text, style="red")


class _Busy:
    """Disables a button and shows what runs while a long operation goes on (SPEC §5)."""

    def __init__(self, screen: AreaScreen, button_id: str, label_id: str, text: str) -> None:
        self.screen, self.button_id, self.label_id, self.text = screen, button_id, label_id, text

    def __enter__(self) -> None:
        self.screen.app.call_from_thread(self._set, True)

    def __exit__(self, *exc: object) -> None:
        self.screen.app.call_from_thread(self._set, False)

    def _set(self, busy: bool) -> None:
        self.screen.query_one(f"#{self.button_id}", Button).disabled = busy
        self.screen.query_one(f"#{self.label_id}", Static).update(self.text if busy else "")


class MappingActions(AreaScreen):
    """The Mapping page's operations; the long ones run in thread workers (the UI never waits)."""

    TAB_ACTIONS: dict[str, str] = {}

    def _to_tab(self, action: str) -> None:
        """Every action works from any tab: it first shows the tab it belongs to."""
        tab = self.TAB_ACTIONS.get(action)
        if tab:
            self.show_tab(tab)

    def show_tab(self, tab: str) -> None:
        """Show a tab, and give its grid the keys unless the focus is already on that tab.
        The focus moves at once: the tab is then drawn once, not again for the focus."""
        content = self.query_one(TabbedContent)
        content.active = tab
        self._focus_shown_grid(tab)

    def _focus_shown_grid(self, tab: str) -> None:
        focused = self.focused
        if focused is None or not any(isinstance(node, TabPane) and node.id == tab for node in focused.ancestors):
            self.query_one(f"#grid-{tab}", SqlGrid).table.focus()

    def _client(self):
        from cw_tui.services import credentials as credential_store
        from cw_tui.services.connectwise import ConnectWiseClient

        return ConnectWiseClient(credential_store.current())

    # ---- organizations

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
                self._platform_error("Sync Organizations", error, in_ui=True)
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

    # ---- products and invoices

    def _folder_or_warn(self):
        from pathlib import Path

        from cw_tui.services import settings

        config = settings.load_configuration(self.app.store)
        if not config.platform_dir:
            self.app.notify("Set the Platform export folder first (Settings → Configuration).", severity="warning")
            return None
        return Path(config.platform_dir).expanduser()

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

    def _platform_error(self, what: str, error, *, in_ui: bool = False) -> None:
        from cw_tui.services import system_log

        system_log.write(self.app.store, system_log.Level.ERROR, system_log.Category.INVOICES,
                         f"{what} rejected: {error.total} problem(s); nothing was changed", str(error))
        first = "\n".join(error.errors[:4])
        message = f"{what}: nothing was changed. {error.total} problem(s):\n{first}\n(all of them in System Logs)"
        if in_ui:
            self.app.notify(message, severity="error", timeout=20)
        else:
            self.app.call_from_thread(self.app.notify, message, severity="error", timeout=20)

    @guarded
    def action_load_invoices(self) -> None:
        self._to_tab("load_invoices")
        folder = self._folder_or_warn()
        if folder is not None:
            self.app.push_screen(LoadInvoicesModal(self.app.now().date()), lambda which: which and self._load_invoices(folder, self._periods(which)))

    def _periods(self, which: list[str]) -> list[str]:
        from cw_tui.rules.periods import resolve_period

        return [resolve_period(w, self.app.now().date()) for w in which]

    @work(thread=True, exclusive=True, group="load-invoices", exit_on_error=False)
    def _load_invoices(self, folder, periods: list[str], allow_removals: str | None = None) -> None:
        from cw_tui.platform.files import PlatformDataError
        from cw_tui.platform.importer import RemovalsNeedConsent, load_invoices
        from cw_tui.services import settings

        store = self.app.store
        with _Busy(self, "load-invoices", "invoices-busy", f"Loading {', '.join(periods)}…"):
            try:
                report = load_invoices(store, folder, periods, settings.load_configuration(store).rules,
                                       allow_removals=allow_removals)
            except PlatformDataError as error:
                self._platform_error("Load Invoices", error)
                return
            except RemovalsNeedConsent as need:  # `need` is unbound after the block: the lambda keeps its own
                self.app.call_from_thread(self.app.push_screen, ConfirmRemovalsModal(need),
                                          lambda remove, need=need: self._removals_answered(folder, periods, need, remove))
                return
        text = "; ".join(f"{p.period}: {plural(p.lines, 'line')} ({p.summary()})" for p in report.periods)
        self.app.call_from_thread(self.app.notify, f"Loaded {text}.")
        self.app.call_from_thread(self._after_load, periods[-1] if len(periods) == 1 else max(periods))

    def _removals_answered(self, folder, periods: list[str], need, remove: bool | None) -> None:
        if remove:
            self._load_invoices(folder, periods, need.consent)  # asks again if the lines to remove have changed
        else:
            self.app.notify(f"Nothing was loaded: the {plural(need.count, 'unsynced line')} {'is' if need.count == 1 else 'are'} kept.")

    def _after_load(self, period: str) -> None:
        self._fill_periods()
        self.query_one("#period", Select).value = period
        self.refresh_data()

    # ---- sync

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

    # ---- edit, unmap, bulk update, per-row sync (SPEC §5)

    def _grid(self) -> SqlGrid:
        return self.query_one(f"#grid-{self.query_one(TabbedContent).active}", SqlGrid)

    def _current_row(self) -> tuple[SqlGrid, str, str] | None:
        """The active tab's grid, the key of the row under the cursor, and the tab."""
        grid = self._grid()
        key = grid.current_key()
        return None if key is None else (grid, key, self.query_one(TabbedContent).active)

    def _line(self, line_id: str) -> dict | None:
        from cw_tui.services.mapping import agreement_gone

        line = queries.line_for_edit(self.app.store, line_id)
        if line is None:
            return None
        line["agreement_gone"] = agreement_gone(line["agreement_id"], own=line["own_agreement_id"] is not None)
        line["quantity"] = group_thousands(quantity_text(line["quantity"]))
        line["unit_price"] = group_thousands(exact_money_text(line["unit_price"]))
        return line

    @guarded
    def action_edit(self) -> None:
        from cw_tui.screens.pickers import COMPANIES, PRODUCTS, PickerModal
        from cw_tui.services.mapping import MappingError, map_offers, map_organizations

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

        def chosen(value) -> None:
            if value is None:
                return
            try:
                apply(store, [key], None if value[0] == "clear" else value[0])
            except MappingError as error:
                self.app.notify(str(error), severity="error", markup=False)
                return
            grid.reload()

        self.app.push_screen(PickerModal(store, kind, suggest_for=suggest, clear_label="Unmap"), self.guard(chosen))

    def _edit_line(self, key: str) -> None:
        from cw_tui.screens.mapping_modals import LineEditModal
        from cw_tui.services.mapping import LineChange, MappingError, forget_gone_agreement, map_contract, update_line_ids

        line = self._line(key)
        if line is None:
            return
        if line["sync_status"] in ("synced", "claimed"):
            self.app.notify("Synced lines are read-only: correct them in ConnectWise.", severity="warning")
            return
        store = self.app.store
        grid = self._grid()

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
                    update_line_ids(store, [key], change)
            except MappingError as error:
                self.app.notify(str(error), severity="error", markup=False)
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
            try:
                done(update_lines(store, marked, change))
            except MappingError as error:
                self.app.notify(str(error), severity="error", markup=False)

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
        current = self._current_row()
        if current is not None and current[2] == "invoices":
            line = self._line(current[1])
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
            self.app.notify("v shows an invoice line's detail: use it on the Invoices tab.")
            return
        key = self.query_one("#grid-invoices", SqlGrid).current_key()
        detail = line_detail(self.app.store, key) if key is not None else None
        if detail is not None:
            self.app.push_screen(LineDetailModal(detail))

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



class MappingScreen(MappingActions):
    AREA = "mapping"
    _agreement_type: tuple[int, str] | None = None  # the configured one, as the Invoices grid shows it
    AUTO_FOCUS = "GridTable"  # the shown tab's grid: its keys work at once
    BINDINGS = [
        # first: on the Invoices tab (only there) its hint fits beside the grid's at 80 columns
        Binding("v", "line_detail", "Line detail", id="mapping.line_detail"),
        Binding("o", "sync_organizations", "Sync orgs", id="mapping.sync_organizations"),
        Binding("a", "automatch", "Auto-match", id="mapping.automatch"),
        Binding("x", "toggle_excluded", "Include/exclude", id="mapping.toggle_excluded"),
        Binding("p", "load_products", "Load products", id="mapping.load_products"),
        Binding("i", "load_invoices", "Load invoices", id="mapping.load_invoices"),
        Binding("P", "sync_invoices", "Sync to PSA", id="mapping.sync_invoices"),
        Binding("e", "edit", "Edit", id="mapping.edit"),
        Binding("delete", "unmap", "Unmap", id="mapping.unmap"),
        Binding("E", "bulk_update", "Bulk update", id="mapping.bulk_update"),
        Binding("y", "sync_row", "Sync line", id="mapping.sync_row", show=False),
        Binding("b", "best_practices", "Best practices", id="mapping.best_practices"),
        Binding("m", "choose_period", "Month", id="mapping.choose_period"),
        Binding("right_square_bracket", "tab(1)", "Next tab", id="mapping.next_tab", show=False),
        Binding("left_square_bracket", "tab(-1)", "Previous tab", id="mapping.previous_tab", show=False),
        Binding("ctrl+r", "reload", "Refresh", id="mapping.refresh"),
    ]
    TAB_ACTIONS = {
        "sync_organizations": "organizations", "automatch": "organizations",
        "load_products": "products", "load_invoices": "invoices", "sync_invoices": "invoices",
    }

    def compose_area(self) -> ComposeResult:
        with TabbedContent(initial="organizations"):
            with TabPane("Organizations", id="organizations"):
                with Horizontal(classes="toolbar"):
                    yield Button("Sync Organizations", id="sync-organizations", compact=True)
                    yield Button("Auto-match", id="automatch", compact=True)
                    yield Button("Include/Exclude", id="toggle-excluded", compact=True)
                    yield Static("", classes="busy", id="organizations-busy")
                yield SqlGrid(organizations_source(), id="grid-organizations", formatters={
                    "status": status_dot, "psa_name": click_to_select, "mapping": mapping_badge},
                    summary=self._org_summary)
            with TabPane("Products", id="products"):
                with Horizontal(classes="toolbar"):
                    yield Button("Load Products", id="load-products", compact=True)
                    yield Static("", classes="busy", id="products-busy")
                yield SqlGrid(products_source(), id="grid-products", formatters={
                    "psa_name": click_to_select, "mapping": mapping_badge}, summary=self._product_summary)
            with TabPane("Invoices", id="invoices"):
                with Horizontal(classes="period-bar"):
                    yield Label("Show invoices")
                    # the loaded months only: no blank choice once one is loaded (PeriodSelect)
                    yield PeriodSelect([], id="period", compact=True, prompt="none loaded")
                    yield Static("none loaded (i: Load Invoices)", id="no-periods")
                    yield Button("Load Invoices", id="load-invoices", compact=True)
                    yield Button("Sync Invoices to PSA", id="sync-invoices", compact=True, variant="primary")
                    yield Button("💡", id="best-practices", compact=True, tooltip="Best Practices")
                    yield Static("", classes="busy", id="invoices-busy")
                yield ProgressBar(id="sync-progress", show_eta=False)  # its own line, shown while a sync posts
                yield SqlGrid(self._invoices_source(""), id="grid-invoices", formatters={
                    "quantity": amount, "unit_price": amount, "unit_cost": amount, "total": amount,
                    "charge_start": dated, "charge_end": dated, "mapping": mapping_badge, "sync": psa_status,
                    "psa_org": click_to_select, "psa_product": click_to_select, "psa_agreement": agreement_cell,
                    "error": error_reason}, summary=self._line_summary)

    def on_mount(self) -> None:
        self._fill_periods()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`v` (an invoice line's detail) is offered on the Invoices tab only."""
        if action == "line_detail":
            contents = self.query(TabbedContent)
            return bool(contents) and contents.first().active == "invoices"
        return super().check_action(action, parameters)

    def refresh_data(self) -> None:
        self._fill_periods()
        lines = self.query_one("#grid-invoices", SqlGrid)
        before = self._agreement_type
        source = self._invoices_source(lines.source.params[0] if lines.source.params else "")
        if self._agreement_type != before:  # Settings changed the Agreement Type: "New agreement (<type>)"
            lines.source = source  # same columns: the search, filters and marks stay
        for grid in self.query(SqlGrid):
            grid.reload()

    @guarded
    def action_reload(self) -> None:
        self.refresh_data()

    def _fill_periods(self) -> None:
        periods = queries.loaded_periods(self.app.store)  # type: ignore[attr-defined]
        select = self.query_one("#period", PeriodSelect)
        current = select.value
        select.set_periods(periods)
        if periods:
            select.value = current if current in periods else periods[0]
        self.query_one("#no-periods", Static).display = not periods

    @guarded
    def action_choose_period(self) -> None:
        """`m`: the month selector, open, from anywhere on the page."""
        self.show_tab("invoices")
        select = self.query_one("#period", PeriodSelect)
        if not select.display:
            self.app.notify("No invoice lines are loaded yet: i loads a month.", severity="warning")
            return
        select.focus()
        select.action_show_overlay()

    @on(Select.Changed, "#period")
    def _period(self, event: Select.Changed) -> None:
        grid = self.query_one("#grid-invoices", SqlGrid)
        # the list of periods is refilled whenever the screen comes back (e.g. from a modal):
        # only a different period resets the grid's search, filters and marks
        if isinstance(event.value, str) and grid.source.params != (event.value,):
            grid.set_source(self._invoices_source(event.value))

    def _invoices_source(self, period: str) -> GridSource:
        from cw_tui.services import settings

        chosen = settings.load_configuration(self.app.store).agreement_type  # type: ignore[attr-defined]
        self._agreement_type = (chosen.id, chosen.name) if chosen else None
        return invoices_source(period, self._agreement_type)

    def _line_summary(self, page: Page) -> str:
        return f"Showing {len(page.rows):,} of {plural(page.total, 'invoice line')}"

    @guarded
    def action_tab(self, step: int) -> None:
        tabs = ["organizations", "products", "invoices"]
        content = self.query_one(TabbedContent)
        self.show_tab(tabs[(tabs.index(content.active) + step) % len(tabs)])

    @guarded
    def action_best_practices(self) -> None:
        self.app.push_screen(BestPractices())

    def _org_summary(self, page) -> str:
        counts = queries.organization_counts(self.app.store)  # type: ignore[attr-defined]
        return (f"Showing {len(page.rows):,} of {plural(page.total, 'organization')} · Total organizations: {counts[0]:,} | "
                f"Mapped: {counts[1]:,} | Unmapped: {counts[0] - counts[1]:,}")

    def _product_summary(self, page) -> str:
        counts = queries.offer_counts(self.app.store)  # type: ignore[attr-defined]
        return (f"Showing {len(page.rows):,} of {plural(page.total, 'product')} · Total products: {counts[0]:,} | "
                f"Mapped: {counts[1]:,} | Unmapped: {counts[0] - counts[1]:,}")

