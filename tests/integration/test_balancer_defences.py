"""The balancer's defences (`stacks.balancer.defences`) against fake OpenAI servers (test
doubles): outlier ejection and its limit, the retry budget, the per-attempt timeout and
admission control, each on its own."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from stacks.event_log import read_events
from tests.integration.test_balancer_health import completion, metric, wait_for

Start = Callable[..., str]


def counter(url: str, name: str) -> float:
    """An unlabelled counter of the balancer's /metrics."""
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def concurrently(url: str, count: int) -> list[httpx.Response]:
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def send() -> None:
        answer = completion(url)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=send) for _ in range(count)]
    for thread in threads:
        thread.start()
        time.sleep(0.02)  # in this order, so round-robin's picks are known
    for thread in threads:
        thread.join()
    return answers


def test_consecutive_failures_eject_a_replica_for_its_ejection_time(
        fake_replica: Start, balancer: Start, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    lb = balancer({"sick": fake_replica("sick", "--fail-status", "500"),
                   "well": fake_replica("well")}, "--policy", "round_robin",
                  "--outlier-consecutive-5xx", "3", "--outlier-base-ejection-s", "1",
                  "--outlier-max-ejection-percent", "50", "--events", str(events))
    statuses = [completion(lb).status_code for _ in range(6)]
    assert statuses == [500, 200, 500, 200, 500, 200]  # the third 500 in a row ejects it
    assert metric(lb, "balancer_ejections_total", replica="sick", reason="outlier") == 1
    assert {completion(lb).headers["x-upstream"] for _ in range(6)} == {"well"}
    # Back after its base ejection time, and ejected again, for twice as long.
    wait_for(lambda: metric(lb, "balancer_replica_healthy", replica="sick") == 1, 3,
             "readmitted after 1 s")
    assert [completion(lb).status_code for _ in range(6)].count(500) == 3
    logged = [(e["event"], e["replica"], e.get("reason")) for e in read_events(events)]
    assert logged == [("ejected", "sick", "outlier"), ("in_rotation", "sick", None),
                      ("ejected", "sick", "outlier")]
    second = [e["at_unix_s"] for e in read_events(events)]
    time.sleep(1.2)  # the second ejection lasts 2 s
    assert metric(lb, "balancer_replica_healthy", replica="sick") == 0
    # The log rounds each time to the millisecond (`stacks.event_log`), and the ejection runs
    # on the monotonic clock: 1 s of ejection may log as 0.999 s.
    assert second[1] - second[0] >= 1.0 - 0.005


def test_no_more_than_the_maximum_share_of_replicas_is_ejected(fake_replica: Start,
                                                              balancer: Start) -> None:
    lb = balancer({"a": fake_replica("a", "--fail-status", "500"),
                   "b": fake_replica("b", "--fail-status", "500")}, "--policy", "round_robin",
                  "--outlier-consecutive-5xx", "2", "--outlier-max-ejection-percent", "10")
    for _ in range(8):
        completion(lb)
    # One replica may always go; a second would put 100 % out, over 10 %.
    ejected = [metric(lb, "balancer_ejections_total", replica=name, reason="outlier")
               for name in ("a", "b")]
    assert sorted(ejected) == [0, 1]


def test_the_retry_budget_bounds_retries_in_flight(fake_replica: Start,
                                                   balancer: Start) -> None:
    lb = balancer({"busy": fake_replica("busy", "--fail-status", "503"),
                   "slow": fake_replica("slow", "--latency-ms", "1000")},
                  "--policy", "round_robin", "--retry", "--retry-budget-percent", "20",
                  "--retry-min-concurrency", "1")
    answers = concurrently(lb, 4)
    # The first 503 is retried on `slow`, and that retry stays in flight for 1 s: the budget's
    # floor of 1. Every later 503 meanwhile is not retried, and reaches the client.
    refused = [a for a in answers if a.status_code == 503]
    assert metric(lb, "balancer_retries_total", replica="busy") == 1
    assert counter(lb, "balancer_retries_refused_total") == len(refused) >= 1
    assert all(a.headers["x-upstream"] == "busy" for a in refused)


def test_an_attempt_past_its_timeout_is_retried_elsewhere(fake_replica: Start,
                                                          balancer: Start) -> None:
    hung, well = fake_replica("hung", "--hang"), fake_replica("well")
    lb = balancer({"hung": hung, "well": well}, "--policy", "round_robin", "--retry",
                  "--per-try-timeout-s", "0.3")
    started = time.monotonic()
    answers = [completion(lb) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    assert [a.headers["x-upstream"] for a in answers] == ["well", "well"]
    # Round-robin's turn comes back to `hung` for each (a retry takes a turn too): each
    # request had one attempt abandoned after 0.3 s.
    assert 0.6 <= time.monotonic() - started < 2.0
    assert metric(lb, "balancer_retries_total", replica="hung") == 2
    alone = balancer({"hung": hung}, "--per-try-timeout-s", "0.3")
    timed_out = completion(alone)
    assert timed_out.status_code == 504
    assert "did not start to answer within 0.3s" in timed_out.text


def test_admission_control_turns_away_what_no_replica_has_room_for(fake_replica: Start,
                                                                  balancer: Start) -> None:
    lb = balancer({"one": fake_replica("one", "--latency-ms", "800")},
                  "--admission-queue-limit", "2", "--admission-retry-after-s", "2")
    answers = concurrently(lb, 4)
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 200, 503, 503]
    refused = [a for a in answers if a.status_code == 503]
    assert {a.headers["retry-after"] for a in refused} == {"2"}
    assert all(a.elapsed.total_seconds() < 0.5 for a in refused)  # at once, not queued
    assert counter(lb, "balancer_admission_refused_total") == 2
    assert completion(lb).status_code == 200  # room again once they finished


def test_a_request_on_a_replica_killed_before_it_answered_is_retried_elsewhere(
        fake_replica: Start, balancer: Start, processes: list[subprocess.Popen[bytes]]) -> None:
    doomed = fake_replica("doomed", "--hang")
    doomed_process = processes[-1]
    lb = balancer({"doomed": doomed, "well": fake_replica("well")}, "--policy", "round_robin",
                  "--retry")
    answers: list[httpx.Response] = []
    sender = threading.Thread(target=lambda: answers.append(completion(lb)))
    sender.start()  # round-robin's first pick: `doomed`, which holds it
    wait_for(lambda: metric(lb, "balancer_inflight_requests", replica="doomed") == 1, 3,
             "the request on doomed")
    doomed_process.send_signal(signal.SIGKILL)
    sender.join()
    assert answers[0].status_code == 200
    assert answers[0].headers["x-upstream"] == "well"
    assert metric(lb, "balancer_retries_total", replica="doomed") == 1
