"""One completion and one streamed chat completion through a running stack's endpoint.

Used by `harness up --once` to show a stack works end to end on this machine: answers come back
through the balancer, the `x-upstream` header names the replica, and streaming arrives as
server-sent events.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from harness.errors import HarnessError


@dataclass(slots=True)
class ProbeAnswer:
    path: str
    upstream: str
    text: str
    events: int


def _post(endpoint: str, path: str, payload: dict[str, object], timeout_s: float) -> ProbeAnswer:
    parts = urlsplit(endpoint)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                            timeout=timeout_s)
    try:
        connection.request("POST", path, json.dumps(payload).encode(),
                           {"content-type": "application/json"})
        response = connection.getresponse()
        body = response.read().decode(errors="replace")
    except OSError as exc:
        raise HarnessError(f"{endpoint}{path}: {exc}") from exc
    finally:
        connection.close()
    if response.status != 200:
        raise HarnessError(f"{endpoint}{path} answered {response.status}: {body[:300]}")
    upstream = response.getheader("x-upstream", "?")
    if not payload.get("stream"):
        return ProbeAnswer(path, upstream, json.loads(body)["choices"][0]["text"], 0)
    pieces, events = [], 0
    for line in body.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            events += 1
            delta = json.loads(line[6:])["choices"][0].get("delta", {})
            pieces.append(delta.get("content") or "")
    return ProbeAnswer(path, upstream, "".join(pieces), events)


def probe(endpoint: str, model: str, timeout_s: float = 60.0) -> list[ProbeAnswer]:
    completion = {"model": model, "prompt": "Fix the grammar: I could of went there.",
                  "max_tokens": 16}
    chat = {"model": model, "max_tokens": 16, "stream": True,
            "messages": [{"role": "user", "content": "Make this shorter: see you tomorrow."}]}
    return [_post(endpoint, "/v1/completions", completion, timeout_s),
            _post(endpoint, "/v1/chat/completions", chat, timeout_s)]
