"""Configuration (SPEC §4 Configuration), kept in the store's `setting` table."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

from cw_tui.rules.charge_dates import ChargeDateRules, EndRule, StartRule
from cw_tui.rules.vocabulary import BillingCycle, ChargeType
from cw_tui.store import AgreementType, Setting, Store


@dataclass(frozen=True)
class AgreementTypeChoice:
    id: int
    name: str


class ConfigurationError(ValueError):
    pass


@dataclass
class Configuration:
    """A plain dataclass, not a pydantic model: it is read at every start, and building a
    pydantic schema for it cost a tenth of the app's startup."""

    agreement_type: AgreementTypeChoice | None = None
    end_rules: dict[ChargeType, EndRule] = field(default_factory=dict)
    start_rules: dict[BillingCycle, StartRule] = field(default_factory=dict)
    charge_type_names: dict[ChargeType, str] = field(default_factory=dict)
    daily_sync: bool = False
    platform_dir: str | None = None

    @property
    def rules(self) -> ChargeDateRules:
        return ChargeDateRules(end=dict(self.end_rules), start=dict(self.start_rules))

    def charge_type_name(self, charge_type: ChargeType) -> str:
        return self.charge_type_names.get(charge_type, charge_type.value)

    def validated(self) -> Configuration:
        """A copy with display names tidied; raises ConfigurationError for what cannot be saved."""
        names = {}
        for key, name in self.charge_type_names.items():
            name = " ".join(str(name).split())
            if not name:
                raise ConfigurationError(f"the display name of {key.value} cannot be empty")
            if len(name) > 100:
                raise ConfigurationError(f"the display name of {key.value} is longer than 100 characters")
            names[ChargeType(key)] = name
        return replace(self, charge_type_names=names)

    def to_json(self) -> dict[str, Any]:
        return {
            "agreement_type": None if self.agreement_type is None else {"id": self.agreement_type.id, "name": self.agreement_type.name},
            "end_rules": {k.value: v.value for k, v in self.end_rules.items()},
            "start_rules": {k.value: v.value for k, v in self.start_rules.items()},
            "charge_type_names": {k.value: v for k, v in self.charge_type_names.items()},
            "daily_sync": self.daily_sync,
            "platform_dir": self.platform_dir,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Configuration:
        try:
            chosen = data.get("agreement_type")
            return cls(
                agreement_type=None if not chosen else AgreementTypeChoice(int(chosen["id"]), str(chosen["name"])),
                end_rules={ChargeType(k): EndRule(v) for k, v in (data.get("end_rules") or {}).items()},
                start_rules={BillingCycle(k): StartRule(v) for k, v in (data.get("start_rules") or {}).items()},
                charge_type_names={ChargeType(k): str(v) for k, v in (data.get("charge_type_names") or {}).items()},
                daily_sync=bool(data.get("daily_sync", False)),
                platform_dir=data.get("platform_dir") or None,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigurationError(f"the saved configuration is damaged ({error}); save it again in Settings") from None


_KEY = "configuration"


def load_configuration(store: Store) -> Configuration:
    row = Setting.get_or_none(Setting.key == _KEY)
    return Configuration() if row is None else Configuration.from_json(json.loads(row.value))


def save_configuration(store: Store, config: Configuration) -> None:
    value = json.dumps(config.validated().to_json())
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


def active_agreement_types() -> list[AgreementType]:
    """The agreement types a person may choose (from the last look at ConnectWise)."""
    return list(AgreementType.select().where(AgreementType.inactive == False).order_by(AgreementType.name))  # noqa: E712
