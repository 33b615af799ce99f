"""The OpenFaaS wire types shared by the provider, the gateway and the CLI.

Field names are OpenFaaS's (faas-provider ``types``): ``service``, ``envProcess``, ``envVars``,
``availableReplicas``, ... Parsing is open-world (unknown fields are ignored, as faas-cli sends
fields we do not use) and strict about what we need: a wrong type or an invalid name raises
:class:`WireError` naming the field, which the HTTP layer turns into ``400``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Self

from faasbus.bus.names import DEFAULT_NAMESPACE, is_dns1123_label

__all__ = [
    "FunctionDeployment",
    "FunctionStatus",
    "ResourceSpec",
    "SecretSpec",
    "WireError",
    "namespace_of",
    "valid_name",
]


class WireError(ValueError):
    """A request body field is missing, of the wrong type, or invalid; ``field`` names it."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name
        self.problem = problem


def _str(raw: dict[str, Any], key: str, *, required: bool = False) -> str:
    value = raw.get(key)
    if value is None or value == "":
        if required:
            raise WireError(key, "is required")
        return ""
    if not isinstance(value, str):
        raise WireError(key, "must be a string")
    return value


def _str_map(raw: dict[str, Any], key: str) -> dict[str, str]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WireError(key, "must be an object of strings")
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(v, str | int | float | bool):
            raise WireError(f"{key}.{k}", "must be a string")
        out[str(k)] = str(v).lower() if isinstance(v, bool) else str(v)
    return out


def _str_list(raw: dict[str, Any], key: str) -> list[str]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise WireError(key, "must be a list of strings")
    return list(value)


def valid_name(value: str, field_name: str) -> str:
    if not is_dns1123_label(value):
        raise WireError(
            field_name,
            f"{value!r} is not a valid name (lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters)",
        )
    return value


def namespace_of(raw: dict[str, Any]) -> str:
    return valid_name(_str(raw, "namespace") or DEFAULT_NAMESPACE, "namespace")


@dataclass(frozen=True)
class ResourceSpec:
    """``limits`` / ``requests``: Kubernetes quantities as strings (``128Mi``, ``100m``)."""

    memory: str = ""
    cpu: str = ""

    @classmethod
    def from_wire(cls, raw: Any, field_name: str) -> Self | None:
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise WireError(field_name, "must be an object with memory and cpu")
        return cls(
            memory=_str(raw, "memory"),
            cpu=_str(raw, "cpu"),
        )

    def to_wire(self) -> dict[str, str]:
        return {"memory": self.memory, "cpu": self.cpu}


@dataclass(frozen=True)
class FunctionDeployment:
    """The desired state of one function (the body of deploy and update)."""

    service: str
    image: str = ""
    namespace: str = DEFAULT_NAMESPACE
    env_process: str = ""
    env_vars: dict[str, str] = field(default_factory=dict)
    constraints: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    limits: ResourceSpec | None = None
    requests: ResourceSpec | None = None
    read_only_root_filesystem: bool = False

    @classmethod
    def from_wire(cls, raw: Any) -> Self:
        if not isinstance(raw, dict):
            raise WireError("body", "must be a JSON object")
        secrets = _str_list(raw, "secrets")
        for index, secret in enumerate(secrets):
            valid_name(secret, f"secrets[{index}]")
        return cls(
            service=valid_name(_str(raw, "service", required=True), "service"),
            image=_str(raw, "image"),
            namespace=namespace_of(raw),
            env_process=_str(raw, "envProcess"),
            env_vars=_str_map(raw, "envVars"),
            constraints=_str_list(raw, "constraints"),
            secrets=secrets,
            labels=_str_map(raw, "labels"),
            annotations=_str_map(raw, "annotations"),
            limits=ResourceSpec.from_wire(raw.get("limits"), "limits"),
            requests=ResourceSpec.from_wire(raw.get("requests"), "requests"),
            read_only_root_filesystem=bool(raw.get("readOnlyRootFilesystem", False)),
        )

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "service": self.service,
            "image": self.image,
            "namespace": self.namespace,
            "envProcess": self.env_process,
            "envVars": dict(self.env_vars),
            "constraints": list(self.constraints),
            "secrets": list(self.secrets),
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "readOnlyRootFilesystem": self.read_only_root_filesystem,
        }
        if self.limits is not None:
            body["limits"] = self.limits.to_wire()
        if self.requests is not None:
            body["requests"] = self.requests.to_wire()
        return body


@dataclass(frozen=True)
class FunctionStatus:
    """What ``GET /system/functions`` lists: the deployment plus live figures."""

    deployment: FunctionDeployment
    replicas: int = 0
    available_replicas: int = 0
    invocation_count: float = 0
    created_at: str = ""
    usage_cpu: float | None = None
    usage_memory_bytes: float | None = None
    # faasbus additions (absent from the wire when zero/empty): replica restarts since the
    # provider started them, and the last reason a replica stopped or could not start.
    restarts: int = 0
    last_error: str = ""

    @classmethod
    def from_wire(cls, raw: Any) -> Self:
        """Parse a FunctionStatus as the provider sends it (``name`` instead of ``service``)."""
        if not isinstance(raw, dict):
            raise WireError("body", "must be a JSON object")
        body = dict(raw)
        body.setdefault("service", body.get("name"))
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else None

        def number(key: str) -> float:
            value = body.get(key, 0)
            return float(value) if isinstance(value, int | float) else 0.0

        return cls(
            deployment=FunctionDeployment.from_wire(body),
            replicas=int(number("replicas")),
            available_replicas=int(number("availableReplicas")),
            invocation_count=number("invocationCount"),
            created_at=str(body.get("createdAt") or ""),
            usage_cpu=float(usage.get("cpu", 0.0)) if usage else None,
            usage_memory_bytes=float(usage.get("totalMemoryBytes", 0.0)) if usage else None,
            restarts=int(number("restarts")),
            last_error=str(body.get("lastError") or ""),
        )

    def to_wire(self) -> dict[str, Any]:
        body = self.deployment.to_wire()
        body.pop("service")
        body = {"name": self.deployment.service, **body}
        body.update(
            replicas=self.replicas,
            availableReplicas=self.available_replicas,
            invocationCount=self.invocation_count,
            createdAt=self.created_at,
        )
        if self.usage_cpu is not None or self.usage_memory_bytes is not None:
            body["usage"] = {
                "cpu": self.usage_cpu or 0.0,
                "totalMemoryBytes": self.usage_memory_bytes or 0.0,
            }
        if self.restarts:
            body["restarts"] = self.restarts
        if self.last_error:
            body["lastError"] = self.last_error
        return body


@dataclass(frozen=True)
class SecretSpec:
    """A secret as sent by faas-cli: ``value`` (text) or ``rawValue`` (base64 bytes)."""

    name: str
    namespace: str = DEFAULT_NAMESPACE
    data: bytes = b""

    @classmethod
    def from_wire(cls, raw: Any, *, value_required: bool = True) -> Self:
        if not isinstance(raw, dict):
            raise WireError("body", "must be a JSON object")
        name = valid_name(_str(raw, "name", required=True), "name")
        raw_value = raw.get("rawValue")
        if raw_value not in (None, ""):
            if not isinstance(raw_value, str):
                raise WireError("rawValue", "must be a base64 string")
            try:
                data = base64.b64decode(raw_value, validate=True)
            except (binascii.Error, ValueError):
                raise WireError("rawValue", "is not valid base64") from None
        else:
            data = _str(raw, "value", required=value_required).encode()
        return cls(name=name, namespace=namespace_of(raw), data=data)
