"""Configuration (SPEC §4 Configuration), kept in the store's `setting` table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from typing import Any

from pydantic import BaseModel, Field, field_validator

from cw_tui.rules.charge_dates import ChargeDateRules, EndRule, StartRule
from cw_tui.rules.vocabulary import BillingCycle, ChargeType
from cw_tui.services.store import Setting, Store


class AgreementTypeChoice(BaseModel):
    id: int
    name: str


class Configuration(BaseModel):
    agreement_type: AgreementTypeChoice | None = None
    end_rules: dict[ChargeType, EndRule] = Field(default_factory=dict)
    start_rules: dict[BillingCycle, StartRule] = Field(default_factory=dict)
    charge_type_names: dict[ChargeType, str] = Field(default_factory=dict)
    daily_sync: bool = False
    platform_dir: str | None = None

    @field_validator("charge_type_names")
    @classmethod
    def _names_not_blank(cls, value: dict[ChargeType, str]) -> dict[ChargeType, str]:
        cleaned = {}
        for key, name in value.items():
            name = " ".join(name.split())
            if not name:
                raise ValueError(f"the display name of {key.value} cannot be empty")
            if len(name) > 100:
                raise ValueError(f"the display name of {key.value} is longer than 100 characters")
            cleaned[key] = name
        return cleaned

    @property
    def rules(self) -> ChargeDateRules:
        return ChargeDateRules(end=dict(self.end_rules), start=dict(self.start_rules))

    def charge_type_name(self, charge_type: ChargeType) -> str:
        return self.charge_type_names.get(charge_type, charge_type.value)


_KEY = "configuration"


def load_configuration(store: Store) -> Configuration:
    row = Setting.get_or_none(Setting.key == _KEY)
    return Configuration() if row is None else Configuration.model_validate_json(row.value)


def save_configuration(store: Store, config: Configuration) -> None:
    value = config.model_dump_json()
    Setting.insert(key=_KEY, value=value).on_conflict_replace().execute()


def get_value(store: Store, key: str, default: Any = None) -> Any:
    row = Setting.get_or_none(Setting.key == key)
    return default if row is None else json.loads(row.value)


def set_value(store: Store, key: str, value: Any) -> None:
    Setting.insert(key=key, value=json.dumps(value)).on_conflict_replace().execute()


def next_daily_run(now: datetime) -> datetime:
    """The daily sync runs at 00:00 UTC."""
    tomorrow = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime.combine(tomorrow, time(0, 0), tzinfo=UTC)
