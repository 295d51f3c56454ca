"""Keep-alive HTTP/1.1 connections from the balancer to one replica.

An `UpstreamConnection` parses the replica's answer with httptools and hands each piece straight
to the exchange that owns it (head, body chunks, end), so streamed responses pass through chunk
by chunk with no queue in between. `UpstreamPool` keeps idle connections per replica; a reused
connection that the replica had already closed is retried once on a fresh one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

import httptools


class ResponseSink(Protocol):
    """The receiving end of one upstream answer (implemented by the proxy's exchange)."""

    def on_response_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> None: ...

    def on_response_body(self, body: bytes) -> None: ...

    def on_response_done(self) -> None: ...

    def on_upstream_lost(self, conn: UpstreamConnection, exc: Exception | None) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "pool", "transport", "parser", "sink", "headers", "reused", "keep_alive", "closed"
    )

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.sink: ResponseSink | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.reused = False
        self.keep_alive = True
        self.closed = False

    # asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.abort(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.on_upstream_lost(self, exc)

    # httptools callbacks ------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        if self.sink is not None:
            self.sink.on_response_head(self.parser.get_status_code(), self.headers)

    def on_body(self, body: bytes) -> None:
        if self.sink is not None:
            self.sink.on_response_body(body)

    def on_message_complete(self) -> None:
        sink, self.sink = self.sink, None
        if self.keep_alive and not self.closed:
            self.pool.release(self)
        else:
            self.abort(None)
        if sink is not None:
            sink.on_response_done()

    # used by the proxy --------------------------------------------------------------------
    def send(self, request: bytes, sink: ResponseSink) -> None:
        self.sink = sink
        assert self.transport is not None
        self.transport.write(request)

    def abort(self, exc: Exception | None) -> None:
        """Drop the connection; the replica sees the client go and stops generating."""
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()


class UpstreamPool:
    """Idle keep-alive connections to one replica, newest first."""

    def __init__(self, host: str, port: int, connect_timeout_s: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.host_header = f"{host}:{port}".encode()
        self.connect_timeout_s = connect_timeout_s
        self._idle: list[UpstreamConnection] = []

    def take_idle(self) -> UpstreamConnection | None:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        return None

    async def connect(self) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        factory: Callable[[], UpstreamConnection] = lambda: UpstreamConnection(self)  # noqa: E731
        async with asyncio.timeout(self.connect_timeout_s):
            _, conn = await loop.create_connection(factory, self.host, self.port)
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        conn.reused = False
        self._idle.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        if conn in self._idle:
            self._idle.remove(conn)

    def close(self) -> None:
        for conn in self._idle:
            conn.abort(None)
        self._idle.clear()
