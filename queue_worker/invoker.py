"""Call one replica for one invocation and describe how it ended as an :class:`Outcome`.

Replicas come from the shared :class:`EndpointTable` (scale from zero applies: a call for a function
at zero replicas waits while one starts). Failures to reach a replica are reported as
``503``/``502``/``504`` outcomes marked internal, which the retry policy always retries.
"""

from __future__ import annotations

import time

import aiohttp

from faasbus.bus import EndpointTable, Invocation, NoReplicaError
from faasbus.queue_worker.retry import Outcome

__all__ = ["call_function"]

_INTERNAL = "X-OpenFaaS-Internal"


async def call_function(
    session: aiohttp.ClientSession,
    table: EndpointTable,
    invocation: Invocation,
    body: bytes,
    *,
    timeout_s: float,
    replica_wait_s: float,
) -> Outcome:
    started = time.monotonic()
    headers = dict(invocation.headers)
    headers["X-Call-Id"] = invocation.call_id
    if invocation.content_type:
        headers["Content-Type"] = invocation.content_type
    path = invocation.path if invocation.path.startswith("/") else "/" + invocation.path
    try:
        async with table.acquire(
            invocation.namespace, invocation.function, wait_s=replica_wait_s
        ) as endpoint:
            url = endpoint.url + path + (f"?{invocation.query}" if invocation.query else "")
            async with session.request(
                invocation.method, url, data=body, headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s), allow_redirects=False,
            ) as response:  # fmt: skip
                data = await response.read()
                return Outcome(
                    status=response.status,
                    headers=dict(response.headers),
                    body=data,
                    duration_s=time.monotonic() - started,
                    internal=_INTERNAL in response.headers,
                )
    except NoReplicaError as exc:
        return Outcome(503, {}, b"", time.monotonic() - started, error=str(exc),
                       internal=True, not_found=exc.not_found)  # fmt: skip
    except TimeoutError:
        return Outcome(504, {}, b"", time.monotonic() - started,
                       error=f"upstream timeout after {timeout_s:g}s", internal=True)  # fmt: skip
    except (aiohttp.ClientError, OSError) as exc:
        return Outcome(502, {}, b"", time.monotonic() - started,
                       error=f"{type(exc).__name__}: {exc}", internal=True)  # fmt: skip
