"""A lean keep-alive HTTP/1.1 client for the hop from the gateway to a replica.

Why not aiohttp's ``ClientSession`` here: measured on the benchmark machine it spends about 85 µs
of CPU per request (request and response objects, timer contexts, cookie, redirect and proxy
handling the hop never needs), more than a whole python3-http replica spends serving one. That
alone kept the gateway near or below half of a replica's throughput (docs/benchmarks.md). This
client does only what the hop needs and costs about 10 µs: one write per request, the response
parsed as it arrives, and the connection back in the pool once its answer was fully read.

What it supports: ``http://`` replicas; request bodies given whole (the proxy sends streamed
uploads through aiohttp instead); responses with a ``Content-Length``, chunked, or delimited by the
connection closing; ``1xx`` interim answers skipped; ``HEAD``/``204``/``304`` without a body;
``Connection: close`` and HTTP/1.0 honoured. A response is either read whole (``read``) or relayed
chunk by chunk (``chunks``) with the socket paused while the consumer lags (flow control).

Failures, for the caller to map: :class:`UpstreamConnectError` (nothing was sent: safe to try
another replica), :class:`UpstreamTimeout` (the deadline passed), :class:`UpstreamError` (the
connection broke or the replica spoke bad HTTP). A pooled connection the replica had already
closed is retried once on a fresh one for idempotent methods, as aiohttp and Go's client do.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator

__all__ = [
    "ReplicaPool",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamResponse",
    "UpstreamTimeout",
]

_MAX_HEAD = 64 * 1024
_HIGH_WATER = 256 * 1024
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_NO_BODY_STATUS = frozenset({204, 304})

# Body framing of the answer being read.
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILERS, _UNTIL_EOF, _DONE = range(8)


class UpstreamError(Exception):
    """The replica's connection failed or it did not speak HTTP/1.1 as expected."""


class UpstreamConnectError(UpstreamError):
    """No connection could be made: the request was not sent."""


class UpstreamTimeout(UpstreamError, TimeoutError):
    """The answer did not complete before the deadline."""


class _StaleConnection(UpstreamError):
    """A reused connection closed before any byte of an answer: the replica dropped it idle."""


