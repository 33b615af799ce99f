"""The bus contract: stream, bucket and subject names (ARCHITECTURE.md section 3).

These names are public: users watch them with the ``nats`` CLI and the README documents them.
Change one only with a reason written here.
"""

from __future__ import annotations

import re

__all__ = [
    "CALLS_BUCKET",
    "CANCEL_SUBJECT",
    "DEFAULT_NAMESPACE",
    "DLQ_STREAM",
    "ENDPOINTS_BUCKET",
    "FUNCTIONS_BUCKET",
    "INVOKE_STREAM",
    "LOGS_STREAM",
    "PAYLOADS_BUCKET",
    "dead_subject",
    "endpoint_key",
    "function_key",
    "invoke_subject",
    "is_dns1123_label",
    "logs_subject",
    "split_function_key",
]

INVOKE_STREAM = "FAAS_INVOKE"
DLQ_STREAM = "FAAS_DLQ"
LOGS_STREAM = "FAAS_LOGS"
FUNCTIONS_BUCKET = "faas_functions"
ENDPOINTS_BUCKET = "faas_endpoints"
CALLS_BUCKET = "faas_calls"
PAYLOADS_BUCKET = "faas_payloads"

# Core NATS (not stored): "cancel this call id" broadcast to every queue worker.
CANCEL_SUBJECT = "faas.control.cancel"

INVOKE_PREFIX = "faas.invoke"
DEAD_PREFIX = "faas.dead"
LOGS_PREFIX = "faas.logs"

# OpenFaaS keeps functions in "openfaas-fn"; faas-cli and the UI assume it.
DEFAULT_NAMESPACE = "openfaas-fn"

# Function, namespace and secret names are DNS-1123 labels (REFERENCE.md section 8). The check
# matters beyond Kubernetes compatibility: names become NATS subject tokens, KV keys and paths,
# where ".", "*", ">", "/" or ".." would change their meaning.
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def is_dns1123_label(name: str) -> bool:
    """True for a valid DNS-1123 label (``^[a-z0-9]([-a-z0-9]*[a-z0-9])?$``, <= 63 chars)."""
    return len(name) <= 63 and _DNS1123_LABEL.fullmatch(name) is not None


def _checked(*tokens: str) -> str:
    for token in tokens:
        if not is_dns1123_label(token):
            raise ValueError(f"{token!r} is not a valid DNS-1123 name")
    return ".".join(tokens)


def invoke_subject(namespace: str, function: str) -> str:
    return f"{INVOKE_PREFIX}.{_checked(namespace, function)}"


def dead_subject(namespace: str, function: str) -> str:
    return f"{DEAD_PREFIX}.{_checked(namespace, function)}"


def logs_subject(namespace: str, function: str, instance: str) -> str:
    return f"{LOGS_PREFIX}.{_checked(namespace, function, instance)}"


def function_key(namespace: str, function: str) -> str:
    """Key in ``faas_functions``: ``<namespace>.<function>``."""
    return _checked(namespace, function)


def endpoint_key(namespace: str, function: str, instance: str) -> str:
    """Key in ``faas_endpoints``: ``<namespace>.<function>.<instance>``."""
    return _checked(namespace, function, instance)


def split_function_key(key: str) -> tuple[str, str]:
    """``(namespace, function)`` from a ``faas_functions`` key or the first two tokens of one."""
    namespace, _, rest = key.partition(".")
    function = rest.split(".", 1)[0]
    return namespace, function
