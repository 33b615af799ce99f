"""faasbus.connectors.cron — functions with ``topic: cron-function`` run on their ``schedule``.

Run with ``python -m faasbus.connectors.cron``. Schedules and time zones:
:mod:`faasbus.connectors.cron.schedule`; firing, exactly-once and concurrency:
:mod:`faasbus.connectors.cron.source`; catch-up policy: :mod:`faasbus.connectors.cron.jobs`.
"""

from faasbus.connectors.cron.jobs import Due, Job, JobTable
from faasbus.connectors.cron.schedule import (
    CONCURRENCY_ANNOTATION,
    CRON_TOPIC,
    SCHEDULE_ANNOTATION,
    TIMEZONE_ANNOTATION,
    CronSpec,
    Schedule,
    cron_spec,
    parse_schedule,
)
from faasbus.connectors.cron.settings import CronSettings
from faasbus.connectors.cron.source import CronSource
from faasbus.connectors.sdk import Connector

__all__ = [
    "CONCURRENCY_ANNOTATION",
    "CONNECTOR",
    "CRON_TOPIC",
    "SCHEDULE_ANNOTATION",
    "TIMEZONE_ANNOTATION",
    "CronSettings",
    "CronSource",
    "CronSpec",
    "Due",
    "Job",
    "JobTable",
    "Schedule",
    "cron_spec",
    "parse_schedule",
]

CONNECTOR = Connector(name="cron", settings=CronSettings.from_env, source=CronSource)