class _Connection(asyncio.Protocol):
    """One TCP connection to a replica, carrying one exchange at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        self._reused = False
        self._buffer = bytearray()
        self._state = _DONE
        self._remaining = 0
        self._no_body = False
        self._head: asyncio.Future[UpstreamResponse] | None = None
        self._response: UpstreamResponse | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._received_any = False

    # ------------------------------------------------------------ protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - TCP only
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self._state == _UNTIL_EOF and exc is None:
            self._finish()
        elif self._state != _DONE:
            if not self._received_any and self._reused:
                self._fail(_StaleConnection("the replica closed the pooled connection"))
            else:
                self._fail(UpstreamError(f"the replica closed the connection: {exc or 'EOF'}"))
        self._cancel_timer()

    def data_received(self, data: bytes) -> None:
        if self._state == _DONE:
            # Bytes nobody asked for: the connection can no longer be trusted.
            self._abort()
            return
        self._received_any = True
        self._buffer += data
        try:
            self._parse()
        except UpstreamError as exc:
            self._fail(exc)
            self._abort()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    # ------------------------------------------------------------ exchange

    def send(
        self, data: bytes, *, method: str, deadline: float, reused: bool
    ) -> asyncio.Future[UpstreamResponse]:
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            raise _StaleConnection("the pooled connection is closed")
        self._reused = reused
        self._head = self._loop.create_future()
        self._state = _HEAD
        self._no_body = method == "HEAD"
        self._received_any = False
        self._response = None
        self.reusable = True
        self._timer = self._loop.call_at(deadline, self._on_timeout)
        transport.write(data)
        return self._head

    def _on_timeout(self) -> None:
        self._timer = None
        self._fail(UpstreamTimeout("the replica did not answer in time"))
        self._abort()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fail(self, exc: UpstreamError) -> None:
        self.reusable = False
        self._state = _DONE
        head = self._head
        if head is not None and not head.done():
            head.set_exception(exc)
        elif self._response is not None:
            self._response._fail(exc)  # noqa: SLF001 - the pair works together
        self._cancel_timer()

    def _finish(self) -> None:
        self._state = _DONE
        self._cancel_timer()
        if self._response is not None:
            self._response._end()  # noqa: SLF001 - the pair works together

    def _abort(self) -> None:
        self.closed = True
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    # ------------------------------------------------------------ parsing

    def _parse(self) -> None:
        buffer = self._buffer
        while buffer:
            state = self._state
            if state == _HEAD:
                if not self._parse_head():
                    return
            elif state == _LENGTH:
                take = min(self._remaining, len(buffer))
                self._deliver(bytes(buffer[:take]))
                del buffer[:take]
                self._remaining -= take
                if self._remaining == 0:
                    self._finish()
            elif state == _UNTIL_EOF:
                self._deliver(bytes(buffer))
                buffer.clear()
            elif state == _CHUNK_SIZE:
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > 4096:
                        raise UpstreamError("chunk size line too long")
                    return
                size_text = bytes(buffer[:end]).split(b";", 1)[0].strip()
                del buffer[: end + 2]
                try:
                    self._remaining = int(size_text, 16)
                except ValueError:
                    raise UpstreamError(f"bad chunk size {size_text!r}") from None
                self._state = _CHUNK_DATA if self._remaining else _TRAILERS
            elif state == _CHUNK_DATA:
                take = min(self._remaining, len(buffer))
                self._deliver(bytes(buffer[:take]))
                del buffer[:take]
                self._remaining -= take
                if self._remaining == 0:
                    self._state = _CHUNK_CRLF
            elif state == _CHUNK_CRLF:
                if len(buffer) < 2:
                    return
                if buffer[:2] != b"\r\n":
                    raise UpstreamError("chunk not followed by CRLF")
                del buffer[:2]
                self._state = _CHUNK_SIZE
            elif state == _TRAILERS:
                end = buffer.find(b"\r\n")
                if end < 0:
                    return
                del buffer[: end + 2]
                if end == 0:  # the empty line that ends the trailers
                    self._finish()
            else:  # _DONE with bytes left: more than one answer to one request
                raise UpstreamError("the replica sent more than the answer")

    def _parse_head(self) -> bool:
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > _MAX_HEAD:
                raise UpstreamError("response head too large")
            return False
        head = bytes(buffer[:end])
        del buffer[: end + 4]
        lines = head.split(b"\r\n")
        status_line = lines[0]
        if not status_line.startswith(b"HTTP/1."):
            raise UpstreamError(f"not an HTTP/1.x answer: {status_line[:40]!r}")
        try:
            status = int(status_line[9:12])
        except ValueError:
            raise UpstreamError(f"bad status line {status_line[:40]!r}") from None
        if 100 <= status < 200 and status != 101:
            return True  # an interim answer: the final one follows
        keep_alive = status_line[5:8] == b"1.1"
        headers: list[tuple[str, str]] = []
        length: int | None = None
        chunked = False
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise UpstreamError("malformed response header")
            value = value.strip()
            lowered = name.lower()
            if lowered == b"content-length":
                if not value.isdigit():
                    raise UpstreamError("bad Content-Length")
                length = int(value)
            elif lowered == b"transfer-encoding":
                chunked = value.lower().endswith(b"chunked")
            elif lowered == b"connection":
                tokens = value.lower()
                if b"close" in tokens:
                    keep_alive = False
                elif b"keep-alive" in tokens:
                    keep_alive = True
            headers.append(
                (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
            )
        if not keep_alive:
            self.reusable = False
        response = UpstreamResponse(
            self, status, status_line[13:].decode("latin-1"), headers, None if chunked else length
        )
        self._response = response
        if self._no_body or status in _NO_BODY_STATUS:
            self._state = _DONE
            response._end()  # noqa: SLF001
            self._cancel_timer()
        elif chunked:
            self._state = _CHUNK_SIZE
        elif length is not None:
            self._remaining = length
            self._state = _LENGTH if length else _DONE
            if not length:
                response._end()  # noqa: SLF001
                self._cancel_timer()
        else:
            self.reusable = False
            self._state = _UNTIL_EOF
        head_future = self._head
        self._head = None
        if head_future is not None and not head_future.done():
            head_future.set_result(response)
        return True

    def _deliver(self, chunk: bytes) -> None:
        if chunk and self._response is not None:
            self._response._feed(chunk)  # noqa: SLF001


class UpstreamResponse:
    """A replica's answer: status and headers at once, the body as it arrives."""

    __slots__ = (
        "_chunks",
        "_connection",
        "_done",
        "_error",
        "_paused",
        "_queued",
        "_released",
        "_waiter",
        "content_length",
        "headers",
        "reason",
        "status",
    )

    def __init__(
        self,
        connection: _Connection,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        content_length: int | None,
    ) -> None:
        self._connection = connection
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content_length = content_length
        self._chunks: collections.deque[bytes] = collections.deque()
        self._queued = 0
        self._paused = False
        self._done = False
        self._error: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._released = False

    # fed by the connection
    def _feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._queued += len(chunk)
        if self._queued > _HIGH_WATER and not self._paused:
            self._paused = True
            self._connection.pause_reading()
        self._wake()

    def _end(self) -> None:
        self._done = True
        self._wake()

    def _fail(self, exc: UpstreamError) -> None:
        self._error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # used by the proxy
    @property
    def complete(self) -> bool:
        return self._done

    async def _wait(self) -> None:
        self._waiter = self._connection._loop.create_future()  # noqa: SLF001
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def read(self) -> bytes:
        """The whole body."""
        while not self._done:
            if self._error is not None:
                raise self._error
            await self._wait()
        body = b"".join(self._chunks)
        self._chunks.clear()
        self._queued = 0
        return body

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body piece by piece, as the replica sends it."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._queued -= len(chunk)
                if self._paused and self._queued <= _HIGH_WATER // 4:
                    self._paused = False
                    self._connection.resume_reading()
                yield chunk
            elif self._done:
                return
            elif self._error is not None:
                raise self._error
            else:
                await self._wait()

    def release(self, pool: ReplicaPool, key: tuple[str, int]) -> None:
        """Give the connection back when the answer was read whole, else close it."""
        if self._released:
            return
        self._released = True
        connection = self._connection
        if self._done and connection.reusable and not connection.closed:
            pool._put(key, connection)  # noqa: SLF001
        else:
            connection._abort()  # noqa: SLF001


