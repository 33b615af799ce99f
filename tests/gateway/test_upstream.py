"""The lean replica client (gateway/upstream.py) against a raw TCP server speaking crafted HTTP.

A real socket server writes exact bytes, often split into small pieces, so framing, reuse and
failure handling are checked the way a replica could actually behave.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Self

import pytest

from faasbus.bus import free_port
from faasbus.gateway.upstream import (
    ReplicaPool,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
)

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
POST = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
HEAD = b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"


class RawServer:
    """Runs ``reply`` once per request on each connection; counts connections."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                await self.reply(reader, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _track(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._serve(reader, writer), name="raw-conn")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def __aenter__(self) -> Self:
        self.server = await asyncio.start_server(self._track, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.server.wait_closed()


async def _write_slowly(writer: asyncio.StreamWriter, data: bytes, piece: int = 3) -> None:
    for offset in range(0, len(data), piece):
        writer.write(data[offset : offset + piece])
        await writer.drain()
        await asyncio.sleep(0)


@pytest.fixture
async def pool() -> AsyncIterator[ReplicaPool]:
    replicas = ReplicaPool(connect_timeout_s=5)
    try:
        yield replicas
    finally:
        replicas.close()


def _deadline(seconds: float = 10.0) -> float:
    return asyncio.get_running_loop().time() + seconds


async def _call(pool: ReplicaPool, port: int, data: bytes = GET, method: str = "GET") -> bytes:
    response = await pool.request("127.0.0.1", port, method, data, deadline=_deadline())
    try:
        return await response.read()
    finally:
        response.release(pool, ("127.0.0.1", port))


async def test_content_length_in_pieces_and_connection_reuse(pool: ReplicaPool) -> None:
    async def reply(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _write_slowly(
            writer, b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-A: 1\r\n\r\nhello world"
        )

    async with RawServer(reply) as server:
        response = await pool.request("127.0.0.1", server.port, "GET", GET, deadline=_deadline())
        assert response.status == 200
        assert response.reason == "OK"
        assert ("X-A", "1") in response.headers
        assert await response.read() == b"hello world"
        response.release(pool, ("127.0.0.1", server.port))
        assert await _call(pool, server.port) == b"hello world"
        assert server.connections == 1


async def test_chunked_with_extensions_and_trailers(pool: ReplicaPool) -> None:
    answer = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n")  # fmt: skip

    async def reply(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _write_slowly(writer, answer, piece=2)

    async with RawServer(reply) as server:
        assert await _call(pool, server.port) == b"hello world"
        assert await _call(pool, server.port) == b"hello world"
        assert server.connections == 1


async def test_interim_answers_are_skipped(pool: ReplicaPool) -> None:
    async def reply(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n"
                     b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")  # fmt: skip

    async with RawServer(reply) as server:
        response = await pool.request("127.0.0.1", server.port, "POST", POST, deadline=_deadline())
        assert response.status == 201
        assert await response.read() == b"ok"
        response.release(pool, ("127.0.0.1", server.port))


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    ],
    ids=["http/1.0", "connection close"],
)
async def test_connections_the_replica_will_close_are_not_reused(
    pool: ReplicaPool, answer: bytes
) -> None:
    async def reply(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(answer)
        await writer.drain()
        writer.close()

    async with RawServer(reply) as server:
        assert await _call(pool, server.port) == b"ok"
        assert await _call(pool, server.port) == b"ok"
        assert server.connections == 2


async def test_a_body_delimited_by_close(pool: ReplicaPool) -> None:
    async def reply(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _write_slowly(writer, b"HTTP/1.1 200 OK\r\n\r\nuntil the end")
        writer.close()

    async with RawServer(reply) as server:
        assert await _call(pool, server.port) == b"until the end"


async def test_head_and_204_have_no_body(pool: ReplicaPool) -> None:
    answers = iter([
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ])  # fmt: skip

    async def reply(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(next(answers))

    async with RawServer(reply) as server:
        response = await pool.request("127.0.0.1", server.port, "HEAD", HEAD, deadline=_deadline())
        assert response.content_length == 10
        assert await response.read() == b""
        response.release(pool, ("127.0.0.1", server.port))
        assert await _call(pool, server.port) == b""
        assert await _call(pool, server.port) == b"ok"
        assert server.connections == 1


async def test_stream_arrives_piece_by_piece(pool: ReplicaPool) -> None:
    release = asyncio.Event()

    async def reply(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nfirst\n\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"7\r\nsecond\n\r\n0\r\n\r\n")

    async with RawServer(reply) as server:
        response = await pool.request("127.0.0.1", server.port, "GET", GET, deadline=_deadline())
        chunks = response.chunks()
        assert await asyncio.wait_for(anext(chunks), timeout=5) == b"first\n"
        assert not response.complete
        release.set()
        assert [chunk async for chunk in chunks] == [b"second\n"]
        response.release(pool, ("127.0.0.1", server.port))


async def test_a_large_body_read_slowly_arrives_intact(pool: ReplicaPool) -> None:
    body = bytes(range(256)) * 8192  # 2 MiB: over the high-water mark, so reading pauses

    async def reply(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        writer.write(body)
        await writer.drain()

    async with RawServer(reply) as server:
        response = await pool.request("127.0.0.1", server.port, "GET", GET, deadline=_deadline())
        received = bytearray()
        async for chunk in response.chunks():
            received += chunk
            await asyncio.sleep(0)
        response.release(pool, ("127.0.0.1", server.port))
        assert bytes(received) == body


async def test_a_cut_body_is_an_error(pool: ReplicaPool) -> None:
    async def reply(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()
        writer.close()

    async with RawServer(reply) as server:
        with pytest.raises(UpstreamError):
            await _call(pool, server.port)


@pytest.mark.parametrize(
    "answer",
    [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 abc\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
     b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
    ids=["not http", "bad status", "bad header", "bad length", "bad chunk size"],
)  # fmt: skip
async def test_bad_http_is_an_error(pool: ReplicaPool, answer: bytes) -> None:
    async def reply(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(answer)

    async with RawServer(reply) as server:
        with pytest.raises(UpstreamError):
            await _call(pool, server.port)


async def test_no_answer_before_the_deadline_is_a_timeout(pool: ReplicaPool) -> None:
    async def reply(_r: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async with RawServer(reply) as server:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(UpstreamTimeout):
            await pool.request("127.0.0.1", server.port, "GET", GET, deadline=started + 0.3)
        assert loop.time() - started < 5


async def test_refused_connection_is_a_connect_error(pool: ReplicaPool) -> None:
    with pytest.raises(UpstreamConnectError):
        await pool.request("127.0.0.1", free_port(), "GET", GET, deadline=_deadline())


async def test_a_pooled_connection_closed_by_the_replica(pool: ReplicaPool) -> None:
    """The replica drops an idle keep-alive connection: GET is retried, POST is not replayed."""
    connections: list[asyncio.StreamWriter] = []

    async def reply(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    async with RawServer(reply) as server:
        for method, data in (("GET", GET), ("POST", POST)):
            assert await _call(pool, server.port, data, method) == b"ok"
            # Close it from the server side without the client noticing yet.
            connections[-1].transport.abort()
            if method == "GET":
                assert await _call(pool, server.port, data, method) == b"ok"
            else:
                with pytest.raises(UpstreamError):
                    await _call(pool, server.port, data, method)


async def test_idle_connections_expire_and_gone_replicas_are_swept() -> None:
    async def reply(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    pool = ReplicaPool(idle_timeout_s=0.2)
    try:
        async with RawServer(reply) as first, RawServer(reply) as second:
            await asyncio.gather(*(_call(pool, first.port) for _ in range(3)))
            assert pool.idle_count() == 3
            await asyncio.sleep(0.3)  # the idle timeout is what is under test
            assert await _call(pool, second.port) == b"ok"
            assert pool.idle_count() == 1  # the first replica's expired connections are gone
            assert await _call(pool, first.port) == b"ok"
            assert first.connections == 4  # an expired connection is never reused
    finally:
        pool.close()
