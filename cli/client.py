"""A small synchronous HTTP client for the gateway API, with the CLI's error mapping.

The CLI makes one or a few requests per run, so it uses :mod:`http.client` directly: no event loop
to start, no redirects followed (``/system/*`` must not redirect, REFERENCE.md section 10), and
response bodies can be streamed (``invoke`` of an SSE function, ``logs --follow``).

Every transport failure becomes :class:`GatewayUnreachable` naming the URL; :meth:`Response.check`
turns an unexpected status into :class:`AuthError`, :class:`NotFoundError` or
:class:`GatewayError` with the first line of the gateway's body.
"""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlencode, urlsplit

from faasbus.cli.errors import AuthError, GatewayError, GatewayUnreachable, NotFoundError

__all__ = ["GatewayClient", "Response"]

_CHUNK = 64 * 1024


def _first_line(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    line = text.splitlines()[0] if text else ""
    return line[:300]


class Response:
    """An open response: read it whole with :meth:`body` or stream it with :meth:`chunks`."""

    def __init__(
        self, raw: http.client.HTTPResponse, connection: http.client.HTTPConnection, url: str
    ) -> None:
        self._raw = raw
        self._connection = connection
        self.url = url
        self.status = raw.status
        self.reason = raw.reason
        self.headers = raw.headers
        self._body: bytes | None = None

    def body(self) -> bytes:
        if self._body is None:
            with self._reading():
                self._body = self._raw.read()
        return self._body

    def json(self) -> Any:
        data = self.body()
        try:
            return json.loads(data)
        except ValueError as exc:
            raise GatewayError(
                f"the gateway answered {self.url} with something that is not JSON: "
                f"{_first_line(data)!r}",
                status=self.status,
            ) from exc

    def chunks(self) -> Iterator[bytes]:
        """The body as it arrives (``read1``: whatever the server has flushed)."""
        with self._reading():
            yield from iter(lambda: self._raw.read1(_CHUNK), b"")

    def lines(self) -> Iterator[bytes]:
        """The body line by line as it arrives (NDJSON log streams)."""
        with self._reading():
            yield from iter(self._raw.readline, b"")

    def check(self, *ok: int, what: str = "", not_found: str = "") -> Self:
        """Return self when the status is one of ``ok``; otherwise raise the mapped error.

        ``what`` describes the action for the generic message; ``not_found`` is the whole message
        for a 404 (``function 'x' not found in namespace openfaas-fn``).
        """
        if self.status in ok:
            return self
        detail = _first_line(self.body())
        action = f" to {what}" if what else ""
        if self.status == 401:
            raise AuthError(
                f"the gateway refused the credentials (401){action}: pass --user/--password, set "
                "FAASBUS_USER/FAASBUS_PASSWORD, or use the --state-dir that `faasbus up` created",
                status=401,
                detail=detail,
            )
        if self.status == 404 and not_found:
            raise NotFoundError(not_found, status=404, detail=detail)
        suffix = f": {detail}" if detail else ""
        raise GatewayError(
            f"the gateway answered {self.status} {self.reason}{action}{suffix}",
            status=self.status,
            detail=detail,
        )

    def close(self) -> None:
        self._raw.close()
        self._connection.close()

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Read the body inside: a transport failure becomes GatewayUnreachable; close after."""
        try:
            yield
        except (OSError, http.client.HTTPException) as exc:
            raise GatewayUnreachable(
                f"lost the connection to {self.url} while reading: {exc}", url=self.url
            ) from exc
        finally:
            self.close()


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    prefix: str


class GatewayClient:
    """Requests against one gateway base URL, with basic auth when credentials are known."""

    def __init__(
        self,
        base_url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        timeout_s: float | None = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise GatewayUnreachable(
                f"gateway URL {base_url!r} is not an http(s) URL", url=self.base_url
            )
        default_port = 443 if parts.scheme == "https" else 80
        self._target = _Target(
            scheme=parts.scheme,
            host=parts.hostname,
            port=parts.port or default_port,
            prefix=parts.path.rstrip("/"),
        )
        self.timeout_s = timeout_s
        self._authorization: str | None = None
        if user is not None and password is not None:
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            self._authorization = f"Basic {token}"

    def url(self, path: str, query: Mapping[str, str] | None = None) -> str:
        suffix = f"?{urlencode(query)}" if query else ""
        return f"{self.base_url}{path}{suffix}"

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        json_body: Any = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        timeout_s: float | bool | None = True,
    ) -> Response:
        """Send one request and return the open response (any status).

        ``timeout_s=True`` uses the client's default; ``None`` waits forever (``logs --follow``).
        """
        target = self._target
        full_path = f"{target.prefix}{path}" + (f"?{urlencode(query)}" if query else "")
        url = f"{self.base_url}{path}"
        send_headers: dict[str, str] = {"User-Agent": "faasbus-cli", "Accept": "*/*"}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            send_headers["Content-Type"] = "application/json"
        if auth and self._authorization is not None:
            send_headers["Authorization"] = self._authorization
        if headers:
            send_headers.update(headers)
        timeout = self.timeout_s if timeout_s is True else (timeout_s or None)
        connection: http.client.HTTPConnection
        if target.scheme == "https":
            connection = http.client.HTTPSConnection(target.host, target.port, timeout=timeout)
        else:
            connection = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
        try:
            connection.request(method, full_path, body=body, headers=send_headers)
            raw = connection.getresponse()
        except TimeoutError as exc:
            connection.close()
            raise GatewayUnreachable(
                f"the gateway at {self.base_url} did not answer {method} {path} within {timeout}s",
                url=self.base_url,
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            hint = " (is `faasbus up` running?)" if isinstance(exc, ConnectionRefusedError) else ""
            raise GatewayUnreachable(
                f"cannot reach the gateway at {self.base_url}: {reason or type(exc).__name__}"
                f"{hint}",
                url=self.base_url,
            ) from exc
        return Response(raw, connection, url)
