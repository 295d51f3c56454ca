"""The registry's link (`stacks.images.link`) as a process between a client and a raw upstream:
a response after the client half-closed arrives whole, and an upstream that resets mid-response
ends the client's connection at once instead of leaving it waiting for its timeout."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from stacks.process import free_port, stop_trees, wait_ready

BANDWIDTH_MBPS = 800.0  # 100 MB/s


def serve_once(answer: Callable[[socket.socket], None]) -> int:
    """An upstream that answers the first request it gets its way (connections that ask
    nothing, the link's readiness probe's, are closed)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def run() -> None:
        with listener:
            while True:
                connection, _ = listener.accept()
                with connection:
                    if connection.recv(1024):
                        answer(connection)
                        return

    threading.Thread(target=run, daemon=True).start()
    return int(port)


@pytest.fixture
def link() -> Iterator[Callable[[int], int]]:
    """Starts the link in front of an upstream port; the port clients connect to."""
    started: list[subprocess.Popen[bytes]] = []

    def start(upstream: int) -> int:
        port = free_port()
        process = subprocess.Popen([sys.executable, "-m", "stacks.images.link", "--port",
                                    str(port), "--upstream", str(upstream), "--bandwidth-mbps",
                                    str(BANDWIDTH_MBPS)])
        started.append(process)

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            except OSError:
                return False
            return True

        assert wait_ready(listening, process, 10)
        return port

    yield start
    stop_trees(started, grace_s=2)


def read_all(client: socket.socket, deadline_s: float) -> tuple[bytes, float]:
    """Everything until the end of the stream (or a reset); how long it took."""
    started = time.monotonic()
    client.settimeout(deadline_s)
    received = bytearray()
    try:
        while chunk := client.recv(1 << 16):
            received += chunk
    except ConnectionResetError:
        pass
    return bytes(received), time.monotonic() - started


def test_a_response_after_the_client_half_closed_arrives_whole(
        link: Callable[[int], int]) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB: 10 ms at the link's rate
    port = link(serve_once(lambda connection: connection.sendall(body)))
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(b"GET / HTTP/1.0\r\n\r\n")
        client.shutdown(socket.SHUT_WR)
        received, _ = read_all(client, deadline_s=10)
    assert received == body


def test_an_upstream_reset_mid_response_ends_the_client_s_connection_at_once(
        link: Callable[[int], int]) -> None:
    def reset_after_some(connection: socket.socket) -> None:
        connection.sendall(b"x" * 1000)
        time.sleep(0.1)
        # Close with a zero linger: the peer gets a reset, not an end of stream.
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    port = link(serve_once(reset_after_some))
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(b"GET / HTTP/1.0\r\n\r\n")
        received, took = read_all(client, deadline_s=10)
    assert received == b"x" * 1000
    assert took < 2, took  # the client's own timeout would have been its only way out
