"""A trivial fast upstream for benchmarks: every request, any path but `/metrics`, gets the
same small OpenAI-style completion, at once or `--latency-ms` later; `/metrics` reports no
requests running or waiting, as an idle vLLM would. asyncio on uvloop with httptools,
keep-alive.

    python bench/fast_upstream.py --port 18080 [--latency-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio

import httptools
import uvloop

BODY = (b'{"id":"bench","object":"text_completion","choices":[{"index":0,"text":"ok",'
        b'"finish_reason":"length"}],"usage":{"prompt_tokens":8,"completion_tokens":4,'
        b'"total_tokens":12}}')
RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
METRICS = b"vllm:num_requests_running 0\nvllm:num_requests_waiting 0\n"
METRICS_RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n"
                    b"content-length: " + str(len(METRICS)).encode() + b"\r\n\r\n" + METRICS)
LATENCY_S = 0.0


class Answer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""

    def on_url(self, url: bytes) -> None:
        self.url = url

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_complete(self) -> None:
        if self.url == b"/metrics":
            self.transport.write(METRICS_RESPONSE)
        elif LATENCY_S:
            asyncio.get_running_loop().call_later(LATENCY_S, self._answer)
        else:
            self.transport.write(RESPONSE)

    def _answer(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(RESPONSE)


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", port,
                                                            backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    options = parser.parse_args()
    LATENCY_S = options.latency_ms / 1000
    uvloop.run(serve(options.port))
