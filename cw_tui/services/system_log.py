"""System Logs (SPEC §13): write, query, purge. No secret ever reaches an entry: every text
is passed through `redact`, which removes registered secrets and credential-shaped text."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import peewee as pw

from cw_tui.store import LogEntry, Store, now_utc

RETENTION = timedelta(days=30)


class Level(StrEnum):
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class Category(StrEnum):
    AUTHENTICATION = "Authentication"
    CONFIGURATION = "Configuration"
    ORGANIZATIONS = "Organizations"
    PRODUCTS = "Products"
    INVOICES = "Invoices"
    SYNC = "Sync"


_secrets: set[str] = set()
_secrets_lock = threading.Lock()
# Authorization headers and key=value pairs that look like credentials, also as JSON
# (`"clientId": "..."`: an answer may echo the request's headers).
_CREDENTIAL_PATTERNS = [
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(basic|bearer)\s+[A-Za-z0-9+/=._-]+"),
    re.compile(r"(?i)((?:private[_ -]?key|privatekey|client[_ -]?id|clientid|password)[\"']?\s*[:=]\s*)"
               r"(\"[^\"]*\"|'[^']*'|\S+)"),
]
MASK = "********"


MIN_SECRET_LENGTH = 8  # shorter "secrets" would mask ordinary words in every message


def register_secret(value: str | None) -> None:
    """Remember a secret so that it is masked wherever it would be written."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    for pattern in _CREDENTIAL_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


_purged: dict[str, float] = {}  # database file -> when this process last purged it
PURGE_EVERY_S = 3600


def write(
    store: Store,
    level: Level,
    category: Category,
    summary: str,
    details: str = "",
    *,
    at: datetime | None = None,
) -> LogEntry:
    """Old entries are purged along with a write (at most hourly per process): reading the
    logs, or a status, never needs the write lock."""
    key = str(store.path)
    if time.monotonic() - _purged.get(key, -PURGE_EVERY_S) >= PURGE_EVERY_S:
        _purged[key] = time.monotonic()
        purge(store)
    return LogEntry.create(
        timestamp=at or now_utc(),
        level=Level(level).value,
        category=Category(category).value,
        summary=redact(summary)[:500],
        details=redact(details)[:20_000],
    )


@dataclass(frozen=True)
class LogQuery:
    level: Level | None = None
    category: Category | None = None
    text: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_id: int | None = None  # for live panes: only entries newer than this


def _select(store: Store, query: LogQuery):
    select = LogEntry.select()
    if query.level:
        select = select.where(LogEntry.level == query.level.value)
    if query.category:
        select = select.where(LogEntry.category == query.category.value)
    if query.text:
        # literal: % and _ are what they are, not wildcards (case-insensitive for ASCII, as LIKE)
        wanted = query.text.strip().lower()
        found = store.backend.position  # instr on SQLite, strpos on PostgreSQL: no wildcards either way
        select = select.where((found(pw.fn.lower(LogEntry.summary), wanted) > 0)
                              | (found(pw.fn.lower(LogEntry.details), wanted) > 0)
                              | (found(pw.fn.lower(LogEntry.category), wanted) > 0))
    if query.since:
        select = select.where(LogEntry.timestamp >= query.since)
    if query.until:
        select = select.where(LogEntry.timestamp < query.until)
    if query.after_id is not None:
        select = select.where(LogEntry.id > query.after_id)
    return select


def entries(store: Store, query: LogQuery = LogQuery(), *, offset: int = 0, limit: int = 100) -> list[LogEntry]:
    """Newest first."""
    select = _select(store, query).order_by(LogEntry.timestamp.desc(), LogEntry.id.desc())
    return list(select.offset(offset).limit(limit))


def count(store: Store, query: LogQuery = LogQuery()) -> int:
    return _select(store, query).count()


def purge(store: Store, now: datetime | None = None) -> int:
    """Delete entries older than 30 days; returns how many."""
    cutoff = (now or now_utc()) - RETENTION
    return LogEntry.delete().where(LogEntry.timestamp < cutoff).execute()
