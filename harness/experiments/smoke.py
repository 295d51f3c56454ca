"""One completion and one streamed chat completion through a running stack's endpoint.

Used by `harness up --once` to show a stack works end to end on this machine: answers come back
through the balancer, the `x-upstream` header names the replica, and streaming arrives as
server-sent events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from harness.client import answering, post_json


@dataclass(slots=True)
class SmokeAnswer:
    path: str
    upstream: str
    text: str
    events: int


def ask(endpoint: str, path: str, payload: dict[str, Any], timeout_s: float) -> SmokeAnswer:
    url = f"{endpoint}{path}"
    response = post_json(url, payload, timeout_s=timeout_s)
    upstream = response.headers.get("x-upstream", "?")
    with answering(url):
        if not payload.get("stream"):
            return SmokeAnswer(path, upstream, response.json()["choices"][0]["text"], 0)
        pieces = [json.loads(line[6:])["choices"][0].get("delta", {}).get("content") or ""
                  for line in response.text.splitlines()
                  if line.startswith("data: ") and line != "data: [DONE]"]
    return SmokeAnswer(path, upstream, "".join(pieces), len(pieces))


def smoke(endpoint: str, model: str, timeout_s: float = 60.0) -> list[SmokeAnswer]:
    completion = {"model": model, "prompt": "Fix the grammar: I could of went there.",
                  "max_tokens": 16}
    chat = {"model": model, "max_tokens": 16, "stream": True,
            "messages": [{"role": "user", "content": "Make this shorter: see you tomorrow."}]}
    return [ask(endpoint, "/v1/completions", completion, timeout_s),
            ask(endpoint, "/v1/chat/completions", chat, timeout_s)]