class ReplicaPool:
    """Idle keep-alive connections per replica address; most recently used first."""

    def __init__(self, *, connect_timeout_s: float = 10.0, idle_timeout_s: float = 30.0) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._connect_timeout_s = connect_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._closed = False
        self._swept_at = time.monotonic()

    def _put(self, key: tuple[str, int], connection: _Connection) -> None:
        if self._closed:
            connection._abort()  # noqa: SLF001
            return
        now = connection.idle_since = time.monotonic()
        self._idle.setdefault(key, []).append(connection)
        if now - self._swept_at > self._idle_timeout_s:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Drop idle connections that closed or expired, and replicas that are gone.

        Taking is last-in-first-out, so after a burst the oldest connections sit at the bottom
        of a list unused; without a sweep they, and the lists of replicas that no longer exist,
        would stay forever.
        """
        self._swept_at = now
        oldest = now - self._idle_timeout_s
        for key, idle in list(self._idle.items()):
            kept = []
            for connection in idle:
                if connection.closed or connection.idle_since < oldest:
                    connection._abort()  # noqa: SLF001
                else:
                    kept.append(connection)
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]

    def idle_count(self) -> int:
        """Idle pooled connections (for tests and introspection)."""
        return sum(len(idle) for idle in self._idle.values())

    def _take(self, key: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        oldest = time.monotonic() - self._idle_timeout_s
        while idle:
            connection = idle.pop()
            if not connection.closed and connection.idle_since >= oldest:
                return connection
            connection._abort()  # noqa: SLF001
        return None

    async def _connect(self, host: str, port: int) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, connection = await loop.create_connection(lambda: _Connection(loop), host, port)
        except (OSError, TimeoutError) as exc:
            raise UpstreamConnectError(f"cannot connect to {host}:{port}: {exc}") from exc
        return connection

    async def request(
        self, host: str, port: int, method: str, data: bytes, *, deadline: float
    ) -> UpstreamResponse:
        """Send ``data`` (request line, headers and body) and wait for the answer's head.

        ``deadline`` is in loop time and bounds the whole exchange, body included.
        """
        key = (host, port)
        connection = self._take(key)
        reused = connection is not None
        while True:
            if connection is None:
                connection = await self._connect(host, port)
            try:
                return await connection.send(data, method=method, deadline=deadline, reused=reused)
            except _StaleConnection:
                connection._abort()  # noqa: SLF001
                if not reused or method not in _IDEMPOTENT:
                    raise UpstreamError("the replica closed the connection") from None
                connection, reused = None, False  # once more, on a fresh connection
            except BaseException:
                connection._abort()  # noqa: SLF001
                raise

    def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection._abort()  # noqa: SLF001
        self._idle.clear()
