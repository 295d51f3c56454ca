"""A trivial fast upstream for load-generator benchmarks: every request, any path, gets the
same small OpenAI-style completion at once. asyncio on uvloop with httptools, keep-alive.

    python bench/fast_upstream.py --port 18080
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


class Answer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_complete(self) -> None:
        self.transport.write(RESPONSE)


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", port,
                                                            backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    uvloop.run(serve(parser.parse_args().port))
