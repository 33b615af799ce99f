"""Routes for functions: list, deploy, update, delete, status, scale (faas-provider's contract).

- ``POST /system/functions`` deploys; deploying a name that exists updates it (idempotent, as
  ``faas-cli deploy`` may retry). ``PUT`` updates and answers ``404`` for an unknown function
  (faas-cli then falls back to ``POST``). Both answer ``202`` once the desired state is stored
  and replica start is underway; ``GET /system/function/NAME`` shows when they are ready.
- ``DELETE /system/functions`` takes ``{"functionName", "namespace"}``.
- ``POST /system/scale-function/NAME`` takes ``{"serviceName", "replicas", "namespace"}``; the
  count is clamped as :mod:`faasbus.provider.policy` says and the applied count is in the body.

A deployment is checked before it is stored: names, scaling labels, limits, watchdog mode, that
its image is built (or ``envProcess`` is set), that every secret it names exists.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from faasbus.provider.bundles import load_bundle
from faasbus.provider.errors import ImageNotBuilt, InvalidRequest, NotFound, SecretMissing
from faasbus.provider.launch import validate_mode
from faasbus.provider.limits import Limits
from faasbus.provider.policy import ScaleBounds
from faasbus.provider.services import SERVICES, SETTINGS, read_json, request_namespace
from faasbus.provider.store import StoredFunction, rfc3339_now
from faasbus.provider.supervisor import Supervisor
from faasbus.provider.types import FunctionDeployment, FunctionStatus, WireError, valid_name

__all__ = ["routes"]

routes = web.RouteTableDef()


def status_of(stored: StoredFunction, supervisor: Supervisor) -> FunctionStatus:
    runtime = supervisor.runtime(stored.deployment.namespace, stored.deployment.service)
    if runtime is None:
        return FunctionStatus(stored.deployment, stored.replicas, 0, 0, stored.created_at)
    live = runtime.status()
    return FunctionStatus(
        deployment=stored.deployment,
        replicas=stored.replicas,
        available_replicas=live.available,
        created_at=stored.created_at,
        usage_cpu=live.cpu_millicores,
        usage_memory_bytes=float(live.memory_bytes) if live.memory_bytes is not None else None,
        restarts=live.restarts,
        last_error=live.last_error,
    )


def _validate(request: web.Request, deployment: FunctionDeployment) -> ScaleBounds:
    settings = request.app[SETTINGS]
    services = request.app[SERVICES]
    bounds = ScaleBounds.from_labels(deployment.labels)
    Limits.from_spec(deployment.limits)
    Limits.from_spec(deployment.requests)
    validate_mode(deployment)
    if not deployment.env_process:
        if not deployment.image:
            raise InvalidRequest("image: is required (or envProcess for a host command)")
        if load_bundle(settings.state_dir, deployment.image) is None:
            raise ImageNotBuilt(deployment.image)
    missing = services.secrets.missing(deployment.namespace, deployment.secrets)
    if missing:
        raise SecretMissing(missing[0])
    return bounds


def _not_found(name: str, namespace: str) -> NotFound:
    """The ``404`` for a function that is not stored."""
    return NotFound(f"function {name} not found in {namespace}")


async def _json_object(request: web.Request, fields: str) -> dict[str, Any]:
    """The body as a JSON object; ``400`` naming the expected ``fields`` when it is not one."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise WireError("body", f"must be a JSON object with {fields}")
    return body


async def _deployment(request: web.Request) -> tuple[FunctionDeployment, ScaleBounds]:
    deployment = FunctionDeployment.from_wire(await read_json(request))
    return deployment, _validate(request, deployment)


@routes.get("/system/functions")
async def list_functions(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    namespace = request_namespace(request)
    stored = await services.store.list(namespace)
    return web.json_response([status_of(s, services.supervisor).to_wire() for s in stored])


async def _store_deployment(request: web.Request, *, create: bool) -> web.Response:
    """Store the body's checked deployment and start applying it: ``202``.

    A stored function keeps its creation time and its replica count, clamped to the new scale
    labels. One not stored yet starts at its initial count when ``create`` (deploy), else is a
    ``404`` (update).
    """
    services = request.app[SERVICES]
    deployment, bounds = await _deployment(request)

    def change(current: StoredFunction | None) -> StoredFunction:
        if current is not None:
            return StoredFunction(deployment, bounds.clamp(current.replicas), current.created_at)
        if not create:
            raise _not_found(deployment.service, deployment.namespace)
        return StoredFunction(deployment, bounds.initial, rfc3339_now())

    stored = await services.store.mutate(deployment.namespace, deployment.service, change)
    services.supervisor.apply(stored)
    return web.Response(status=202, text="")


@routes.post("/system/functions")
async def deploy(request: web.Request) -> web.Response:
    return await _store_deployment(request, create=True)


@routes.put("/system/functions")
async def update(request: web.Request) -> web.Response:
    return await _store_deployment(request, create=False)


@routes.delete("/system/functions")
async def delete(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    body = await _json_object(request, "functionName")
    name = body.get("functionName")
    if not isinstance(name, str) or not name:
        raise WireError("functionName", "is required")
    valid_name(name, "functionName")
    namespace = request_namespace(request, body.get("namespace"))
    removed: list[StoredFunction] = []

    def remove(current: StoredFunction | None) -> None:
        if current is None:
            raise _not_found(name, namespace)
        removed.append(current)

    await services.store.mutate(namespace, name, remove)
    # The delete marker's revision is above the last value's; the watch brings the exact one.
    services.supervisor.apply(
        None, namespace=namespace, function=name, revision=removed[-1].revision + 1
    )
    return web.Response(status=202, text="")


@routes.get("/system/function/{name}")
async def function_status(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    name = valid_name(request.match_info["name"], "name")
    namespace = request_namespace(request)
    stored = await services.store.get(namespace, name)
    if stored is None:
        raise _not_found(name, namespace)
    return web.json_response(status_of(stored, services.supervisor).to_wire())


@routes.post("/system/scale-function/{name}")
async def scale(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    name = valid_name(request.match_info["name"], "name")
    body = await _json_object(request, "replicas")
    requested = body.get("replicas")
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 0:
        raise WireError("replicas", "must be a whole number >= 0")
    namespace = request_namespace(request, body.get("namespace"))

    def change(current: StoredFunction | None) -> StoredFunction:
        if current is None:
            raise _not_found(name, namespace)
        bounds = ScaleBounds.from_labels(current.deployment.labels)
        return replace(current, replicas=bounds.clamp(requested))

    stored = await services.store.mutate(namespace, name, change)
    if stored is None:  # pragma: no cover - change never deletes
        raise _not_found(name, namespace)
    services.supervisor.apply(stored)
    note = "" if stored.replicas == requested else " (clamped by the function's scale labels)"
    return web.Response(
        status=202, text=f"scaled {name}.{namespace} to {stored.replicas} replicas{note}\n"
    )
