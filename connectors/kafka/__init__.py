"""faasbus.connectors.kafka — Kafka topics trigger the functions whose topic names them.

Run with ``python -m faasbus.connectors.kafka`` (``faasbus up`` does when ``broker_hosts`` is
set). Consumer group, hand-off and commits: :mod:`faasbus.connectors.kafka.source`; record →
event and headers: :mod:`faasbus.connectors.kafka.records`; settings:
:mod:`faasbus.connectors.kafka.settings`.
"""

from faasbus.connectors.kafka.records import record_event
from faasbus.connectors.kafka.settings import (
    INITIAL_OFFSETS,
    SASL_MECHANISMS,
    KafkaSettings,
    is_kafka_topic,
)
from faasbus.connectors.kafka.source import KafkaSource
from faasbus.connectors.sdk import Connector

__all__ = [
    "CONNECTOR",
    "INITIAL_OFFSETS",
    "SASL_MECHANISMS",
    "KafkaSettings",
    "KafkaSource",
    "is_kafka_topic",
    "record_event",
]

CONNECTOR = Connector(name="kafka", settings=KafkaSettings.from_env, source=KafkaSource)
