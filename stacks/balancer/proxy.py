"""The client-facing side of the balancer: HTTP/1.1 connections and request exchanges.

`ClientConnection` parses requests with httptools (keep-alive and pipelining; one request served
at a time per connection, in order). Local endpoints (`/health`, `/metrics`) are answered in
place; `/v1/...` requests become an `Exchange`, which the `Router` (the balancer) sends to a
replica. The exchange then relays the replica's answer: the head with an `x-upstream` header
added, and the body piece by piece as it arrives — re-chunked when the replica streams — so
server-sent events reach the client as soon as the replica writes them.

Bad input never reaches a replica and never stops the balancer (`stacks.balancer.limits`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Protocol

import httptools

from stacks.balancer.errors import UpstreamError
from stacks.balancer.limits import Limits, Refused

if TYPE_CHECKING:
    from stacks.balancer.upstream import UpstreamConnection

# Headers that describe one hop, not the message (RFC 9110 §7.6.1), plus the framing headers we
# rewrite ourselves.
HOP_BY_HOP = frozenset(
    {
        b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate",
        b"proxy-authorization", b"te", b"trailer", b"transfer-encoding", b"upgrade",
        b"content-length", b"host",
    }
)
BODYLESS_STATUSES = frozenset({204, 304})
REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


@dataclass(slots=True)
class Request:
    method: bytes
    path: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    keep_alive: bool


class Router(Protocol):
    """What a client connection needs from the balancer."""

    def answer_locally(self, request: Request) -> tuple[int, bytes, bytes] | None: ...

    def dispatch(self, exchange: Exchange) -> None: ...

    def finish(self, exchange: Exchange, status: int) -> None: ...

    def retry_on_status(self, exchange: Exchange, status: int) -> bool:
        """Whether this answer's head should be swallowed and the request sent elsewhere."""
        ...

    def retry(self, exchange: Exchange) -> None: ...

    def replica_lost(self, exchange: Exchange) -> bool:
        """The replica dropped the connection; True when the request went elsewhere."""
        ...

    def refused(self, status: int) -> None:
        """A request answered with a 4xx by the balancer itself, before any replica."""
        ...


