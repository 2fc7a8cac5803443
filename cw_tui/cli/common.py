"""What every command shares: exit codes, usage errors, the database, the client."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cw_tui.rules.vocabulary import parse_enum
from cw_tui.services import credentials as credential_store
from cw_tui.services import settings
from cw_tui.services.paths import default_database_path, is_database_url
from cw_tui.store import (
    Store,
    now_utc,
    open_store,
)

if TYPE_CHECKING:
    from cw_tui.services.connectwise import ConnectWiseClient


EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A configuration or usage problem; exit 2 with this message."""


class ConnectionRefusedByConnectWise(UsageError):
    """`connect` failed: nothing was saved."""

    def __init__(self, check: Any) -> None:
        # a malformed field was refused before anything was sent: ConnectWise said nothing
        source = "" if check.kind == "settings" else "ConnectWise: "
        super().__init__(f"{source}{check.message}; nothing was saved")


def _database_path(args: argparse.Namespace) -> tuple[Path | str, bool]:
    """The database (a file, or a postgresql:// URL as given), and whether it is the default
    location (whose folder may be created)."""
    if getattr(args, "db", None):
        if is_database_url(args.db):
            return args.db, False
        return Path(args.db).expanduser(), False
    return default_database_path(), not os.environ.get("CW_TUI_DB")


def _store(args: argparse.Namespace) -> Store:
    path, default = _database_path(args)
    return open_store(path, create_folder=default)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _parse_since(text: str) -> datetime:
    match = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        delta = {"m": timedelta(minutes=amount), "h": timedelta(hours=amount), "d": timedelta(days=amount), "w": timedelta(weeks=amount)}[unit]
        return now_utc() - delta
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--since: {text!r} is neither a duration like 7d, 12h, 30m nor a date YYYY-MM-DD") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _platform_dir(store: Store, args: argparse.Namespace) -> Path:
    if getattr(args, "platform_dir", None):
        return Path(args.platform_dir)
    config = settings.load_configuration(store)
    if not config.platform_dir:
        raise UsageError("no Platform export folder is configured: run `cw-tui configure --platform-dir DIR` (or pass --platform-dir)")
    return Path(config.platform_dir)


def _assignment(text: str, keys: type, values: type, option: str) -> tuple[Any, Any]:
    if "=" not in text:
        raise UsageError(f"{option}: expected NAME=RULE, got {text!r}")
    key_text, value_text = text.split("=", 1)
    try:
        key = parse_enum(keys, key_text)
    except ValueError as error:
        raise UsageError(f"{option}: {error}") from None
    if values is str:
        return key, value_text.strip()
    try:
        return key, values(value_text.strip().lower().replace(" ", "_").replace("-", "_"))
    except ValueError:
        allowed = ", ".join(v.value for v in values)
        raise UsageError(f"{option}: unknown rule {value_text!r} (expected one of: {allowed})") from None


def _client(**options: Any) -> ConnectWiseClient:
    from cw_tui.services.connectwise import ConnectWiseClient  # here: most commands need no HTTP client

    creds = credential_store.current()
    if creds is None or not creds.complete():
        missing = ", ".join(creds.missing()) if creds else "all"
        raise UsageError(f"no ConnectWise credentials ({missing} missing): run `cw-tui connect` first")
    return ConnectWiseClient(creds, **options)


def _run(coroutine_factory: Callable[[ConnectWiseClient], Any], **options: Any) -> Any:
    async def main() -> Any:
        async with _client(**options) as client:
            return await coroutine_factory(client)

    return asyncio.run(main())
