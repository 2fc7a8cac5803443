"""The client's conditions builder and the sandbox's evaluator: what one writes, the other
reads back exactly, for any value."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cw_tui.sandbox.app import _spaces
from cw_tui.sandbox.conditions import ConditionError, compile_conditions
from cw_tui.services.connectwise.conditions import all_of, any_of, condition, literal

RECORD = {"id": 250, "name": 'Smith & Sons "Plumbing" + Co', "status": {"id": 1, "name": "Active"},
          "cancelledFlag": False, "lastUpdated": "2026-01-15T10:00:00Z", "company": {"id": 7}}


def test_literals() -> None:
    assert literal('a "quoted" \\ value') == r'"a \"quoted\" \\ value"'
    assert literal(True) == "True" and literal(None) == "null" and literal(12) == "12"
    assert literal(datetime(2024, 1, 1, tzinfo=UTC)) == "[2024-01-01T00:00:00Z]"
    with pytest.raises(ValueError):
        condition("name; drop", "=", "x")
    with pytest.raises(ValueError):
        condition("name", "~", "x")


@pytest.mark.parametrize(("text", "expected"), [
    ('name="smith & sons \\"plumbing\\" + co"', True),  # case-insensitive
    ("company/id=7 and status/name=\"Active\"", True),
    ("(company/id=8) or (status/name != \"Active\")", False),
    ('name like "Smith*"', True),
    ('name like "*Co"', True),
    ('name like "Smith"', False),
    ('name contains "plumbing"', True),
    ('name not contains "plumbing"', False),
    ("id in (1, 250, 3)", True),
    ("id not in (1, 2)", True),
    ("id >= 250 and id < 251", True),
    ("cancelledFlag=False", True),
    ("cancelledFlag=true", False),
    ("lastUpdated > [2026-01-01T00:00:00Z]", True),
    ("lastUpdated < [2026-01-01T00:00:00Z]", False),
    ("not (id=250)", False),
    ("missing/field=null", True),
])
def test_sandbox_evaluates_conditions(text: str, expected: bool) -> None:
    assert compile_conditions(text)(RECORD) is expected


@pytest.mark.parametrize("text", ['name = "unclosed', "id in 1, 2", "id ==", "(id=1", "id=1 and"])
def test_bad_conditions_are_errors(text: str) -> None:
    with pytest.raises(ConditionError):
        compile_conditions(text)


values = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
    st.integers(-10**6, 10**6),
    st.booleans(),
)


@given(values, values)
def test_what_the_client_writes_the_sandbox_reads(value: object, other: object) -> None:
    # as ConnectWise stores what was sent: control characters as spaces
    record = _spaces({"field": value, "nested": {"other": other}})
    same = all_of(condition("field", "=", value), condition("nested/other", "=", other))
    assert compile_conditions(same)(record)
    different = condition("field", "!=", value)
    assert not compile_conditions(different)(record)
    assert compile_conditions(any_of(different, condition("nested/other", "=", other)))(record)
    if isinstance(value, str) and value:
        assert compile_conditions(condition("field", "contains", value))(record)


def test_control_characters_are_looked_up_as_the_spaces_connectwise_stored() -> None:
    assert condition("name", "=", "a\nb\x1bc") == 'name="a b c"'
    assert compile_conditions(condition("name", "=", "a\nb"))(_spaces({"name": "a\nb"}))