def encode_head(status: int, headers: list[tuple[bytes, bytes]], keep_alive: bool) -> bytes:
    lines = [b"HTTP/1.1 %d %s" % (status, REASONS.get(status, b"Unknown"))]
    lines.extend(name + b": " + value for name, value in headers)
    lines.append(b"connection: keep-alive" if keep_alive else b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def error_body(status: int, message: str) -> bytes:
    payload = {"error": {"message": message, "type": "balancer_error", "code": status}}
    return json.dumps(payload).encode()


class Exchange:
    """One proxied request: from picking a replica to the last byte of its answer."""

    __slots__ = (
        "client", "request", "replica", "upstream", "started_s", "status", "head_sent",
        "chunked", "attempts", "timer", "attempt_timer", "done", "retrying", "retried_from",
    )

    def __init__(self, client: ClientConnection, request: Request) -> None:
        self.client = client
        self.request = request
        self.replica = ""
        self.upstream: UpstreamConnection | None = None
        self.started_s = time.perf_counter()
        self.status = 0
        self.head_sent = False
        self.chunked = False
        self.attempts = 0
        self.timer: asyncio.TimerHandle | None = None  # the whole request's
        self.attempt_timer: asyncio.TimerHandle | None = None  # this attempt's, if any
        self.done = False
        self.retrying = False  # a 502/503 head was swallowed: drop its body, then go elsewhere
        self.retried_from = ""  # the replica that failed this request, once it was retried

    def encode_request(self, host_header: bytes) -> bytes:
        request = self.request
        lines = [request.method + b" " + request.path + b" HTTP/1.1", b"host: " + host_header]
        lines.extend(
            name + b": " + value
            for name, value in request.headers
            if name.lower() not in HOP_BY_HOP
        )
        lines.append(b"content-length: %d" % len(request.body))
        return b"\r\n".join(lines) + b"\r\n\r\n" + request.body

    # ResponseSink -------------------------------------------------------------------------
    def on_response_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        if self.client.router.retry_on_status(self, status):
            self.retrying = True
            return
        out: list[tuple[bytes, bytes]] = []
        length: bytes | None = None
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"content-length":
                length = value
            elif lowered not in HOP_BY_HOP:
                out.append((name, value))
        # 204 and 304 carry no body, so no framing; otherwise keep the replica's length, or
        # re-chunk what it streams.
        self.chunked = length is None and status not in BODYLESS_STATUSES
        if length is not None:
            out.append((b"content-length", length))
        elif self.chunked:
            out.append((b"transfer-encoding", b"chunked"))
        out.append((b"x-upstream", self.replica.encode()))
        self.head_sent = True
        self.client.write(encode_head(status, out, self.request.keep_alive))

    def on_response_body(self, body: bytes) -> None:
        if self.retrying:
            return
        if self.chunked:
            self.client.write(b"%x\r\n%s\r\n" % (len(body), body))
        else:
            self.client.write(body)

    def on_response_done(self) -> None:
        if self.retrying:
            self.retrying = False
            self.upstream = None
            self.client.router.retry(self)
            return
        if self.chunked:
            self.client.write(b"0\r\n\r\n")
        self.upstream = None
        self.client.router.finish(self, self.status)
        self.client.exchange_finished(self)

    def on_upstream_lost(self, conn: UpstreamConnection, exc: Exception | None) -> None:
        self.upstream = None
        if self.retrying:  # the swallowed 502/503 ended with its connection
            self.retrying = False
            self.client.router.retry(self)
            return
        if not self.head_sent and conn.reused and self.attempts < 2:
            # The replica closed an idle keep-alive connection as we reused it: nothing was
            # processed, so the same replica gets the request again on a fresh connection.
            self.client.router.dispatch(self)
            return
        if self.client.router.replica_lost(self):
            return
        self.fail(UpstreamError(f"replica {self.replica} closed the connection: {exc}"))

    # failures -----------------------------------------------------------------------------
    def drop_upstream(self) -> None:
        """Abandon the upstream connection: whatever it still says reaches no one."""
        if self.upstream is not None:
            upstream, self.upstream = self.upstream, None
            upstream.sink = None
            upstream.abort(None)

    def fail(self, error: UpstreamError) -> None:
        if self.done:
            return
        self.drop_upstream()
        if self.head_sent:
            # Part of the answer is already with the client: the only honest signal left is
            # to cut the connection.
            self.done = True
            self.client.router.finish(self, error.status)
            self.client.abort()
            return
        self.status = error.status
        self.client.router.finish(self, error.status)
        # Named like a relayed answer's, so a client can tell which replica failed it.
        self.client.send_simple(error.status, error_body(error.status, str(error)),
                                keep_alive=self.request.keep_alive,
                                upstream=self.replica.encode(),
                                retry_after_s=error.retry_after_s)
        self.client.exchange_finished(self)


class ClientConnection(asyncio.Protocol):
    """One client's HTTP/1.1 connection to the balancer."""

    def __init__(self, router: Router, limits: Limits | None = None) -> None:
        self.router = router
        self.limits = limits or Limits()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.closed = False
        self.current: Exchange | None = None
        self.pending: deque[Request] = deque()
        self._path = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._start_header_timer()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject(400, "upgrades are not supported")
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, Refused):
                raise
            self._reject(exc.__context__.status, str(exc.__context__))
        except httptools.HttpParserError:
            self._reject(400, "malformed HTTP request")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._stop_header_timer()
        exchange, self.current = self.current, None
        if exchange is not None and not exchange.done:
            # The client went away mid-request: drop the upstream connection so the replica
            # stops generating, and count the request as closed by the client (nginx's 499).
            exchange.done = True
            if exchange.upstream is not None:
                exchange.upstream.sink = None
                exchange.upstream.abort(None)
            self.router.finish(exchange, 499)

    def pause_writing(self) -> None:
        if self.current is not None and self.current.upstream is not None:
            self.current.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.current is not None and self.current.upstream is not None:
            self.current.upstream.resume_reading()

    # httptools callbacks ------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._path = b""
        self._headers = []
        self._head_bytes = 0
        self._body = []
        self._body_bytes = 0
        if self._header_timer is None:
            self._start_header_timer()

    def on_url(self, url: bytes) -> None:
        self._path += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        self._count_head(len(name) + len(value))

    def on_headers_complete(self) -> None:
        self._stop_header_timer()
        # The parser has checked a declared length is a number; chunked bodies declare none.
        declared = next((int(value) for name, value in self._headers
                         if name.lower() == b"content-length"), 0)
        if declared > self.limits.max_body_bytes:
            raise Refused(413, f"request body of {declared} bytes is over the limit of "
                               f"{self.limits.max_body_bytes}")

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self.limits.max_body_bytes:
            raise Refused(413, f"request body over the limit of {self.limits.max_body_bytes} "
                               "bytes")
        self._body.append(body)

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.limits.max_header_bytes:
            raise Refused(431, f"request line and headers over the limit of "
                               f"{self.limits.max_header_bytes} bytes")

    def _start_header_timer(self) -> None:
        loop = asyncio.get_running_loop()
        self._header_timer = loop.call_later(self.limits.header_timeout_s, self._headers_late)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.current is None and not self.pending:
            self._reject(408, f"request headers not complete within "
                              f"{self.limits.header_timeout_s:g} s")

    def on_message_complete(self) -> None:
        request = Request(
            method=self.parser.get_method(),
            path=self._path,
            headers=self._headers,
            body=b"".join(self._body),
            keep_alive=self.parser.should_keep_alive(),
        )
        if self.current is not None:
            self.pending.append(request)
            if self.transport is not None:
                self.transport.pause_reading()
            return
        self._serve(request)

    # serving ------------------------------------------------------------------------------
    def _serve(self, request: Request) -> None:
        local = self.router.answer_locally(request)
        if local is not None:
            status, content_type, body = local
            self.send_simple(status, body, content_type, request.keep_alive)
            if not request.keep_alive:
                self.close()
            return
        self.current = Exchange(self, request)
        self.router.dispatch(self.current)

    def exchange_finished(self, exchange: Exchange) -> None:
        exchange.done = True
        if exchange.timer is not None:
            exchange.timer.cancel()
        self.current = None
        if not exchange.request.keep_alive:
            self.close()
        elif self.pending:
            self._serve(self.pending.popleft())
        elif self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def send_simple(
        self,
        status: int,
        body: bytes,
        content_type: bytes = b"application/json",
        keep_alive: bool = True,
        upstream: bytes = b"",
        retry_after_s: int | None = None,
    ) -> None:
        headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
        if upstream:
            headers.append((b"x-upstream", upstream))
        if retry_after_s is not None:
            headers.append((b"retry-after", b"%d" % retry_after_s))
        self.write(encode_head(status, headers, keep_alive) + body)

    def _reject(self, status: int, message: str) -> None:
        self._stop_header_timer()
        self.router.refused(status)
        if self.current is None:  # an answer in progress keeps the connection until it ends
            self.send_simple(status, error_body(status, message), keep_alive=False)
        self.close()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()
