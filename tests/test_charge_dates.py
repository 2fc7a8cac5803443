"""Property tests of the charge-date rules and badge precedence (SPEC §9)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cw_tui.rules.charge_dates import (
    Badge,
    ChargeDateRules,
    ChargeDates,
    EndRule,
    LineDates,
    StartRule,
    charge_dates_at_load,
    default_end,
    edit_charge_dates,
)
from cw_tui.rules.periods import months_back
from cw_tui.rules.vocabulary import BillingCycle, ChargeType

days = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))


@st.composite
def lines(draw) -> LineDates:
    start = draw(days)
    end = draw(st.none() | st.integers(0, 1200).map(lambda n: start + timedelta(days=n)))
    return LineDates(
        invoice_date=draw(days),
        charge_type=draw(st.sampled_from(ChargeType)),
        billing_cycle=draw(st.sampled_from(BillingCycle)),
        platform_start=start,
        platform_end=end,
    )


rule_sets = st.builds(
    ChargeDateRules,
    end=st.dictionaries(st.sampled_from(ChargeType), st.sampled_from(EndRule)),
    start=st.dictionaries(st.sampled_from(BillingCycle), st.sampled_from(StartRule)),
)


@given(lines())
def test_without_rules_or_edits_the_defaults_apply(line: LineDates) -> None:
    dates = charge_dates_at_load(line, ChargeDateRules.defaults())
    assert dates.start == line.platform_start and dates.start_badge is Badge.DEFAULT
    assert dates.end_badge is Badge.DEFAULT
    if line.charge_type.recurring:
        assert dates.end is None
    else:
        # the last day of the start month
        assert dates.end is not None and (dates.end.year, dates.end.month) == (dates.start.year, dates.start.month)
        assert (dates.end + timedelta(days=1)).day == 1


@given(lines(), rule_sets, days, st.none() | days)
def test_user_values_beat_every_rule(line: LineDates, rules: ChargeDateRules, user_start: date, user_end: date | None) -> None:
    dates = charge_dates_at_load(line, rules, user_start=user_start, user_end=user_end, user_end_set=True)
    assert (dates.start, dates.start_badge) == (user_start, Badge.USER)
    assert (dates.end, dates.end_badge) == (user_end, Badge.USER)


@given(lines(), rule_sets)
def test_a_configured_rule_gives_the_system_badge_and_default_rules_none(line: LineDates, rules: ChargeDateRules) -> None:
    dates = charge_dates_at_load(line, rules)
    start_rule = rules.start_rule(line.billing_cycle)
    end_rule = rules.end_rule(line.charge_type)
    assert dates.start_badge is (Badge.DEFAULT if start_rule is StartRule.DEFAULT else Badge.SYSTEM)
    assert dates.end_badge is (Badge.DEFAULT if end_rule is EndRule.DEFAULT else Badge.SYSTEM)


@given(lines(), rule_sets)
def test_each_rule_computes_its_date(line: LineDates, rules: ChargeDateRules) -> None:
    dates = charge_dates_at_load(line, rules)
    inv = line.invoice_date
    match rules.start_rule(line.billing_cycle):
        case StartRule.DEFAULT:
            assert dates.start == line.platform_start
        case StartRule.FIRST_DAY_OF_INVOICE_MONTH:
            assert dates.start == date(inv.year, inv.month, 1)
        case StartRule.INVOICE_DATE:
            assert dates.start == inv
        case StartRule.FIRST_DAY_OF_FOLLOWING_MONTH:
            assert dates.start.day == 1 and dates.start > inv and (dates.start - inv).days <= 31
    match rules.end_rule(line.charge_type):
        case EndRule.DEFAULT:
            assert dates.end == default_end(line.charge_type, dates.start)
        case EndRule.LAST_DAY_OF_INVOICE_MONTH:
            assert dates.end is not None and (dates.end.year, dates.end.month) == (inv.year, inv.month)
            assert (dates.end + timedelta(days=1)).day == 1
        case EndRule.FIRST_DAY_OF_FOLLOWING_MONTH:
            assert dates.end is not None and dates.end.day == 1 and 0 < (dates.end - inv).days <= 31
        case EndRule.KEEP_PLATFORM:
            assert dates.end == line.platform_end
        case EndRule.NO_END_DATE:
            assert dates.end is None


@given(lines(), rule_sets, days)
def test_typing_a_start_date_moves_a_default_end_but_not_a_rule_end(line: LineDates, rules: ChargeDateRules, new_start: date) -> None:
    loaded = charge_dates_at_load(line, rules)
    try:
        edited = edit_charge_dates(loaded, line.charge_type, start=new_start)
    except ValueError:
        # only when a kept end date would fall before the new start
        assert loaded.end_badge is not Badge.DEFAULT and loaded.end is not None and loaded.end < new_start
        return
    assert (edited.start, edited.start_badge) == (new_start, Badge.USER)
    if loaded.end_badge is Badge.DEFAULT:
        assert edited.end == default_end(line.charge_type, new_start) and edited.end_badge is Badge.DEFAULT
    else:
        assert (edited.end, edited.end_badge) == (loaded.end, loaded.end_badge)


@given(lines(), rule_sets)
def test_reloading_keeps_typed_dates_under_any_later_rules(line: LineDates, rules: ChargeDateRules) -> None:
    loaded = charge_dates_at_load(line, ChargeDateRules.defaults())
    typed = ChargeDates(loaded.start, Badge.USER, None, Badge.USER)  # a person cleared the end date
    reloaded = charge_dates_at_load(line, rules, user_start=typed.start, user_end=None, user_end_set=True)
    assert reloaded == typed


def test_an_end_before_the_start_is_refused() -> None:
    loaded = charge_dates_at_load(
        LineDates(date(2026, 5, 3), ChargeType.USAGE_FEE, BillingCycle.NONE, date(2026, 5, 1), None), ChargeDateRules.defaults()
    )
    with pytest.raises(ValueError, match="before Charge Start Date"):
        edit_charge_dates(loaded, ChargeType.USAGE_FEE, end=date(2026, 4, 30))


def test_spec_examples_of_rolling_windows() -> None:
    # SPEC §5.2: on 18 May 2026, Last 3 months means invoices dated from about 18 February 2026
    assert months_back(date(2026, 5, 18), 3) == date(2026, 2, 18)
    assert months_back(date(2026, 5, 31), 3) == date(2026, 2, 28)
    assert months_back(date(2026, 1, 15), 1) == date(2025, 12, 15)
