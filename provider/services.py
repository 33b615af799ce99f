"""What the provider's HTTP handlers share: the typed app keys, the services, body parsing.

Bodies are JSON whatever their Content-Type (faas-cli and other clients send none or
``text/plain``); an empty or malformed body is a ``400`` that says what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from faasbus.bus import Bus, names
from faasbus.provider.limits import CgroupLimiter
from faasbus.provider.namespaces import NamespaceStore
from faasbus.provider.secrets import SecretStore
from faasbus.provider.settings import ProviderSettings
from faasbus.provider.store import FunctionStore
from faasbus.provider.supervisor import Supervisor
from faasbus.provider.types import valid_name

__all__ = ["SERVICES", "SETTINGS", "Services", "read_json", "request_namespace", "text_error"]


@dataclass
class Services:
    bus: Bus
    store: FunctionStore
    secrets: SecretStore
    namespaces: NamespaceStore
    supervisor: Supervisor
    http: aiohttp.ClientSession
    cgroups: CgroupLimiter


SETTINGS = web.AppKey("settings", ProviderSettings)
SERVICES = web.AppKey("services", Services)


def text_error(error: type[web.HTTPError], message: str) -> web.HTTPError:
    return error(text=message.rstrip() + "\n", content_type="text/plain")


async def read_json(request: web.Request) -> Any:
    """The body as JSON, whatever the Content-Type; 400 when empty or malformed."""
    raw = await request.read()
    if not raw.strip():
        raise text_error(web.HTTPBadRequest, "request body is empty: expected a JSON object")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise text_error(web.HTTPBadRequest, f"request body is not valid JSON: {exc}") from None


def request_namespace(request: web.Request, body_value: object = None) -> str:
    """The namespace a request names: ``body_value`` (a non-empty string from its JSON body),
    else the ``namespace`` query parameter, else ``openfaas-fn``; validated (400 if invalid)."""
    text = body_value if isinstance(body_value, str) and body_value else None
    text = text or request.query.get("namespace", "").strip() or names.DEFAULT_NAMESPACE
    return valid_name(text, "namespace")
