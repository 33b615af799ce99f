"""faasbus.bus — the bottom layer: NATS connection, streams, KV, subjects, embedded nats-server.

Everything above (provider, gateway, queue workers, connectors, CLI) imports from this façade.
"""

from faasbus.bus import names
from faasbus.bus.callback_url import CallbackUrlError, check_callback_url, check_resolved
from faasbus.bus.calls import (
    CallbackState,
    CallRecord,
    CallState,
    CallStore,
    is_valid_call_id,
)
from faasbus.bus.connection import Bus, BusSettings, connect
from faasbus.bus.declare import declare_bus, stream_configs
from faasbus.bus.dlq import DeadLetter, DeadLetters
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
from faasbus.bus.envelope import Invocation
from faasbus.bus.errors import BusError, BusUnavailable, NatsServerError, NatsServerNotFound
from faasbus.bus.functions import FunctionCatalog
from faasbus.bus.kvread import current_entries, current_keys
from faasbus.bus.logs import configure_logging
from faasbus.bus.server import NatsServer, NatsServerOptions, find_nats_server, free_port
from faasbus.bus.settings import Env, SettingsError, parse_bool, parse_duration
from faasbus.bus.tasks import cancel_and_wait
from faasbus.bus.version import VERSION

__all__ = [
    "SCALE_UP_QUEUE",
    "SCALE_UP_SUBJECT",
    "VERSION",
    "Bus",
    "BusError",
    "BusSettings",
    "BusUnavailable",
    "CallRecord",
    "CallState",
    "CallStore",
    "CallbackState",
    "CallbackUrlError",
    "DeadLetter",
    "DeadLetters",
    "Endpoint",
    "EndpointTable",
    "Env",
    "FunctionCatalog",
    "Invocation",
    "NatsServer",
    "NatsServerError",
    "NatsServerNotFound",
    "NatsServerOptions",
    "NoReplicaError",
    "ScaleUpReply",
    "ScaleUpRequest",
    "SettingsError",
    "cancel_and_wait",
    "check_callback_url",
    "check_resolved",
    "configure_logging",
    "connect",
    "current_entries",
    "current_keys",
    "declare_bus",
    "delete_endpoint",
    "find_nats_server",
    "free_port",
    "is_valid_call_id",
    "names",
    "parse_bool",
    "parse_duration",
    "put_endpoint",
    "stream_configs",
]
