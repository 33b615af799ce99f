"""Cron connector settings: the shared connector settings plus

    catchup_window          0        a tick missed while no cron connector ran fires once at
                                     start when it is at most this old (0: missed ticks are
                                     skipped); alias FAASBUS_CRON_CATCHUP_WINDOW
    FAASBUS_CRON_TIMEZONE   UTC      time zone of schedules without a prefix or annotation

(``topics`` is not used: the cron connector serves exactly the topic ``cron-function``.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from faasbus.bus import Env, SettingsError
from faasbus.connectors.sdk import ConnectorSettings

__all__ = ["CronSettings"]


@dataclass(frozen=True)
class CronSettings:
    common: ConnectorSettings = field(default_factory=ConnectorSettings)
    catchup_window_s: float = 0.0
    default_timezone: str = "UTC"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        env = Env(environ)
        zone = env.text("FAASBUS_CRON_TIMEZONE", "UTC")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(
                "FAASBUS_CRON_TIMEZONE", zone, "an IANA time zone such as Europe/Berlin"
            ) from None
        return cls(
            common=ConnectorSettings.from_env(environ),
            catchup_window_s=env.duration("catchup_window", 0.0, "FAASBUS_CRON_CATCHUP_WINDOW"),
            default_timezone=zone,
        )
