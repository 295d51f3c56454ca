"""The balancer's own policies against fake OpenAI servers (test doubles): ejection and return of
unhealthy replicas, one retry only while nothing reached the client, and load-aware P2C."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import httpx

from stacks.process import free_port

Start = Callable[..., str]


def completion(url: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/completions", json={"prompt": "x", "max_tokens": 2},
                      timeout=10)


def metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{re.escape(name)}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return 0.0


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout_s}s: {what}"
        time.sleep(0.05)


def test_an_ejected_replica_gets_no_traffic_until_healthy(fake_replica: Start,
                                                          balancer: Start) -> None:
    # Healthy at first (the fixture waits for that), failing from 1 s to 4 s after its start.
    sick = fake_replica("sick", "--unhealthy-from-s", "1", "--unhealthy-for-s", "3")
    lb = balancer({"sick": sick, "well": fake_replica("well")}, "--policy", "round_robin",
                  "--health-interval-s", "0.2")
    wait_for(lambda: metric(lb, "balancer_replica_healthy", replica="sick") == 0, 3,
             "the failing replica ejected")
    served = [completion(lb) for _ in range(8)]
    assert [r.status_code for r in served] == [200] * 8
    assert {r.headers["x-upstream"] for r in served} == {"well"}
    assert json.loads(httpx.get(f"{lb}/health").text)["healthy_replicas"] == 1
    wait_for(lambda: metric(lb, "balancer_replica_healthy", replica="sick") == 1, 8,
             "the replica back once healthy")
    served = [completion(lb).headers["x-upstream"] for _ in range(4)]
    assert set(served) == {"sick", "well"}


def test_a_refused_connection_is_retried_once_elsewhere(fake_replica: Start,
                                                        balancer: Start) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    lb = balancer({"down": down, "up": fake_replica("up")}, "--policy", "round_robin",
                  "--retry")
    served = [completion(lb) for _ in range(4)]
    assert [r.status_code for r in served] == [200] * 4
    assert {r.headers["x-upstream"] for r in served} == {"up"}
    # Every attempt on `down` failed to connect and was retried, once, on `up`.
    refused = metric(lb, "balancer_requests_total", replica="down", status="502")
    assert 1 <= refused <= 4
    assert metric(lb, "balancer_retries_total", replica="down") == refused
    assert metric(lb, "balancer_requests_total", replica="up", status="200") == 4


def test_a_503_before_any_byte_is_retried_but_only_once(fake_replica: Start,
                                                        balancer: Start) -> None:
    lb = balancer({"busy": fake_replica("busy", "--fail-status", "503"),
                   "also": fake_replica("also", "--fail-status", "503")},
                  "--policy", "round_robin", "--retry")
    answer = completion(lb)
    # Both replicas refuse: one retry, then the second 503 goes to the client as it is.
    assert answer.status_code == 503
    assert answer.headers["x-upstream"] == "also"
    assert metric(lb, "balancer_retries_total", replica="busy") == 1
    assert metric(lb, "balancer_retries_total", replica="also") == 0


def test_no_retry_once_part_of_the_answer_reached_the_client(fake_replica: Start,
                                                            balancer: Start) -> None:
    lb = balancer({"cut": fake_replica("cut", "--cut-stream-after", "2"),
                   "fine": fake_replica("fine")}, "--policy", "round_robin", "--retry")
    body = {"model": "fake", "stream": True, "max_tokens": 6,
            "messages": [{"role": "user", "content": "hi"}]}
    events = []
    broken = False
    try:
        with httpx.stream("POST", f"{lb}/v1/chat/completions", json=body, timeout=10) as stream:
            assert stream.headers["x-upstream"] == "cut"
            events = [line for line in stream.iter_lines() if line.startswith("data: ")]
    except httpx.HTTPError:
        broken = True  # the balancer cut the client's connection: the honest signal
    assert broken or "data: [DONE]" not in events
    assert metric(lb, "balancer_retries_total", replica="cut") == 0
    assert metric(lb, "balancer_requests_total", replica="fine", status="200") == 0


def test_p2c_steers_away_from_a_replica_that_reports_a_queue(fake_replica: Start,
                                                             balancer: Start) -> None:
    queued = fake_replica("queued", "--reported-waiting", "50")
    lb = balancer({"queued": queued, "idle": fake_replica("idle")}, "--policy", "p2c",
                  "--load-interval-s", "0.1")
    wait_for(lambda: metric(lb, "balancer_replica_external_load", replica="queued") == 50, 3,
             "the queue scraped")
    served = [completion(lb).headers["x-upstream"] for _ in range(20)]
    assert served == ["idle"] * 20


def test_without_load_scraping_p2c_sees_only_its_own_inflight(fake_replica: Start,
                                                              balancer: Start) -> None:
    lb = balancer({"queued": fake_replica("queued", "--reported-waiting", "50"),
                   "idle": fake_replica("idle")}, "--policy", "p2c")
    served = [completion(lb).headers["x-upstream"] for _ in range(40)]
    assert set(served) == {"queued", "idle"}  # sequential requests: ties, broken at random
