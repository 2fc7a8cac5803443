"""A real evaluator for the subset of ConnectWise `conditions` the sandbox supports:
`= != < > <= >=`, `like` (with `*`), `contains`, `in`, `not`, `and`/`or`, parentheses,
nested fields (`company/id`), strings, numbers, True/False, null and `[datetimes]`.
String comparisons ignore case, as ConnectWise's SQL Server collation does."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any


class ConditionError(ValueError):
    pass


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<datetime>\[[^\]]*\])
      | (?P<op><=|>=|!=|=|<|>)
      | (?P<paren>[(),])
      | (?P<number>-?\d+(?:\.\d+)?)(?![A-Za-z_/])
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)


@dataclass
class _Token:
    kind: str
    text: str


def _tokens(text: str) -> list[_Token]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ConditionError(f"cannot parse conditions at position {pos}: {text[pos:pos + 20]!r}")
        kind = match.lastgroup or ""
        tokens.append(_Token(kind, match.group(kind)))
        pos = match.end()
    return tokens


Predicate = Callable[[dict], bool]


def _parse_datetime(text: str) -> datetime:
    inner = text[1:-1].strip()
    try:
        return datetime.fromisoformat(inner.replace("Z", "+00:00"))
    except ValueError:
        raise ConditionError(f"not a datetime: {text}") from None


def _get(record: dict, path: str) -> Any:
    value: Any = record
    for part in path.split("/"):
        if not isinstance(value, dict):
            return None
        # field names are case-insensitive in ConnectWise conditions
        if part in value:
            value = value[part]
        else:
            value = next((v for k, v in value.items() if k.lower() == part.lower()), None)
    return value


def _normalise(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


def _compare(left: Any, op: str, right: Any) -> bool:
    if isinstance(right, datetime) and isinstance(left, str):
        try:
            left = datetime.fromisoformat(left.replace("Z", "+00:00"))
        except ValueError:
            return False
    left, right = _normalise(left), _normalise(right)
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    if left is None or right is None:
        return False
    try:
        return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op]
    except TypeError:
        return False


class _Parser:
    def __init__(self, tokens: list[_Token]):
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self) -> _Token:
        token = self.peek()
        if token is None:
            raise ConditionError("conditions end too early")
        self.pos += 1
        return token

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        if token and token.kind == "word" and token.text.lower() in words:
            self.pos += 1
            return True
        return False

    def parse(self) -> Predicate:
        predicate = self.or_expr()
        if self.peek() is not None:
            raise ConditionError(f"unexpected {self.peek().text!r} in conditions")  # type: ignore[union-attr]
        return predicate

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.keyword("or"):
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def and_expr(self) -> Predicate:
        parts = [self.unary()]
        while self.keyword("and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def unary(self) -> Predicate:
        if self.keyword("not"):
            inner = self.unary()
            return lambda r: not inner(r)
        token = self.peek()
        if token and token.kind == "paren" and token.text == "(":
            self.next()
            inner = self.or_expr()
            closing = self.next()
            if closing.text != ")":
                raise ConditionError("missing ')' in conditions")
            return inner
        return self.comparison()

    def value(self) -> Any:
        token = self.next()
        if token.kind == "string":
            return re.sub(r"\\(.)", r"\1", token.text[1:-1])
        if token.kind == "number":
            try:
                return Decimal(token.text)
            except InvalidOperation:
                raise ConditionError(f"not a number: {token.text}") from None
        if token.kind == "datetime":
            return _parse_datetime(token.text)
        if token.kind == "word" and token.text.lower() in ("true", "false"):
            return token.text.lower() == "true"
        if token.kind == "word" and token.text.lower() == "null":
            return None
        raise ConditionError(f"expected a value, found {token.text!r}")

    def comparison(self) -> Predicate:
        field_token = self.next()
        if field_token.kind != "word":
            raise ConditionError(f"expected a field name, found {field_token.text!r}")
        field = field_token.text
        negate = self.keyword("not")
        token = self.next()
        if token.kind == "op" and not negate:
            op, right = token.text, self.value()
            return lambda r: _compare(_get(r, field), op, right)
        word = token.text.lower() if token.kind == "word" else ""
        if word == "contains":
            needle = self.value()
            if not isinstance(needle, str):
                raise ConditionError("contains needs a string")
            folded = needle.casefold()
            def test(r: dict) -> bool:
                return isinstance(_get(r, field), str) and folded in _get(r, field).casefold()
        elif word == "like":
            pattern = self.value()
            if not isinstance(pattern, str):
                raise ConditionError("like needs a string")
            pattern = pattern.replace("[[]", "\x00")
            regex = re.compile(
                "^" + ".*".join(re.escape(part) for part in pattern.split("*")).replace("\x00", r"\[") + "$",
                re.IGNORECASE | re.DOTALL,
            )
            def test(r: dict) -> bool:
                return isinstance(_get(r, field), str) and bool(regex.match(_get(r, field)))
        elif word == "in":
            opening = self.next()
            if opening.text != "(":
                raise ConditionError("in needs a list in parentheses")
            values = [self.value()]
            while self.peek() and self.peek().text == ",":  # type: ignore[union-attr]
                self.next()
                values.append(self.value())
            if self.next().text != ")":
                raise ConditionError("missing ')' after the in list")
            normalised = [_normalise(v) for v in values]
            def test(r: dict) -> bool:
                return _normalise(_get(r, field)) in normalised
        else:
            raise ConditionError(f"expected an operator after {field}, found {token.text!r}")
        return (lambda r: not test(r)) if negate else test


def compile_conditions(text: str | None) -> Predicate:
    if text is None or not text.strip():
        return lambda record: True
    return _Parser(_tokens(text)).parse()
