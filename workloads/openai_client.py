"""One OpenAI-style request over Locust's fast HTTP session, timed and turned into a record.

`send_scheduled` never raises for a failed request: the failure is data (`ok=False` and an error
class) in the row it returns, and it is reported to Locust's own statistics as well.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import gevent
from locust.contrib.fasthttp import FastHttpSession, ResponseContextManager

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


def read_stream(response: ResponseContextManager, outcome: Outcome, clock: Clock) -> None:
    """Read SSE events as they arrive: the first with text stamps `first_byte_s`, the usage
    event gives token counts, `[DONE]` makes it complete."""
    # Locust's response keeps geventhttpclient's under `_response`; its readline returns one
    # whole event as soon as it has arrived, which iter_content (fixed-size reads) does not.
    raw = response._response
    assert raw is not None  # a response with a status has its socket response
    while event := raw.readline(SSE_EVENT_END):
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


def read_whole(response: ResponseContextManager, outcome: Outcome, clock: Clock) -> None:
    outcome.first_byte_s = clock()
    assert response._response is not None
    payload = response._response.read()
    try:
        outcome.prompt_tokens, outcome.output_tokens = usage_of(payload)
    except (ValueError, AttributeError):
        outcome.error = "protocol"
        return
    outcome.ok = True


def send_scheduled(session: FastHttpSession, path: str, body: bytes, headers: dict[str, str],
                   stream: bool, timeout_s: float, clock: Clock) -> Outcome:
    """POST `body`, read the answer whole or as a stream, within `timeout_s` in all."""
    outcome = Outcome()
    try:
        with gevent.Timeout(timeout_s), session.request(
            "POST", path, data=body,  # type: ignore[arg-type]  # bytes go out as they are
            headers=headers, stream=True, catch_response=True, name=path,
        ) as response:
            outcome.status = response.status_code or None
            if response.headers is not None:
                outcome.replica = response.headers.get("x-upstream")
            if outcome.status is None:
                outcome.error = "connection"
                response.failure(f"connection: {response.error!r}")
                return outcome
            if outcome.status != 200:
                outcome.error = f"http_{outcome.status}"
                if response._response is not None:
                    response._response.read()  # drain, so the connection can be reused
                response.failure(outcome.error)
                return outcome
            (read_stream if stream else read_whole)(response, outcome, clock)
            if outcome.ok:
                response.success()
            else:
                response.failure(outcome.error or "protocol")
    except gevent.Timeout:
        outcome.ok, outcome.error = False, "timeout"
    except OSError:  # the connection dropped while the body was being read
        outcome.ok, outcome.error = False, "connection"
    return outcome


