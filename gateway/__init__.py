"""faasbus.gateway — the OpenFaaS REST API: sync fast path, /system forwarding, auth, metrics.

Run it with ``python -m faasbus.gateway``; embed or test it with :func:`create_app` or
:class:`GatewayServer`. Other components talk to it over HTTP only.
"""

from faasbus.gateway.app import create_app, faasbus_version, runner_options
from faasbus.gateway.auth import BasicAuth, Credentials
from faasbus.gateway.errors import INTERNAL_HEADER, CredentialsError, GatewayError
from faasbus.gateway.metrics import GatewayMetrics
from faasbus.gateway.server import GatewayServer, main, serve
from faasbus.gateway.settings import GatewaySettings, parse_size
from faasbus.gateway.system import complete_info

__all__ = [
    "INTERNAL_HEADER",
    "BasicAuth",
    "Credentials",
    "CredentialsError",
    "GatewayError",
    "GatewayMetrics",
    "GatewayServer",
    "GatewaySettings",
    "complete_info",
    "create_app",
    "faasbus_version",
    "main",
    "parse_size",
    "runner_options",
    "serve",
]
