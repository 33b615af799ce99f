"""Errors of the connectors.

    ConnectorError
    ├── SourceUnavailable   the event source (a NATS server, Kafka, SQS) cannot be reached now;
    │                       sources log it, back off and try again: never a reason to exit
    └── ScheduleError       a cron schedule (or its time zone / concurrency annotation) is invalid;
                            the function is skipped and the error logged once per change

Bus errors are not wrapped here: the publisher retries every failed publish until JetStream acks
it (a connector never exits on a transient bus error), so no bus error escapes a hand-off.
Settings errors are the bus layer's :class:`faasbus.bus.SettingsError` (they name the variable).
"""

from __future__ import annotations

__all__ = ["ConnectorError", "ScheduleError", "SourceUnavailable"]


class ConnectorError(Exception):
    """Base of every connector error."""


class SourceUnavailable(ConnectorError):
    """The event source could not be reached; ``url`` is where we tried."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class ScheduleError(ConnectorError):
    """A schedule that cannot be used; ``schedule`` is the text, ``problem`` why."""

    def __init__(self, schedule: str, problem: str) -> None:
        super().__init__(f"invalid schedule {schedule!r}: {problem}")
        self.schedule = schedule
        self.problem = problem
