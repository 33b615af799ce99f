"""Kafka connector settings: the shared connector settings plus (OpenFaaS Pro names first)

    broker_hosts          (required)    bootstrap brokers, comma list of ``host:port``
    topics                (none)        when set, only these Kafka topics are read (intersected
                                        with the topic map); otherwise every topic the map names
    group                 faas-group-1  consumer group: connectors in one group share partitions
    initial_offset        oldest        where a group without a committed offset starts:
                                        oldest | newest
    max_bytes             1048576       largest fetch per partition (bytes)
    tls                   false         TLS to the brokers (also on when a CA or cert file is set)
    ca_file, cert_file, key_file        TLS files (PEM): CA bundle, client certificate and key
    sasl_mechanism        (none)        PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl_username_file, sasl_password_file   SASL credentials, each read from a file
    FAASBUS_KAFKA_PARTITION_WINDOW  32  records of one partition published and not yet acked
                                        by JetStream (pipelined, sent in offset order); 1 waits
                                        for each record's ack before sending the next: strict
                                        offset order even across a failed publish, at one round
                                        trip per record (see :mod:`.lanes`)
    FAASBUS_KAFKA_COMMIT_INTERVAL   500ms  how often handed-off offsets are committed
    FAASBUS_KAFKA_SESSION_TIMEOUT   10s    group session timeout: how long a dead member keeps
                                        its partitions
    FAASBUS_KAFKA_METADATA_MAX_AGE  5s     metadata refresh: how soon a new topic is noticed

``content_type`` and the rest are the shared settings (:class:`ConnectorSettings`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from faasbus.bus import Env, SettingsError
from faasbus.connectors.sdk import ConnectorSettings

__all__ = ["INITIAL_OFFSETS", "SASL_MECHANISMS", "KafkaSettings", "is_kafka_topic"]

INITIAL_OFFSETS = frozenset({"oldest", "newest"})
SASL_MECHANISMS = frozenset({"plain", "scram-sha-256", "scram-sha-512"})
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def is_kafka_topic(name: str) -> bool:
    """A legal Kafka topic name (``.`` and ``..`` excepted)."""
    return _TOPIC.fullmatch(name) is not None and name not in (".", "..")


def _read_secret(env: Env, name: str) -> str:
    path = env.text(name, "")
    if not path:
        return ""
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise SettingsError(name, path, f"a readable file ({exc.strerror})") from None


def _existing_file(env: Env, name: str) -> str:
    path = env.text(name, "")
    if path and not Path(path).is_file():
        raise SettingsError(name, path, "an existing file")
    return path


@dataclass(frozen=True)
class KafkaSettings:
    common: ConnectorSettings = field(default_factory=ConnectorSettings)
    broker_hosts: tuple[str, ...] = ()
    group: str = "faas-group-1"
    initial_offset: str = "oldest"
    max_bytes: int = 1024 * 1024
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    sasl_mechanism: str = ""
    sasl_username: str = field(default="", repr=False)
    sasl_password: str = field(default="", repr=False)
    partition_window: int = 32
    commit_interval_s: float = 0.5
    session_timeout_s: float = 10.0
    metadata_max_age_s: float = 5.0

    @property
    def security_protocol(self) -> str:
        if self.sasl_mechanism:
            return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"
        return "SSL" if self.tls else "PLAINTEXT"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        env = Env(environ)
        common = ConnectorSettings.from_env(environ)
        d = cls()
        brokers = env.csv("broker_hosts")
        if not brokers:
            raise SettingsError("broker_hosts", "", "a comma list of host:port")
        for topic in common.topics:
            if not is_kafka_topic(topic):
                raise SettingsError("topics", ",".join(common.topics), "Kafka topic names")
        ca_file = _existing_file(env, "ca_file")
        cert_file = _existing_file(env, "cert_file")
        key_file = _existing_file(env, "key_file")
        if bool(cert_file) != bool(key_file):
            raise SettingsError("cert_file", cert_file, "set together with key_file")
        mechanism = env.choice("sasl_mechanism", "", SASL_MECHANISMS | {""}).upper()
        username = _read_secret(env, "sasl_username_file")
        password = _read_secret(env, "sasl_password_file")
        if mechanism and not (username and password):
            raise SettingsError(
                "sasl_username_file", env.text("sasl_username_file", ""),
                "files with the SASL user name and password when sasl_mechanism is set",
            )  # fmt: skip
        return cls(
            common=common,
            broker_hosts=brokers,
            group=env.text("group", d.group),
            initial_offset=env.choice("initial_offset", d.initial_offset, INITIAL_OFFSETS),
            max_bytes=env.integer("max_bytes", d.max_bytes, minimum=1024),
            tls=env.flag("tls", d.tls) or bool(ca_file or cert_file),
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            sasl_mechanism=mechanism,
            sasl_username=username,
            sasl_password=password,
            partition_window=env.integer(
                "FAASBUS_KAFKA_PARTITION_WINDOW", d.partition_window, minimum=1
            ),
            commit_interval_s=max(env.duration("FAASBUS_KAFKA_COMMIT_INTERVAL", 0.5), 0.01),
            session_timeout_s=max(env.duration("FAASBUS_KAFKA_SESSION_TIMEOUT", 10.0), 1.0),
            metadata_max_age_s=max(env.duration("FAASBUS_KAFKA_METADATA_MAX_AGE", 5.0), 0.1),
        )
