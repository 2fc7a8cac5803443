"""Building ConnectWise `conditions` strings safely (API-NOTES §3.2): strings double-quoted
with escapes, datetimes in square brackets, booleans bare, each condition in parentheses."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal

_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")
# ConnectWise turns control characters in JSON strings into spaces (API-NOTES §3.2): a name
# sent with a line break is stored with a space, and is found by the same text only so.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_OPERATORS = {"=", "!=", "<", "<=", ">", ">=", "contains", "like", "not contains", "not like", "in", "not in"}


def literal(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a condition")
        return f"[{value.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}]"
    if isinstance(value, date):
        return f"[{value.isoformat()}T00:00:00Z]"
    if isinstance(value, str):
        value = _CONTROL.sub(" ", value)
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"cannot use {type(value).__name__} in a condition")


def condition(field: str, operator: str, value: object) -> str:
    if not _FIELD.match(field):
        raise ValueError(f"not a field path: {field!r}")
    operator = " ".join(operator.split()).lower()
    if operator not in _OPERATORS:
        raise ValueError(f"unknown operator: {operator!r}")
    if operator.endswith("in"):
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise ValueError("`in` needs a list of values")
        items = list(value)
        if not items:
            raise ValueError("`in` needs at least one value")
        return f"{field} {operator} ({', '.join(literal(v) for v in items)})"
    if operator.endswith("like") and isinstance(value, str):
        value = value.replace("[", "[[]")
    return f"{field}{operator}{literal(value)}" if operator in ("=", "!=", "<", "<=", ">", ">=") else f"{field} {operator} {literal(value)}"


def all_of(*conditions: str | None) -> str | None:
    parts = [c for c in conditions if c]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else " and ".join(f"({c})" for c in parts)


def any_of(*conditions: str | None) -> str | None:
    parts = [c for c in conditions if c]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else " or ".join(f"({c})" for c in parts)
