"""Routes for the rest of ``/system``: info, secrets, logs, namespaces; and ``/healthz``.

Secrets answer ``202`` on create, update and delete (faas-cli treats ``201``/``204`` on some of
them as failures), ``409`` when creating one that exists, ``404`` when updating or deleting one that
does not; the list has names only. A secret value is never in a response or a log line.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from importlib import metadata

from aiohttp import web

from faasbus.provider.logquery import LogQuery, LogQueryError, read_logs
from faasbus.provider.namespaces import namespace_body
from faasbus.provider.secrets import SecretStore
from faasbus.provider.services import SERVICES, read_json, request_namespace, text_error
from faasbus.provider.types import SecretSpec, valid_name

__all__ = ["routes"]

routes = web.RouteTableDef()


def _version() -> str:
    try:
        return metadata.version("faasbus")
    except metadata.PackageNotFoundError:
        return "0.0.0"


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    if not services.bus.connected:
        raise text_error(web.HTTPServiceUnavailable, "the bus is not reachable")
    return web.Response(text="OK\n")


@routes.get("/system/info")
async def info(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    version = {"sha": "unknown", "release": _version()}
    return web.json_response(
        {
            "provider": {
                "provider": "faasbus",
                "orchestration": "process",
                "version": version,
                "limits": services.cgroups.mechanism,
            },
            "version": {**version, "commit_message": ""},
            "arch": platform.machine(),
        }
    )


# ---------------------------------------------------------------------- secrets


@routes.get("/system/secrets")
async def list_secrets(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    namespace = request_namespace(request)
    return web.json_response(
        [{"name": name, "namespace": namespace} for name in services.secrets.names(namespace)]
    )


async def _write_secret(
    request: web.Request, write: Callable[[SecretStore, SecretSpec], None]
) -> web.Response:
    """Store the body's secret with ``write`` and refresh the functions that mount it: ``202``.

    ``write`` is :meth:`SecretStore.create` (``409`` if it exists) or :meth:`SecretStore.update`
    (``404`` if it does not); either way running replicas see the new value.
    """
    services = request.app[SERVICES]
    spec = SecretSpec.from_wire(await read_json(request))
    write(services.secrets, spec)
    services.supervisor.secret_changed(spec.namespace, spec.name)
    return web.Response(status=202, text="")


@routes.post("/system/secrets")
async def create_secret(request: web.Request) -> web.Response:
    return await _write_secret(request, SecretStore.create)


@routes.put("/system/secrets")
async def update_secret(request: web.Request) -> web.Response:
    return await _write_secret(request, SecretStore.update)


@routes.delete("/system/secrets")
async def delete_secret(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    body = await read_json(request)
    spec = SecretSpec.from_wire(body, value_required=False)
    services.secrets.delete(spec.namespace, spec.name)
    return web.Response(status=202, text="")


# ---------------------------------------------------------------------- logs


@routes.get("/system/logs")
async def logs(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    try:
        query = LogQuery.from_query(request.query)
    except LogQueryError as exc:
        raise text_error(web.HTTPUnprocessableEntity, str(exc)) from None
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    response.enable_chunked_encoding()
    await response.prepare(request)

    def client_gone() -> bool:
        transport = request.transport
        return transport is None or transport.is_closing()

    try:
        async for line in read_logs(services.bus.js, query, client_gone=client_gone):
            await response.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
    except (ConnectionResetError, ConnectionError):
        return response
    await response.write_eof()
    return response


# ---------------------------------------------------------------------- namespaces


async def _function_namespaces(request: web.Request) -> set[str]:
    services = request.app[SERVICES]
    return {stored.deployment.namespace for stored in await services.store.list()}


@routes.get("/system/namespaces")
async def list_namespaces(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    return web.json_response(services.namespaces.names(await _function_namespaces(request)))


@routes.post("/system/namespace/")
@routes.post("/system/namespace")
async def create_namespace(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    body = namespace_body(await read_json(request))
    services.namespaces.create(body, await _function_namespaces(request))
    return web.Response(status=202, text="")


@routes.get("/system/namespace/{name}")
async def get_namespace(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    name = valid_name(request.match_info["name"], "name")
    return web.json_response(services.namespaces.get(name, await _function_namespaces(request)))


@routes.post("/system/namespace/{name}")
async def create_named_namespace(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    name = valid_name(request.match_info["name"], "name")
    raw = await request.read()
    body = namespace_body(await read_json(request) if raw.strip() else {}, name)
    services.namespaces.create(body, await _function_namespaces(request))
    return web.Response(status=202, text="")


@routes.put("/system/namespace/{name}")
async def update_namespace(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    name = valid_name(request.match_info["name"], "name")
    body = namespace_body(await read_json(request), name)
    services.namespaces.update(body, await _function_namespaces(request))
    return web.Response(status=202, text="")


@routes.delete("/system/namespace/{name}")
async def delete_namespace(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    name = valid_name(request.match_info["name"], "name")
    services.namespaces.delete(name, await _function_namespaces(request))
    return web.Response(status=202, text="")
