"""Column types: Decimal as integer micro-units, UTC datetimes and dates as sortable text."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import peewee as pw

from cw_tui.rules.money import from_micros, to_micros


class MicrosField(pw.BigIntegerField):
    """A Decimal stored exactly as integer micro-units."""

    def db_value(self, value: Decimal | None) -> int | None:
        return None if value is None else to_micros(Decimal(value))

    def python_value(self, value: int | None) -> Decimal | None:
        return None if value is None else from_micros(int(value))


class UTCDateTimeField(pw.TextField):
    """Aware UTC datetimes stored as sortable ISO text ('2026-11-21T21:00:00.000000Z')."""

    def db_value(self, value: datetime | None) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC field")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def python_value(self, value: str | None) -> datetime | None:
        if value is None:
            return None
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class ISODateField(pw.TextField):
    """A date stored as 'YYYY-MM-DD' (sorts correctly, reads back as a date)."""

    def db_value(self, value: date | None) -> str | None:
        return None if value is None else value.isoformat()

    def python_value(self, value: str | None) -> date | None:
        return None if value is None else date.fromisoformat(value)


def utc_to_text(value: datetime) -> str:
    return UTCDateTimeField().db_value(value)  # type: ignore[return-value]


def now_utc() -> datetime:
    return datetime.now(UTC)
