"""faasbus.bus — the bottom layer: NATS connection, streams, KV, subjects, embedded nats-server.

Everything above (provider, gateway, queue workers, connectors, CLI) imports from this façade.
"""

from faasbus.bus import names
from faasbus.bus.connection import Bus, BusSettings, connect
from faasbus.bus.declare import declare_bus, stream_configs
from faasbus.bus.endpoints import (
    SCALE_UP_QUEUE,
    SCALE_UP_SUBJECT,
    Endpoint,
    EndpointTable,
    NoReplicaError,
    ScaleUpReply,
    ScaleUpRequest,
    delete_endpoint,
    put_endpoint,
)
from faasbus.bus.errors import BusError, BusUnavailable, NatsServerError, NatsServerNotFound
from faasbus.bus.logs import configure_logging
from faasbus.bus.server import NatsServer, NatsServerOptions, find_nats_server, free_port
from faasbus.bus.settings import Env, SettingsError, parse_bool, parse_duration

__all__ = [
    "SCALE_UP_QUEUE",
    "SCALE_UP_SUBJECT",
    "Bus",
    "BusError",
    "BusSettings",
    "BusUnavailable",
    "Endpoint",
    "EndpointTable",
    "Env",
    "NatsServer",
    "NatsServerError",
    "NatsServerNotFound",
    "NatsServerOptions",
    "NoReplicaError",
    "ScaleUpReply",
    "ScaleUpRequest",
    "SettingsError",
    "configure_logging",
    "connect",
    "declare_bus",
    "delete_endpoint",
    "find_nats_server",
    "free_port",
    "names",
    "parse_bool",
    "parse_duration",
    "put_endpoint",
    "stream_configs",
]
