"""faasbus.provider — the faas-provider HTTP API with the process backend.

Run it with ``python -m faasbus.provider``. Desired state lives in the ``faas_functions`` KV bucket;
the supervisor reconciles it into replicas (watchdog processes) whose addresses it publishes in
``faas_endpoints``. ``build_bundle`` is also used locally by ``faasbus build``. The OpenFaaS wire
types in :mod:`faasbus.provider.types` are shared with the gateway and the CLI.
"""

from faasbus.provider.app import create_app
from faasbus.provider.bundles import Bundle, build_bundle, bundle_dir, load_bundle
from faasbus.provider.errors import (
    BundleError,
    Conflict,
    ImageNotBuilt,
    InvalidRequest,
    NotFound,
    ProviderError,
    SecretMissing,
)
from faasbus.provider.settings import ProviderSettings, default_state_dir
from faasbus.provider.types import FunctionDeployment, FunctionStatus, SecretSpec, WireError

__all__ = [
    "Bundle",
    "BundleError",
    "Conflict",
    "FunctionDeployment",
    "FunctionStatus",
    "ImageNotBuilt",
    "InvalidRequest",
    "NotFound",
    "ProviderError",
    "ProviderSettings",
    "SecretMissing",
    "SecretSpec",
    "WireError",
    "build_bundle",
    "bundle_dir",
    "create_app",
    "default_state_dir",
    "load_bundle",
]
