"""faasbus.connectors.nats — core NATS subjects trigger the functions whose topic names them.

Run with ``python -m faasbus.connectors.nats``. Subscriptions and delivery:
:mod:`faasbus.connectors.nats.source`; settings: :mod:`faasbus.connectors.nats.settings`;
request/reply: :mod:`faasbus.connectors.nats.replies`.
"""

from faasbus.connectors.nats.replies import ack_reply, response_reply, unrouted_reply
from faasbus.connectors.nats.settings import REPLY_MODES, NatsSettings
from faasbus.connectors.nats.source import NatsSource
from faasbus.connectors.sdk import Connector

__all__ = [
    "CONNECTOR",
    "REPLY_MODES",
    "NatsSettings",
    "NatsSource",
    "ack_reply",
    "response_reply",
    "unrouted_reply",
]

CONNECTOR = Connector(name="nats", settings=NatsSettings.from_env, source=NatsSource)
