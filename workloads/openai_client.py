"""One OpenAI-style request over a sender's keep-alive connection, timed and turned into a record.

Requests go through geventhttpclient's `HTTPClient`, the client Locust's `FastHttpUser` wraps,
used directly: at 5,000 QPS `FastHttpSession`'s per-request layers (URL joining, cookie and
header merging, response wrappers, statistics events) left one Locust process no slack, and sends
fell milliseconds behind schedule (`bench/loadgen.py`).

`send_scheduled` never raises for a failed request: the failure is data (`ok=False` and an error
class) in the outcome it returns.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import gevent
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError, HTTPSocketPoolResponse
from geventhttpclient.url import URL
from locust.contrib.fasthttp import insecure_ssl_context_factory

PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
SSE_EVENT_END = b"\n\n"
Clock = Callable[[], float]  # seconds since the run's anchor


def request_body(api: str, model: str, prompt: str, max_tokens: int, stream: bool,
                 ignore_eos: bool) -> bytes:
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "stream": stream}
    if api == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if stream:
        body["stream_options"] = {"include_usage": True}
    if ignore_eos:
        body["ignore_eos"] = True  # vLLM: generate exactly max_tokens
    return json.dumps(body).encode()


def has_token(event: bytes) -> bool:
    """Whether one SSE event carries generated text (chat's first event carries only a role)."""
    if not event.startswith(b"data: {"):
        return False
    for choice in json.loads(event[6:]).get("choices") or []:
        if choice.get("text") or (choice.get("delta") or {}).get("content"):
            return True
    return False


def usage_of(payload: bytes) -> tuple[int | None, int | None]:
    usage = json.loads(payload).get("usage") or {}
    return usage.get("prompt_tokens"), usage.get("completion_tokens")


class Outcome:
    """What one request came to; the fields of a record row besides the schedule's."""

    __slots__ = ("error", "first_byte_s", "ok", "output_tokens", "prompt_tokens", "replica",
                 "status")

    def __init__(self) -> None:
        self.status: int | None = None
        self.ok = False
        self.error: str | None = None
        self.first_byte_s: float | None = None
        self.prompt_tokens: int | None = None
        self.output_tokens: int | None = None
        self.replica: str | None = None


class Connection:
    """One sender's keep-alive connection to the endpoint. geventhttpclient closes it whenever
    an answer was not read to its end (a timeout mid-stream), so a late answer is never taken
    for the next request's.

    TLS certificates are not verified, as with Locust's `FastHttpUser`: endpoints under test are
    often internal deployments with their own certificates."""

    def __init__(self, base_url: str, timeout_s: float = 3600.0) -> None:
        url = URL(base_url)
        self.prefix = url.path.rstrip("/")  # an endpoint may live under a path
        # Socket timeouts stay out of the way of sends: each request's total timeout (the
        # schedule's timeout_s, from send to last byte) is what ends a slow request.
        self.client = HTTPClient.from_url(url, concurrency=1, connection_timeout=timeout_s,
                                          network_timeout=timeout_s, insecure=True,
                                          ssl_context_factory=insecure_ssl_context_factory)


def first_model(base_url: str, headers: dict[str, str], timeout_s: float = 30.0) -> str:
    """The first model the endpoint lists at /v1/models, asked once before any send."""
    connection = Connection(base_url, timeout_s)
    try:
        response = connection.client.get(f"{connection.prefix}/v1/models", headers=headers)
        if response.status_code != 200:
            raise ValueError(f"{base_url}/v1/models answered {response.status_code}")
        return str(json.loads(response.read())["data"][0]["id"])
    finally:
        connection.client.close()


def read_stream(response: HTTPSocketPoolResponse, outcome: Outcome, clock: Clock) -> None:
    """Read SSE events as they arrive: the first with text stamps `first_byte_s`, the usage
    event gives token counts, `[DONE]` makes it complete."""
    # readline returns one whole event as soon as it has arrived, which fixed-size reads would
    # hold back.
    while event := response.readline(SSE_EVENT_END):
        event = event.strip()
        if event == b"data: [DONE]":
            outcome.ok = True
            return
        if outcome.first_byte_s is None and has_token(event):
            outcome.first_byte_s = clock()
        if b'"usage"' in event and event.startswith(b"data: {"):
            prompt_tokens, output_tokens = usage_of(event[6:])
            if output_tokens is not None:
                outcome.prompt_tokens, outcome.output_tokens = prompt_tokens, output_tokens
    outcome.error = "protocol"  # the stream ended without [DONE]


def read_whole(response: HTTPSocketPoolResponse, outcome: Outcome, clock: Clock) -> None:
    outcome.first_byte_s = clock()
    payload = response.read()
    try:
        outcome.prompt_tokens, outcome.output_tokens = usage_of(payload)
    except (ValueError, AttributeError):
        outcome.error = "protocol"
        return
    outcome.ok = True


def parse_error_class(error: HTTPParseError) -> str:
    """`connection` for an answer the peer cut short (geventhttpclient reports the end of the
    stream before the message's end as a parse error), `protocol` for one that is not HTTP."""
    text = str(error).lower()
    cut_short = "incomplete" in text or "connection closed" in text
    return "connection" if isinstance(error, HTTPConnectionClosed) or cut_short else "protocol"


def send_scheduled(connection: Connection, path: str, body: bytes, headers: dict[str, str],
                   stream: bool, timeout_s: float, clock: Clock) -> Outcome:
    """POST `body`, read the answer whole or as a stream, within `timeout_s` in all."""
    outcome = Outcome()
    try:
        with gevent.Timeout(timeout_s):
            response = connection.client.request("POST", connection.prefix + path, body,
                                                 headers)
            outcome.status = response.status_code
            replica = response.get("x-upstream")
            outcome.replica = replica if isinstance(replica, str) else None
            if outcome.status != 200:
                outcome.error = f"http_{outcome.status}"
                response.read()  # drained, so the connection can be reused
                return outcome
            (read_stream if stream else read_whole)(response, outcome, clock)
    except gevent.Timeout:
        outcome.ok, outcome.error = False, "timeout"
    except OSError:  # refused, reset, or dropped mid-answer
        outcome.ok, outcome.error = False, "connection"
    except HTTPParseError as error:
        outcome.ok, outcome.error = False, parse_error_class(error)
    return outcome
