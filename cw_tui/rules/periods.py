"""Invoice periods are calendar months, written YYYY-MM."""

from __future__ import annotations

import calendar
import re
from datetime import date

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def period_of(day: date) -> str:
    return day.isoformat()[:7]


def parse_period(text: str) -> tuple[int, int]:
    match = _PERIOD.match(text.strip())
    if not match:
        raise ValueError(f"not a period: {text!r} (expected YYYY-MM)")
    return int(match.group(1)), int(match.group(2))


def first_day(period: str) -> date:
    year, month = parse_period(period)
    return date(year, month, 1)


def last_day(period: str) -> date:
    year, month = parse_period(period)
    return date(year, month, calendar.monthrange(year, month)[1])


def last_day_of_month(day: date) -> date:
    return date(day.year, day.month, calendar.monthrange(day.year, day.month)[1])


def first_day_of_following_month(day: date) -> date:
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)


def shift_period(period: str, months: int) -> str:
    year, month = parse_period(period)
    index = year * 12 + (month - 1) + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def resolve_period(text: str, today: date) -> str:
    """`current`, `previous` or YYYY-MM, relative to `today` (a UTC date)."""
    word = text.strip().lower()
    if word == "current":
        return period_of(today)
    if word == "previous":
        return shift_period(period_of(today), -1)
    parse_period(text)
    return text.strip()


def months_back(today: date, months: int) -> date:
    """The same day `months` months earlier, clamped to the month's length
    (18 May 2026, 3 -> 18 Feb 2026; 31 May, 3 -> 28 Feb)."""
    index = today.year * 12 + (today.month - 1) - months
    year, month = index // 12, index % 12 + 1
    return date(year, month, min(today.day, calendar.monthrange(year, month)[1]))
