"""A real balancer process in front of fake OpenAI servers (test doubles)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import httpx

from stacks.process import free_port

Start = Callable[..., str]


def completion(url: str, **body: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/completions", json={"prompt": "x", **body}, timeout=10)


def test_round_robin_alternates_replicas(fake_replica: Start, balancer: Start) -> None:
    lb = balancer({"a": fake_replica("fa"), "b": fake_replica("fb")}, "--policy", "round_robin")
    served = [completion(lb).headers["x-upstream"] for _ in range(6)]
    assert served == ["a", "b", "a", "b", "a", "b"]


def test_answer_and_headers_pass_through(fake_replica: Start, balancer: Start) -> None:
    lb = balancer({"a": fake_replica("fa")})
    response = completion(lb, max_tokens=3)
    assert response.status_code == 200
    assert response.json()["choices"][0]["text"] == "fake token from"
    assert response.headers["x-replica-id"] == "fa"
    models = httpx.get(f"{lb}/v1/models", timeout=10)
    assert models.json()["data"][0]["id"] == "fake"


def test_streamed_chat_arrives_chunk_by_chunk(fake_replica: Start, balancer: Start) -> None:
    lb = balancer({"a": fake_replica("fa", "--chunk-delay-ms", "300")})
    arrivals: list[float] = []
    events: list[str] = []
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True}
    started = time.perf_counter()
    with httpx.stream("POST", f"{lb}/v1/chat/completions", json=body, timeout=10) as response:
        assert response.headers["content-type"] == "text/event-stream"
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.perf_counter() - started)
                events.append(line)
    assert len(events) == 4
    assert events[-1] == "data: [DONE]"
    # Each event is written 300 ms after the previous one. Had the balancer buffered the
    # answer, all four would arrive together after ~900 ms.
    assert arrivals[0] < 0.25
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)]
    assert all(gap > 0.2 for gap in gaps), arrivals


def test_refused_connection_is_a_502_naming_the_replica(balancer: Start) -> None:
    lb = balancer({"gone": f"http://127.0.0.1:{free_port()}"})
    response = completion(lb)
    assert response.status_code == 502
    assert "replica gone unreachable" in response.json()["error"]["message"]


def test_hanging_replica_times_out_with_504(fake_replica: Start, balancer: Start) -> None:
    lb = balancer({"slow": fake_replica("fs", "--hang")}, "--upstream-timeout-s", "0.5")
    started = time.perf_counter()
    response = completion(lb)
    assert response.status_code == 504
    assert time.perf_counter() - started < 5


def test_replica_errors_pass_through_with_their_status(fake_replica: Start,
                                                       balancer: Start) -> None:
    lb = balancer({"bad": fake_replica("fb", "--fail-status", "500")})
    assert completion(lb).status_code == 500


def test_unknown_route_is_404_and_health_is_local(fake_replica: Start, balancer: Start) -> None:
    lb = balancer({"a": fake_replica("fa")})
    assert httpx.get(f"{lb}/nope", timeout=5).status_code == 404
    health = httpx.get(f"{lb}/health", timeout=5)
    assert health.json() == {"healthy_replicas": 1, "replicas": 1}


def test_metrics_count_requests_by_replica_and_status(fake_replica: Start,
                                                      balancer: Start) -> None:
    lb = balancer({"a": fake_replica("fa"), "b": fake_replica("fb", "--fail-status", "503")},
                  "--policy", "round_robin")
    for _ in range(4):
        completion(lb)
    text = httpx.get(f"{lb}/metrics", timeout=5).text

    def value(pattern: str) -> float:
        match = re.search(pattern + r" ([0-9.e+]+)", text)
        assert match, pattern
        return float(match.group(1))

    assert value(r'balancer_requests_total\{replica="a",status="200"\}') == 2
    assert value(r'balancer_requests_total\{replica="b",status="503"\}') == 2
    assert value(r'balancer_inflight_requests\{replica="a"\}') == 0
    assert value(r'balancer_upstream_latency_seconds_count\{replica="a"\}') == 2


def test_keep_alive_connections_are_reused_across_requests(fake_replica: Start,
                                                           balancer: Start) -> None:
    lb = balancer({"a": fake_replica("fa")})
    with httpx.Client(timeout=10) as client:
        statuses = [client.post(f"{lb}/v1/completions", json={}).status_code for _ in range(50)]
    assert statuses == [200] * 50
