"""Testing and saving ConnectWise credentials (Settings → Authentication, `cw-tui connect`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cw_tui.services import credentials as credential_store
from cw_tui.services import system_log
from cw_tui.services.connectwise import ConnectWiseClient, ConnectWiseError, InvalidSettings
from cw_tui.services.connectwise.client import site_parts
from cw_tui.services.connectwise.models import AgreementType as CWAgreementType
from cw_tui.services.credentials import Credentials
from cw_tui.services.settings import active_agreement_types
from cw_tui.services.system_log import Category, Level
from cw_tui.store import AgreementType, Store, now_utc


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    message: str
    version: str | None = None
    api_base: str | None = None
    kind: str | None = None  # the error kind when not ok (authentication, not_found, connection, tls, timeout, ...)
    details: str = ""


def url_problem(url: str) -> str | None:
    """What is wrong with an API URL as typed, or None (nothing is sent): for a field message."""
    try:
        site_parts(url)
    except InvalidSettings as error:
        return error.message
    return None


async def check_connection(creds: Credentials, *, timeout: float = 20.0) -> ConnectionCheck:
    """`GET /system/info` with these credentials; never raises for ConnectWise problems."""
    try:
        async with ConnectWiseClient(creds, retries=2, timeout=timeout, backoff_base=0.2) as client:
            info = await client.system_info()
            base = await client.api_base()
    except ConnectWiseError as error:
        return ConnectionCheck(False, error.message, kind=error.kind, details=error.details())
    return ConnectionCheck(True, f"Connected to ConnectWise {info.version or ''}".strip(), info.version, base)


def record_check(store: Store, check: ConnectionCheck, *, saved: bool) -> None:
    if check.ok:
        system_log.write(store, Level.INFO, Category.AUTHENTICATION, check.message,
                         f"API base {check.api_base}" + ("; credentials saved" if saved else "; not saved yet"))
    else:
        system_log.write(store, Level.ERROR, Category.AUTHENTICATION,
                         "Connection test failed" + ("; credentials not saved" if not saved else ""), check.details)


def save_credentials(store: Store, creds: Credentials) -> Path:
    path = credential_store.save(creds)
    system_log.write(store, Level.INFO, Category.AUTHENTICATION, "Credentials saved",
                     f"company {creds.company_id}, URL {creds.url}, file {path} (mode 0600)")
    return path


def cache_agreement_types(store: Store, types: list[CWAgreementType]) -> None:
    stamp = now_utc()
    with store.atomic():
        AgreementType.delete().execute()
        for t in types:
            AgreementType.create(id=t.id, name=t.name or "", inactive=bool(t.inactiveFlag), synced_at=stamp)


async def fetch_agreement_types(store: Store, creds: Credentials) -> list[AgreementType]:
    async with ConnectWiseClient(creds, retries=2) as client:
        cache_agreement_types(store, await client.agreement_types())
    return active_agreement_types()


