"""NATS connector settings: the shared connector settings plus

    FAASBUS_NATS_SOURCE_URL      (the bus's)   the NATS server(s) whose subjects are read; comma
                                               list for a cluster. Default: FAASBUS_NATS_URL
    topics                       (none)        subjects to subscribe (wildcards allowed); the topic
                                               of a message is its subject
    FAASBUS_NATS_SUBJECT_PREFIX  (none)        instead: subscribe ``<prefix>.>`` and use the rest
                                               of the subject as the topic (``events.orders`` →
                                               ``orders`` with prefix ``events``)
    FAASBUS_NATS_QUEUE_GROUP     faasbus-nats-connector   queue group, so several connectors
                                               share the messages instead of each taking all
    FAASBUS_NATS_REPLY           ack           what a message with a reply subject is answered:
                                               ack (once the bus has every invocation),
                                               response (the function's response), none

With neither ``topics`` nor a prefix, the connector follows the topic map: it subscribes to every
topic some function names that is a plain subject (no wildcards), and follows changes.

The bus's own subjects (``faas.``, ``$JS``/``$KV``, ``_INBOX.``) are never read as topics when the
source is the bus: subscribing to them would feed the platform's traffic back into it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Self

from faasbus.bus import Env, SettingsError
from faasbus.connectors.sdk import ConnectorSettings

__all__ = ["REPLY_MODES", "NatsSettings", "is_plain_subject", "is_reserved_subject"]

REPLY_MODES = frozenset({"ack", "response", "none"})
_RESERVED_PREFIXES = ("faas.", "$", "_INBOX.")
_PART = r"[^\s.*>]+"
_PLAIN = re.compile(rf"^{_PART}(\.{_PART})*$")
_PATTERN = re.compile(r"^([^\s.*>]+|\*)(\.([^\s.*>]+|\*))*(\.>)?$|^>$")


def is_plain_subject(subject: str) -> bool:
    """A subject without wildcards or empty tokens."""
    return _PLAIN.fullmatch(subject) is not None


def is_reserved_subject(subject: str) -> bool:
    return subject.startswith(_RESERVED_PREFIXES) or subject in (">", "*") or subject == "faas"


@dataclass(frozen=True)
class NatsSettings:
    common: ConnectorSettings = field(default_factory=ConnectorSettings)
    source_url: str = ""
    subject_prefix: str = ""
    queue_group: str = "faasbus-nats-connector"
    reply_mode: str = "ack"

    @property
    def source_is_bus(self) -> bool:
        return self.source_url == self.common.bus.nats_url

    @property
    def servers(self) -> list[str]:
        return [url.strip() for url in self.source_url.split(",") if url.strip()]

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        env = Env(environ)
        common = ConnectorSettings.from_env(environ)
        d = cls()
        prefix = env.text("FAASBUS_NATS_SUBJECT_PREFIX", "").rstrip(".")
        settings = cls(
            common=common,
            source_url=env.text("FAASBUS_NATS_SOURCE_URL", common.bus.nats_url),
            subject_prefix=prefix + "." if prefix else "",
            queue_group=env.text("FAASBUS_NATS_QUEUE_GROUP", d.queue_group),
            reply_mode=env.choice("FAASBUS_NATS_REPLY", d.reply_mode, REPLY_MODES),
        )
        if prefix and common.topics:
            raise SettingsError(
                "FAASBUS_NATS_SUBJECT_PREFIX", prefix, "unset when topics lists subjects"
            )
        if prefix and not is_plain_subject(prefix):
            raise SettingsError(
                "FAASBUS_NATS_SUBJECT_PREFIX", prefix, "a subject prefix without wildcards"
            )
        for subject in common.topics:
            if _PATTERN.fullmatch(subject) is None:
                raise SettingsError("topics", ",".join(common.topics), "NATS subjects")
            if settings.source_is_bus and is_reserved_subject(subject):
                raise SettingsError(
                    "topics", subject, "subjects outside faas., $ and _INBOX. on the bus server"
                )
        if prefix and settings.source_is_bus and is_reserved_subject(prefix + "."):
            raise SettingsError(
                "FAASBUS_NATS_SUBJECT_PREFIX", prefix, "a prefix outside the bus's own subjects"
            )
        return settings
