"""Settings (SPEC §4): Authentication, Configuration, Dictionary."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Collapsible, Input, Label, LoadingIndicator, Select, Static, TabbedContent, TabPane, Tabs

from cw_tui.rules.charge_dates import END_RULE_LABELS, START_RULE_LABELS, EndRule, StartRule
from cw_tui.rules.safe_text import safe_text
from cw_tui.rules.vocabulary import BillingCycle, ChargeType
from cw_tui.rules.words import plural
from cw_tui.screens.base import AreaScreen, guarded
from cw_tui.services import credentials as credential_store
from cw_tui.services import settings as settings_service
from cw_tui.services import system_log
from cw_tui.services.credentials import Credentials
from cw_tui.services.settings import active_agreement_types

if TYPE_CHECKING:
    from cw_tui.services.connection import ConnectionCheck

HOW_TO = """\
1. Company ID and Site URL: the company and site you type on the ConnectWise login page
   (the API URL is the site, e.g. https://na.myconnectwise.net; cw-tui finds the API host
   and codebase itself).
2. Keys: in ConnectWise, System > Members > API Members > (your API member) > API Keys >
   New. ConnectWise shows the private key once: copy it now.
3. Client ID: your integration's clientId from developer.connectwise.com (ClientID page).
   ConnectWise requires it on every call."""

DICTIONARY = (("Organizations", "Companies"), ("Invoice lines", "Additions"), ("Offers", "Products"), ("Contracts", "Agreements"))
FIELDS = (
    ("url", "API URL", "https://na.myconnectwise.net", False),
    ("company_id", "ConnectWise Company ID", "the company you type at login", False),
    ("public_key", "API Public Key", "", False),
    ("private_key", "API Private Key", "", True),
    ("client_id", "Client ID", "the clientId GUID from developer.connectwise.com", True),
)
SECRET_FIELDS = {"private_key", "client_id"}


class SettingsScreen(AreaScreen):
    AREA = "settings"
    _judged_url = ""  # the API URL the field message is about
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="settings.save"),
        Binding("ctrl+t", "test_connection", "Test connection", id="settings.test"),
        # as on Mapping; a field takes `[` and `]` as text (an IPv6 URL): escape leaves it first
        Binding("right_square_bracket", "tab(1)", "Next tab", id="settings.next_tab", show=False),
        Binding("left_square_bracket", "tab(-1)", "Previous tab", id="settings.previous_tab", show=False),
        Binding("escape", "to_tabs", "To the tabs", id="settings.to_tabs", show=False),
    ]
    TABS = ("authentication", "configuration", "dictionary")

    def compose_area(self) -> ComposeResult:
        yield Static("Settings — Configure your ConnectWise integration credentials and preferences.", classes="title")
        yield Static("", id="banner", classes="banner")
        with TabbedContent(initial="authentication"):
            with TabPane("Authentication", id="authentication"), VerticalScroll():
                with Collapsible(title="How to obtain API credentials", collapsed=True):
                    yield Static(HOW_TO)
                with Grid(classes="form"):
                    for name, label, placeholder, secret in FIELDS:
                        yield Label(label)
                        field = Input(placeholder=placeholder, password=secret, id=f"field-{name}", compact=True)
                        if name == "url":
                            with Vertical(classes="field"):
                                yield field
                                yield Static("", id="url-message")
                        else:
                            yield field
                with Horizontal(classes="buttons"):
                    yield Button("Test Connection", id="test", variant="default")
                    yield Button("Save", id="save", variant="primary")
                    yield LoadingIndicator()
                yield Static("", id="test-status")
            # their content is mounted after the first paint (mount_hidden_tabs): the
            # Configuration form is most of this screen's widgets
            yield TabPane("Configuration", id="configuration")
            yield TabPane("Dictionary", id="dictionary")

    def on_mount(self) -> None:
        self.fill_credentials()
        self.refresh_banner()
        self._focus_next_step()
        self.app.after_first_paint(self.mount_hidden_tabs)  # type: ignore[attr-defined]

    async def mount_hidden_tabs(self) -> None:
        for pane_id, content in (("configuration", ConfigurationForm), ("dictionary", Dictionary)):
            for pane in self.query(f"TabPane#{pane_id}"):  # none when the app ends before
                if not pane.children:
                    await pane.mount(content())

    def _focus_next_step(self) -> None:
        """The first empty field, or Test Connection when all are filled (the demo)."""
        if self.app.has_credentials():  # type: ignore[attr-defined]
            return
        for name, *_ in FIELDS:
            field = self.query_one(f"#field-{name}", Input)
            if not field.value:
                field.focus()
                return
        self.query_one("#test", Button).focus()

    def refresh_data(self) -> None:
        self.refresh_banner()

    # --------------------------------------------------------------- state shown

    def refresh_banner(self) -> None:
        banner = self.query_one("#banner", Static)
        app = self.app
        if not app.has_credentials():  # type: ignore[attr-defined]
            banner.update("Start here: enter your ConnectWise API credentials below, press Test Connection, then Save.")
            banner.display = True
        elif not app.setup_complete():  # type: ignore[attr-defined]
            banner.update("Setup is not finished: choose an Agreement Type on the Configuration tab. Until then "
                          "Dashboard, Mapping and sync stay unavailable.")
            banner.display = True
        else:
            banner.display = False
        self.refresh_gating()

    def _saved_credentials(self) -> Credentials | None:
        """The saved credentials; a file cw-tui refuses (readable by others, damaged) is
        said on screen, and the form starts empty so that `Save` writes a good one."""
        try:
            return credential_store.current()
        except credential_store.CredentialsError as error:
            self._status(str(error), "error")
            return None

    def fill_credentials(self) -> None:
        saved = self._saved_credentials()
        prefill = self.app.prefill_credentials  # type: ignore[attr-defined]
        for name, _, _placeholder, _ in FIELDS:
            field = self.query_one(f"#field-{name}", Input)
            if saved is not None and getattr(saved, name):
                if name in SECRET_FIELDS:
                    field.value = ""
                    field.placeholder = "•••••••• saved — type to replace"
                else:
                    field.value = getattr(saved, name)
            elif prefill is not None:
                field.value = getattr(prefill, name)

    def credentials_from_form(self) -> Credentials:
        saved = self._saved_credentials()
        values = {}
        for name, *_ in FIELDS:
            typed = self.query_one(f"#field-{name}", Input).value.strip()
            values[name] = typed or (getattr(saved, name) if saved is not None else "")
        return Credentials(**values)

    # --------------------------------------------------------------- authentication

    def _focus_agreement_type(self) -> None:
        for select in self.query("#agreement-type"):
            select.focus()

    def _status(self, text: str, kind: str = "") -> None:
        status = self.query_one("#test-status", Static)
        status.update(Text(safe_text(text)))  # it quotes ConnectWise's answers: shown literally
        status.set_class(kind == "ok", "-ok")
        status.set_class(kind == "error", "-error")
        # once the new text has its height: a message of three lines is shown whole
        self.call_after_refresh(status.scroll_visible, animate=False)

    def _busy(self, busy: bool) -> None:
        self.query_one(LoadingIndicator).set_class(busy, "-busy")
        for button_id in ("#test", "#save"):
            self.query_one(button_id, Button).disabled = busy

    def _url_message(self, problem: str | None, url: str = "") -> None:
        self._judged_url = url
        message = self.query_one("#url-message", Static)
        message.update(Text(f"✗ {safe_text(system_log.redact(problem))}") if problem else "")
        message.set_class(bool(problem), "-shown")

    @on(Input.Changed, "#field-url")
    def _url_changed(self, event: Input.Changed) -> None:
        # judged again on leaving the field, or on Test and Save
        if event.value.strip() != self._judged_url:
            self._url_message(None)

    @on(Input.Blurred, "#field-url")
    def _url_left(self, event: Input.Blurred) -> None:
        from cw_tui.services.connection import url_problem

        if event.value.strip():
            self._url_message(url_problem(event.value), event.value.strip())

    def _form_ready(self, creds: Credentials) -> bool:
        """Missing fields and a malformed API URL are told at once (nothing is sent), and
        logged like every failed test."""
        from cw_tui.services.connection import ConnectionCheck, url_problem

        missing = creds.missing()
        problem = url_problem(creds.url) if creds.url else None
        self._url_message(problem, creds.url)
        if not missing and not problem:
            return True
        text = f"Fill in: {', '.join(missing)}." if missing else problem
        self._failed_check(ConnectionCheck(False, text, kind="settings", details=text))
        if problem:
            self.query_one("#field-url", Input).focus()
        return False

    @guarded
    def action_test_connection(self) -> None:
        creds = self.credentials_from_form()
        if not self._form_ready(creds):
            return
        self._busy(True)
        self._status("Testing the connection…")
        self._check(creds, save=False)

    @guarded
    def action_save(self) -> None:
        if self.query_one(TabbedContent).active == "configuration":
            form = self.query(ConfigurationForm)
            if form:
                form.first().save_configuration()
            return
        creds = self.credentials_from_form()
        if not self._form_ready(creds):
            return
        self._busy(True)
        self._status("Checking the credentials before saving…")
        self._check(creds, save=True)

    @work(exclusive=True, group="connection", exit_on_error=False)
    async def _check(self, creds: Credentials, save: bool) -> None:
        # imported here: httpx and the client are not needed to paint the first screen
        from cw_tui.services.connection import ConnectionCheck, check_connection

        try:
            check = await check_connection(creds, timeout=self.app.connection_timeout)  # type: ignore[attr-defined]
        except Exception as error:
            text = f"unexpected error: {type(error).__name__}: {error}"
            check = ConnectionCheck(False, text, kind="unexpected", details=text)
        self._checked(creds, check, save)

    def _failed_check(self, check: ConnectionCheck) -> None:
        from cw_tui.services.connection import record_check

        record_check(self.app.store, check, saved=False)  # type: ignore[attr-defined]
        self._status(f"✗ {_failure_title(check.kind)}: {system_log.redact(check.message)}", "error")

    def _checked(self, creds: Credentials, check: ConnectionCheck, save: bool) -> None:
        from cw_tui.services.connection import record_check, save_credentials

        store = self.app.store  # type: ignore[attr-defined]
        self._busy(False)
        if not check.ok:
            self._failed_check(check)
            return
        if not save:
            record_check(store, check, saved=False)
            self._status(f"✓ {check.message} ({check.api_base}). Press Save to keep these credentials.", "ok")
            return
        try:
            save_credentials(store, creds)
        except credential_store.CredentialsError as error:
            self._status(f"✗ {error}", "error")
            return
        record_check(store, check, saved=True)
        self._status(f"✓ {check.message}. Credentials saved.", "ok")
        self.fill_credentials()
        self.app.credentials_changed()  # type: ignore[attr-defined]
        for form in self.query(ConfigurationForm):
            form.load_types()
        self.refresh_banner()
        if self.app.setup_complete():  # type: ignore[attr-defined]
            self.app.notify("Credentials saved.", title="Settings")
            self.app.action_area("mapping")  # type: ignore[attr-defined]
        else:
            # Mapping stays closed until an Agreement Type is chosen: show that step instead
            self.query_one(TabbedContent).active = "configuration"
            self.call_after_refresh(self._focus_agreement_type)
            self.app.notify("Credentials saved. Next: choose an Agreement Type and press Save Configuration.",
                            title="Settings")

    # --------------------------------------------------------------- configuration

    # --------------------------------------------------------------- tabs

    def action_tab(self, step: int) -> None:
        content = self.query_one(TabbedContent)
        content.active = self.TABS[(self.TABS.index(content.active) + step) % len(self.TABS)]
        self.action_to_tabs()

    def action_to_tabs(self) -> None:
        """The tab strip takes the focus: `[` `]` and the arrows change the tab, Tab enters it."""
        self.query_one(TabbedContent).query_one(Tabs).focus()

    @on(Button.Pressed, "#test")
    def _test_pressed(self) -> None:
        self.action_test_connection()

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save()

class Dictionary(Vertical):
    def compose(self) -> ComposeResult:
        from textual.widgets import DataTable  # imported when the tab is mounted, after the first paint

        yield Static("Platform terms and their ConnectWise names.", classes="section")
        table = DataTable(id="dictionary-table", cursor_type="none", zebra_stripes=True)
        # Text, not markup: a str label would import Rich's emoji table (30 ms) to look for :codes:
        table.add_columns(Text("Platform term"), Text("ConnectWise term"))
        for row in DICTIONARY:
            table.add_row(*row)
        yield table


class ConfigurationForm(VerticalScroll):
    """Settings → Configuration: agreement type, charge-date rules, names, daily sync, folder."""

    def compose(self) -> ComposeResult:
        from textual.widgets import Switch  # imported when the tab is mounted, after the first paint

        with Grid(classes="form"):
            yield Label("Agreement Type *")
            with Horizontal():
                yield Select([], id="agreement-type", prompt="Choose an agreement type", compact=True)
            yield Label("")
            with Horizontal(classes="types-row"):
                yield Button("Reload agreement types", id="reload-types", compact=True)
                yield Static("", id="types-status")  # next to the button: the result is seen where it was asked
            yield Label("Platform export folder")
            yield Input(id="platform-dir", placeholder="/path/to/platform-export", compact=True)
            yield Label("Automated daily sync")
            with Horizontal(classes="switch-row"):
                yield Switch(id="daily-sync")
                yield Label("  every day at 00:00 UTC", classes="hint")
        yield Static("Charge End Date rules (per charge type)", classes="section")
        with Grid(classes="form"):
            for charge_type in ChargeType:
                yield Label(charge_type.value)
                yield Select([(END_RULE_LABELS[r], r.value) for r in EndRule], allow_blank=False,
                             value=EndRule.DEFAULT.value, id=f"end-{_slug(charge_type)}", compact=True)
        yield Static("Charge Start Date rules (per billing cycle)", classes="section")
        with Grid(classes="form"):
            for cycle in BillingCycle:
                yield Label(cycle.value)
                yield Select([(START_RULE_LABELS[r], r.value) for r in StartRule], allow_blank=False,
                             value=StartRule.DEFAULT.value, id=f"start-{_slug(cycle)}", compact=True)
        yield Static("Custom Charge Type Names (what ConnectWise shows)", classes="section")
        with Grid(classes="form"):
            for charge_type in ChargeType:
                yield Label(charge_type.value)
                yield Input(placeholder=charge_type.value, id=f"name-{_slug(charge_type)}", compact=True)
        with Horizontal(classes="buttons"):
            yield Button("Save Configuration", id="save-config", variant="primary")
        yield Static("", id="config-status")

    def on_mount(self) -> None:
        self.fill_configuration()
        if not active_agreement_types() and self.app.has_credentials():  # type: ignore[attr-defined]
            self.load_types()

    def fill_configuration(self) -> None:
        config = settings_service.load_configuration(self.app.store)  # type: ignore[attr-defined]
        self._set_type_options(active_agreement_types(), config.agreement_type.id if config.agreement_type else None)
        self.query_one("#platform-dir", Input).value = config.platform_dir or ""
        self.query_one("#daily-sync").value = config.daily_sync  # type: ignore[attr-defined]
        for charge_type in ChargeType:
            self.query_one(f"#end-{_slug(charge_type)}", Select).value = config.rules.end_rule(charge_type).value
            self.query_one(f"#name-{_slug(charge_type)}", Input).value = config.charge_type_names.get(charge_type, "")
        for cycle in BillingCycle:
            self.query_one(f"#start-{_slug(cycle)}", Select).value = config.rules.start_rule(cycle).value

    def _set_type_options(self, types: list, chosen: int | None) -> None:
        select = self.query_one("#agreement-type", Select)
        select.set_options([(Text(safe_text(t.name)), t.id) for t in types])  # names from ConnectWise
        if chosen is not None and any(t.id == chosen for t in types):
            select.value = chosen

    @on(Button.Pressed, "#reload-types")
    def _reload_types(self) -> None:
        self.load_types()

    def _types_status(self, text: str | Text, error: bool = False) -> None:
        status = self.query_one("#types-status", Static)
        status.update(text)
        status.set_class(error, "-error")

    @work(exclusive=True, group="agreement-types", exit_on_error=False)
    async def load_types(self) -> None:
        creds = credential_store.current()
        if creds is None or not creds.complete():
            self._types_status("Save your credentials first: agreement types come from ConnectWise.", error=True)
            return
        button = self.query_one("#reload-types", Button)
        button.disabled = True  # busy: one request at a time, and it shows
        self._types_status("Loading agreement types from ConnectWise…")
        try:
            from cw_tui.services.connection import fetch_agreement_types

            types = await fetch_agreement_types(self.app.store, creds)  # type: ignore[attr-defined]
        except Exception as error:
            self._types_status(Text(f"✗ Could not load agreement types: {safe_text(system_log.redact(str(error)))}"),
                               error=True)
            return
        finally:
            button.disabled = False
        config = settings_service.load_configuration(self.app.store)  # type: ignore[attr-defined]
        self._set_type_options(types, config.agreement_type.id if config.agreement_type else None)
        self._types_status(f"✓ {plural(len(types), 'agreement type')} loaded from ConnectWise."
                           + ("" if types else " ConnectWise has no active one: add one there, then reload."))

    @on(Button.Pressed, "#save-config")
    def _save_config_pressed(self) -> None:
        self.save_configuration()

    @guarded
    def save_configuration(self) -> None:
        store = self.app.store  # type: ignore[attr-defined]
        config = settings_service.load_configuration(store)
        status = self.query_one("#config-status", Static)
        self.call_after_refresh(status.scroll_visible, animate=False)  # once it holds what is said below
        chosen = self.query_one("#agreement-type", Select).value
        if chosen is Select.NULL or chosen is None:
            status.update("✗ Choose an Agreement Type: it is required.")
            self.query_one("#agreement-type", Select).focus()
            return
        types = {t.id: t.name for t in active_agreement_types()}
        config.agreement_type = settings_service.AgreementTypeChoice(id=int(chosen), name=types.get(int(chosen), str(chosen)))
        config.platform_dir = self.query_one("#platform-dir", Input).value.strip() or None
        config.daily_sync = self.query_one("#daily-sync").value  # type: ignore[attr-defined]
        config.end_rules = {t: EndRule(self.query_one(f"#end-{_slug(t)}", Select).value) for t in ChargeType
                            if self.query_one(f"#end-{_slug(t)}", Select).value != EndRule.DEFAULT.value}
        config.start_rules = {c: StartRule(self.query_one(f"#start-{_slug(c)}", Select).value) for c in BillingCycle
                              if self.query_one(f"#start-{_slug(c)}", Select).value != StartRule.DEFAULT.value}
        config.charge_type_names = {t: v for t in ChargeType if (v := self.query_one(f"#name-{_slug(t)}", Input).value.strip())}
        try:
            config = config.validated()
        except settings_service.ConfigurationError as error:
            status.update(Text(f"✗ {safe_text(error)}"))
            return
        settings_service.save_configuration(store, config)
        system_log.write(store, system_log.Level.INFO, system_log.Category.CONFIGURATION, "Configuration saved",
                         f"agreement type {config.agreement_type.name}; daily sync {'on' if config.daily_sync else 'off'}")
        status.update("✓ Configuration saved.")
        self.screen.refresh_banner()  # type: ignore[attr-defined]
        self.app.credentials_changed()  # type: ignore[attr-defined]
        self.app.notify("Configuration saved. Press 1 for the Dashboard, 2 for Mapping.", title="Settings")




def _slug(value: object) -> str:
    return str(getattr(value, "value", value)).lower().replace(" ", "-")


def _failure_title(kind: str | None) -> str:
    return {
        "authentication": "Bad credentials",
        "permission": "Missing permission",
        "not_found": "Wrong URL or codebase",
        "connection": "Host unreachable",
        "tls": "TLS failure",
        "timeout": "Timed out",
        "settings": "Check the fields",
        "throttled": "Throttled",
        "server": "ConnectWise error",
        "bad_response": "Unexpected answer",
        "redirect": "Redirected",
    }.get(kind or "", "Connection failed")
