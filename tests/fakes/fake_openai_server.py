"""FAKE OpenAI-compatible server — a test double, never a stack's engine.

`python -m tests.fakes.fake_openai_server --port P --name fake-0 [--latency-ms 5]
[--chunk-delay-ms 50] [--fail-status 500] [--hang] [--stall-once-ms 2000 --stall-after 20]
[--unhealthy-from-s 1 --unhealthy-for-s 3] [--reported-waiting 10] [--cut-stream-after 2]
[--slots 4]`

Answers `/health`, `/v1/models`, `/metrics`, `/v1/completions` and `/v1/chat/completions`
(streamed as server-sent events when the body says `"stream": true`, one event per
`--chunk-delay-ms`), and stamps every answer with `x-replica-id: NAME` so tests can see who
served. `--stall-once-ms` holds the `--stall-after`-th POST (counting from 0) that long before
answering, once. `--unhealthy-for-s` answers 503 to `/health` and to every POST for that long,
from `--unhealthy-from-s` after start. `/metrics` reports, like vLLM,
`vllm:num_requests_running` (POSTs in progress) and `vllm:num_requests_waiting`
(`--reported-waiting`, as if other clients queued work).
`--cut-stream-after N` closes the connection after N events of a stream. `--slots N` answers at
most N POSTs at once, the rest wait their turn: with `--latency-ms L` it serves N / L requests
per second at most, a known capacity for the capacity search to find.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORDS = ["fake", "token", "from", "the", "test", "double"]


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send_json(503 if self.server.unhealthy() else 200, {})
        elif self.path == "/metrics":
            text = (f"vllm:num_requests_running{{model_name=\"fake\"}} {self.server.running}\n"
                    f"vllm:num_requests_waiting{{model_name=\"fake\"}} "
                    f"{self.server.options.reported_waiting}\n").encode()
            self.send_response(200)
            self.send_header("content-type", "text/plain; version=0.0.4")
            self.send_header("content-length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)
        elif self.path == "/v1/models":
            self._send_json(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
        else:
            self._send_json(404, {"error": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        options = self.server.options
        if self.server.unhealthy():
            self._send_json(503, {"error": "fake replica not ready"})
            return
        with self.server.counting(), self.server.slots:
            self._answer(body, options)

    def _answer(self, body: dict[str, object], options: argparse.Namespace) -> None:
        if options.hang:
            time.sleep(3600)
        if next(self.server.posts) == options.stall_after and options.stall_once_ms:
            time.sleep(options.stall_once_ms / 1000)
        time.sleep(options.latency_ms / 1000)
        if options.fail_status:
            self._send_json(options.fail_status, {"error": "fake failure"})
            return
        n_tokens = int(body.get("max_tokens", 4))  # type: ignore[call-overload]
        if body.get("stream"):
            self._stream(n_tokens, chat=self.path.endswith("chat/completions"))
            return
        text = " ".join(WORDS[i % len(WORDS)] for i in range(n_tokens))
        self._send_json(200, {
            "id": "cmpl-fake", "object": "text_completion", "model": "fake",
            "choices": [{"index": 0, "text": text, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": n_tokens,
                      "total_tokens": 3 + n_tokens},
        })

    def _stream(self, n_tokens: int, chat: bool) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("x-replica-id", self.server.name)
        self.end_headers()
        for i in range(n_tokens):
            if i == self.server.options.cut_stream_after:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            word = WORDS[i % len(WORDS)]
            choice = {"index": 0, "delta": {"content": word}} if chat else {"index": 0,
                                                                              "text": word}
            self._chunk(f"data: {json.dumps({'choices': [choice]})}\n\n".encode())
            time.sleep(self.server.options.chunk_delay_ms / 1000)
        self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _send_json(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-replica-id", self.server.name)
        self.end_headers()
        self.wfile.write(data)


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, name: str, options: argparse.Namespace) -> None:
        super().__init__((options.host, port), FakeHandler)
        self.name = name
        self.options = options
        self.posts = itertools.count()  # next() is atomic under the GIL: threads share it
        self.started = time.monotonic()
        self.running = 0
        self._lock = threading.Lock()
        self.slots: threading.Semaphore | contextlib.nullcontext[None] = (
            threading.Semaphore(options.slots) if options.slots else contextlib.nullcontext())

    def unhealthy(self) -> bool:
        since = time.monotonic() - self.started - self.options.unhealthy_from_s
        return 0 <= since < self.options.unhealthy_for_s

    def counting(self) -> _Running:
        return _Running(self)


class _Running:
    """Counts a POST as running while it is answered (what /metrics reports)."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server

    def __enter__(self) -> None:
        with self.server._lock:
            self.server.running += 1

    def __exit__(self, *exc_info: object) -> None:
        with self.server._lock:
            self.server.running -= 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--name", default="fake")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0)
    parser.add_argument("--fail-status", type=int, default=0)
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--stall-once-ms", type=float, default=0.0)
    parser.add_argument("--stall-after", type=int, default=0)
    parser.add_argument("--unhealthy-from-s", type=float, default=0.0)
    parser.add_argument("--unhealthy-for-s", type=float, default=0.0)
    parser.add_argument("--reported-waiting", type=int, default=0)
    parser.add_argument("--cut-stream-after", type=int, default=-1)
    parser.add_argument("--slots", type=int, default=0)
    parser.add_argument("--start-delay-ms", type=float, default=0.0,
                        help="wait this long before listening, as an engine's start does")
    options = parser.parse_args()
    time.sleep(options.start_delay_ms / 1000)
    FakeServer(options.port, options.name, options).serve_forever()


if __name__ == "__main__":
    main()
