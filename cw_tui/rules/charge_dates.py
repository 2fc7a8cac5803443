"""Charge dates and their badges (SPEC §9).

Each line carries an effective Charge Start Date and Charge End Date with a badge telling
where the value came from: USER (typed by a person) beats SYSTEM (a configured rule, applied
when the line is loaded) beats DEFAULT (no badge): start = the Platform's charge start date;
end = last day of the start month for one-time lines, none for recurring lines.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum

from cw_tui.rules.periods import first_day_of_following_month, last_day_of_month
from cw_tui.rules.vocabulary import BillingCycle, ChargeType


class Badge(StrEnum):
    DEFAULT = "default"
    SYSTEM = "system"
    USER = "user"


class EndRule(StrEnum):
    DEFAULT = "default"
    LAST_DAY_OF_INVOICE_MONTH = "last_day_of_invoice_month"
    FIRST_DAY_OF_FOLLOWING_MONTH = "first_day_of_following_month"
    KEEP_PLATFORM = "keep_platform"
    NO_END_DATE = "no_end_date"

    @property
    def label(self) -> str:
        return END_RULE_LABELS[self]


class StartRule(StrEnum):
    DEFAULT = "default"
    FIRST_DAY_OF_INVOICE_MONTH = "first_day_of_invoice_month"
    INVOICE_DATE = "invoice_date"
    FIRST_DAY_OF_FOLLOWING_MONTH = "first_day_of_following_month"

    @property
    def label(self) -> str:
        return START_RULE_LABELS[self]


END_RULE_LABELS = {
    EndRule.DEFAULT: "Default",
    EndRule.LAST_DAY_OF_INVOICE_MONTH: "Last day of invoice month",
    EndRule.FIRST_DAY_OF_FOLLOWING_MONTH: "First day of following month",
    EndRule.KEEP_PLATFORM: "Keep Platform charge end date",
    EndRule.NO_END_DATE: "No end date",
}
START_RULE_LABELS = {
    StartRule.DEFAULT: "Default (keep Platform charge start date)",
    StartRule.FIRST_DAY_OF_INVOICE_MONTH: "First day of invoice month",
    StartRule.INVOICE_DATE: "Invoice date",
    StartRule.FIRST_DAY_OF_FOLLOWING_MONTH: "First day of following month",
}


@dataclass(frozen=True)
class ChargeDateRules:
    """End rules per charge type, start rules per billing cycle; missing keys mean Default."""

    end: dict[ChargeType, EndRule]
    start: dict[BillingCycle, StartRule]

    @classmethod
    def defaults(cls) -> ChargeDateRules:
        return cls(end={}, start={})

    def end_rule(self, charge_type: ChargeType) -> EndRule:
        return self.end.get(charge_type, EndRule.DEFAULT)

    def start_rule(self, cycle: BillingCycle) -> StartRule:
        return self.start.get(cycle, StartRule.DEFAULT)


@dataclass(frozen=True)
class ChargeDates:
    start: date
    start_badge: Badge
    end: date | None
    end_badge: Badge


@dataclass(frozen=True)
class LineDates:
    """What the rules need to know of an invoice line."""

    invoice_date: date
    charge_type: ChargeType
    billing_cycle: BillingCycle
    platform_start: date
    platform_end: date | None


def default_end(charge_type: ChargeType, start: date) -> date | None:
    return None if charge_type.recurring else last_day_of_month(start)


def _rule_start(rule: StartRule, line: LineDates) -> date:
    match rule:
        case StartRule.FIRST_DAY_OF_INVOICE_MONTH:
            return line.invoice_date.replace(day=1)
        case StartRule.INVOICE_DATE:
            return line.invoice_date
        case StartRule.FIRST_DAY_OF_FOLLOWING_MONTH:
            return first_day_of_following_month(line.invoice_date)
    raise AssertionError(rule)


def _rule_end(rule: EndRule, line: LineDates) -> date | None:
    match rule:
        case EndRule.LAST_DAY_OF_INVOICE_MONTH:
            return last_day_of_month(line.invoice_date)
        case EndRule.FIRST_DAY_OF_FOLLOWING_MONTH:
            return first_day_of_following_month(line.invoice_date)
        case EndRule.KEEP_PLATFORM:
            return line.platform_end
        case EndRule.NO_END_DATE:
            return None
    raise AssertionError(rule)


def charge_dates_at_load(
    line: LineDates,
    rules: ChargeDateRules,
    user_start: date | None = None,
    user_end: date | None = None,
    user_end_set: bool = False,
) -> ChargeDates:
    """The dates a line gets when it is (re)loaded. Values a person typed earlier are passed
    back in and win (a person may also have cleared the end date: `user_end_set` with None)."""
    if user_start is not None:
        start, start_badge = user_start, Badge.USER
    elif (start_rule := rules.start_rule(line.billing_cycle)) is not StartRule.DEFAULT:
        start, start_badge = _rule_start(start_rule, line), Badge.SYSTEM
    else:
        start, start_badge = line.platform_start, Badge.DEFAULT

    if user_end is not None or user_end_set:
        end, end_badge = user_end, Badge.USER
    elif (end_rule := rules.end_rule(line.charge_type)) is not EndRule.DEFAULT:
        end, end_badge = _rule_end(end_rule, line), Badge.SYSTEM
    else:
        end, end_badge = default_end(line.charge_type, start), Badge.DEFAULT
    return ChargeDates(start, start_badge, end, end_badge)


_UNCHANGED = object()


def edit_charge_dates(
    current: ChargeDates,
    charge_type: ChargeType,
    start: date | object = _UNCHANGED,
    end: date | None | object = _UNCHANGED,
) -> ChargeDates:
    """A person types a date: it earns the USER badge. A default end follows a new start."""
    result = current
    if start is not _UNCHANGED:
        assert isinstance(start, date)
        result = replace(result, start=start, start_badge=Badge.USER)
        if result.end_badge is Badge.DEFAULT:
            result = replace(result, end=default_end(charge_type, start))
    if end is not _UNCHANGED:
        assert end is None or isinstance(end, date)
        result = replace(result, end=end, end_badge=Badge.USER)
    if result.end is not None and result.end < result.start:
        raise ValueError(
            f"Charge End Date {result.end.isoformat()} is before Charge Start Date "
            f"{result.start.isoformat()}"
        )
    return result
