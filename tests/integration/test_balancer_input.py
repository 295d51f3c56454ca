"""Bad input at a real balancer process: each case gets its 4xx, reaches no replica, and leaves
the balancer serving; then 10,000 random and mutated requests, after which it still answers
correctly."""

from __future__ import annotations

import asyncio
import random
import re
import socket
import time
from collections.abc import Callable

import httpx
import pytest

Start = Callable[..., str]
KEY_VARIABLE = "BALANCER_TEST_KEY"
KEY = "bal-key-0123456789abcdef"
BODY = b'{"prompt": "x", "max_tokens": 3}'
GOOD = (b"POST /v1/completions HTTP/1.1\r\nhost: lb\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer " + KEY.encode() + b"\r\ncontent-length: "
        + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
LIMITS = ("--max-header-bytes", "4096", "--max-body-bytes", "2048", "--header-timeout-s", "1",
          "--api-key-env", KEY_VARIABLE)


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def exchange(url: str, data: bytes, wait_s: float = 5.0) -> bytes:
    """Send raw bytes, then read until the balancer closes (or `wait_s` passes)."""
    with socket.create_connection(address(url), timeout=wait_s) as sock:
        sock.sendall(data)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            pass
    return answer


def status(answer: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert match, answer[:200]
    return int(match.group(1))


def requests_counted(url: str, replica: str = "a") -> dict[int, float]:
    """The balancer's own count of answered requests by status, for one replica (`none`:
    answered by the balancer itself, before any replica)."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return {int(code): float(value) for code, value in re.findall(
        rf'balancer_requests_total\{{replica="{replica}",status="(\d+)"\}} ([0-9.e+]+)', text)}


def upstream_requests(url: str) -> float:
    return sum(requests_counted(url).values())


def good_answer(url: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/completions", json={"prompt": "x", "max_tokens": 3},
                      headers={"authorization": f"Bearer {KEY}"}, timeout=10)


@pytest.fixture
def guarded(fake_replica: Start, balancer: Start, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    return balancer({"a": fake_replica("fa")}, *LIMITS)


@pytest.mark.parametrize(("data", "expected"), [
    (b"GARBAGE\x00 / HTTP/9\r\n\r\n", 400),
    (b"GET /v1/models HTTP/1.1\r\nhost: lb\r\nx-big: " + b"a" * 5000 + b"\r\n\r\n", 431),
    (b"POST /v1/completions HTTP/1.1\r\nhost: lb\r\nauthorization: Bearer " + KEY.encode()
     + b"\r\ncontent-length: 5000\r\n\r\n" + b"a" * 5000, 413),
    (b"POST /v1/completions HTTP/1.1\r\nhost: lb\r\nauthorization: Bearer " + KEY.encode()
     + b"\r\ntransfer-encoding: chunked\r\n\r\n" + (b"400\r\n" + b"a" * 1024 + b"\r\n") * 3,
     413),
    (b"GET /admin HTTP/1.1\r\nhost: lb\r\n\r\n", 404),
    (b"POST /v1/completions HTTP/1.1\r\nhost: lb\r\ncontent-length: 2\r\n\r\n{}", 401),
    (b"POST /v1/completions HTTP/1.1\r\nhost: lb\r\nauthorization: Bearer wrong\r\n"
     b"content-length: 2\r\n\r\n{}", 401),
], ids=["malformed", "headers-too-big", "body-too-big", "chunked-body-too-big", "unknown-path",
        "no-key", "wrong-key"])
def test_bad_input_gets_its_4xx_and_reaches_no_replica(guarded: str, data: bytes,
                                                       expected: int) -> None:
    assert status(exchange(guarded, data)) == expected
    assert upstream_requests(guarded) == 0
    assert good_answer(guarded).status_code == 200
    assert upstream_requests(guarded) == 1


def test_headers_sent_too_slowly_get_a_408_after_the_header_timeout(guarded: str) -> None:
    with socket.create_connection(address(guarded), timeout=5) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nhost: lb\r\n")
        started = time.monotonic()
        answer = sock.recv(65536)
        waited = time.monotonic() - started
    assert status(answer) == 408
    assert 0.8 < waited < 3.0  # the 1 s header timeout, not the client's patience
    assert good_answer(guarded).status_code == 200


def test_a_client_that_connects_and_says_nothing_is_closed_with_a_408(guarded: str) -> None:
    assert status(exchange(guarded, b"")) == 408


def mutate(rng: random.Random, data: bytes) -> bytes:
    """A valid request with a few bytes flipped, cut, repeated or inserted; or random bytes."""
    if rng.random() < 0.2:
        return rng.randbytes(rng.randrange(1, 300))
    out = bytearray(data)
    for _ in range(rng.randrange(1, 6)):
        at = rng.randrange(len(out))
        action = rng.randrange(4)
        if action == 0:
            out[at] = rng.randrange(256)
        elif action == 1:
            del out[at:at + rng.randrange(1, 20)]
        elif action == 2:
            out[at:at] = out[at:at + rng.randrange(1, 40)] * rng.randrange(1, 4)
        else:
            out[at:at] = rng.choice([b"\r\n", b"\x00", b":", b" ", b"\r\n\r\n", b"9" * 12])
        if not out:
            out = bytearray(b"\r\n")
    return bytes(out)


async def send_all(url: str, cases: list[bytes], concurrency: int = 64) -> None:
    host, port = address(url)
    gate = asyncio.Semaphore(concurrency)

    async def one(data: bytes) -> None:
        async with gate:
            try:
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(data)
                writer.write_eof()
                async with asyncio.timeout(2):
                    await reader.read()
                writer.close()
            except (OSError, TimeoutError):
                pass  # the balancer may cut a connection it refuses: that is an answer too

    await asyncio.gather(*(one(data) for data in cases))


def test_ten_thousand_random_and_mutated_requests_leave_it_serving(guarded: str) -> None:
    rng = random.Random(7)
    cases = [mutate(rng, GOOD) for _ in range(10_000)]
    asyncio.run(send_all(guarded, cases))
    refused = requests_counted(guarded, "none")
    assert refused.get(400, 0) > 1000  # most mutations break the request: the parser's 400
    for _ in range(20):
        answer = good_answer(guarded)
        assert answer.status_code == 200
        assert answer.headers["x-upstream"] == "a"
        assert answer.json()["choices"][0]["text"]
    assert httpx.get(f"{guarded}/health", timeout=5).status_code == 200
