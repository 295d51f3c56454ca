"""What the balancer learns from its replicas between requests: health and load.

Every `interval_s`, each replica's `/health` is asked (when health checks are on) and its
`/metrics` scraped for `vllm:num_requests_running` + `vllm:num_requests_waiting` (when load
scraping is on). A replica whose `/health` fails twice in a row, or refuses the connection
once, is ejected; an ejected one comes back once its `/health` answers 200. The scraped load,
less this balancer's own in-flight requests at that moment, is the replica's `external` load
(other clients' work), which P2C adds to the live in-flight count.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

import httptools

from stacks.load import ENGINE_LOAD_METRICS, requests_in_progress

MAX_ANSWER_BYTES = 4 << 20


class Monitored(Protocol):
    """What the monitor needs of the balancer."""

    def replica_addresses(self) -> dict[str, tuple[str, int]]: ...

    def health_result(self, replica: str, healthy: bool, refused: bool = False) -> None: ...

    def load_result(self, replica: str, scraped: int) -> None: ...


class _Answer:
    """httptools callbacks collecting one whole response."""

    def __init__(self) -> None:
        self.body: list[bytes] = []
        self.complete = False

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


async def http_get(host: str, port: int, path: str, timeout_s: float) -> tuple[int, bytes]:
    """Status and body of one GET on a fresh connection (probes stay off the data path's
    keep-alive pools)."""
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nhost: {host}:{port}\r\n"
                         "connection: close\r\n\r\n".encode())
            answer = _Answer()
            parser = httptools.HttpResponseParser(answer)
            received = 0
            while not answer.complete and (data := await reader.read(65536)):
                received += len(data)
                if received > MAX_ANSWER_BYTES:
                    raise ValueError(f"{path} answer over {MAX_ANSWER_BYTES} bytes")
                parser.feed_data(data)
            return parser.get_status_code(), b"".join(answer.body)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def scraped_load(metrics_text: str) -> int:
    """Running plus waiting requests, summed over every series (one per model); 0 when the
    replica reports neither."""
    return requests_in_progress(metrics_text, ENGINE_LOAD_METRICS) or 0


class ReplicaMonitor:
    def __init__(self, balancer: Monitored, interval_s: float, check_health: bool,
                 scrape_load: bool, log: Callable[[str], None]) -> None:
        self.balancer = balancer
        self.interval_s = interval_s
        self.check_health = check_health
        self.scrape_load = scrape_load
        self.log = log
        # Generous: a replica busy generating may answer a probe late, which is no failure.
        self.timeout_s = max(2.0, min(2 * interval_s, 10.0))

    async def run(self) -> None:
        while True:
            await self.round()
            await asyncio.sleep(self.interval_s)

    async def round(self) -> None:
        checks = [self.check(name, host, port)
                  for name, (host, port) in self.balancer.replica_addresses().items()]
        await asyncio.gather(*checks)

    async def check(self, name: str, host: str, port: int) -> None:
        if self.check_health:
            refused = False
            try:
                status, _ = await http_get(host, port, "/health", self.timeout_s)
                healthy = status == 200
            except ConnectionRefusedError:
                healthy, refused = False, True
            except (OSError, TimeoutError, ValueError, httptools.HttpParserError):
                healthy = False
            self.balancer.health_result(name, healthy, refused)
            if not healthy:
                return
        if self.scrape_load:
            try:
                status, body = await http_get(host, port, "/metrics", self.timeout_s)
                if status == 200:
                    self.balancer.load_result(name, scraped_load(body.decode()))
            except (OSError, TimeoutError, ValueError, httptools.HttpParserError) as exc:
                self.log(f"{name}: /metrics scrape failed: {exc!r}")
