"""Runtime membership through the balancer's loopback admin interface, against fake OpenAI
servers (test doubles): each change and its refusals, a drain that loses nothing, and add /
drain / remove cycles under load that fail no request, for both stacks' balancer settings."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from stacks.balancer.admin_client import BalancerAdmin
from stacks.errors import MembershipError
from stacks.event_log import read_events
from stacks.process import free_port, stop_trees

Start = Callable[..., str]
DIY = ("--policy", "round_robin")
OPTIMIZED = ("--policy", "p2c", "--health-interval-s", "0.2", "--load-interval-s", "0.2",
             "--retry")


def with_admin(balancer: Start, replicas: dict[str, str], *options: str) -> tuple[str, str]:
    """A balancer with an admin port -> (data URL, admin URL)."""
    port = free_port()
    return balancer(replicas, "--admin-port", str(port), *options), f"http://127.0.0.1:{port}"


def completion(client: httpx.Client, url: str, stream: bool = False) -> httpx.Response:
    return client.post(f"{url}/v1/completions", timeout=20,
                       json={"prompt": "x", "max_tokens": 3, "stream": stream})


def test_each_change_and_what_is_refused(fake_replica: Start, balancer: Start,
                                         tmp_path: Path) -> None:
    a, b = fake_replica("a"), fake_replica("b")
    events = tmp_path / "balancer-events.jsonl"
    lb, admin_url = with_admin(balancer, {"a": a}, *DIY, "--events", str(events))
    with BalancerAdmin(admin_url) as admin:
        assert admin.replicas() == {"a": {"name": "a", "url": a, "state": "serving",
                                          "inflight": 0}}
        assert admin.add("b", b) == "serving"  # no health checks: at once
        with pytest.raises(MembershipError, match="409 replica 'b' is already a member"):
            admin.add("b", b)
        with pytest.raises(MembershipError, match="400 replica URL must look like"):
            admin.add("c", "ftp://somewhere")
        with pytest.raises(MembershipError, match="404 no replica named 'zz'"):
            admin.drain("zz")
        admin.drain("a")
        assert admin.replicas()["a"]["state"] == "drained"
        with httpx.Client() as client:
            assert {completion(client, lb).headers["x-upstream"] for _ in range(4)} == {"b"}
        with pytest.raises(MembershipError, match="409 'b' is the last replica not draining"):
            admin.remove("b")
        admin.remove("a")
        assert list(admin.replicas()) == ["b"]
    logged = read_events(events)
    assert [(e["event"], e["replica"]) for e in logged] == [
        ("added", "b"), ("draining", "a"), ("removed", "a")]
    assert logged[0]["at_unix_s"] <= logged[-1]["at_unix_s"] <= time.time()
    # The admin routes live on the admin port only.
    assert httpx.get(f"{lb}/admin/replicas").status_code == 404
    assert httpx.get(f"{admin_url}/v1/models").status_code == 404


def test_a_new_replica_joins_at_its_first_passing_probe(fake_replica: Start,
                                                        balancer: Start) -> None:
    lb, admin_url = with_admin(balancer, {"a": fake_replica("a")}, *OPTIMIZED)
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there yet
    with BalancerAdmin(admin_url) as admin:
        assert admin.add("late", down) == "pending"
        time.sleep(0.6)
        assert admin.replicas()["late"]["state"] == "pending"
        with httpx.Client() as client:
            assert {completion(client, lb).headers["x-upstream"] for _ in range(6)} == {"a"}
        admin.remove("late")
        admin.add("b", fake_replica("b"))
        deadline = time.monotonic() + 3
        while admin.replicas()["b"]["state"] != "serving":
            assert time.monotonic() < deadline, "b never joined"
            time.sleep(0.05)


def test_the_admin_interface_asks_for_the_api_key(fake_replica: Start, balancer: Start,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_TEST_KEY", "sk-admin-key")
    _, admin_url = with_admin(balancer, {"a": fake_replica("a")}, "--api-key-env",
                              "ADMIN_TEST_KEY")
    assert httpx.get(f"{admin_url}/admin/replicas").status_code == 401
    with BalancerAdmin(admin_url, api_key="sk-admin-key") as admin:
        assert list(admin.replicas()) == ["a"]


def test_a_drain_lets_every_request_in_flight_finish(fake_replica: Start,
                                                     balancer: Start) -> None:
    slow = fake_replica("slow", "--latency-ms", "800")
    lb, admin_url = with_admin(balancer, {"slow": slow, "other": fake_replica("other")}, *DIY)
    answers: list[httpx.Response] = []

    def send() -> None:
        with httpx.Client() as client:
            answers.append(completion(client, lb))

    senders = [threading.Thread(target=send) for _ in range(4)]  # two land on `slow`
    for sender in senders:
        sender.start()
    with BalancerAdmin(admin_url) as admin:
        deadline = time.monotonic() + 3
        while admin.replicas()["slow"]["inflight"] < 2:
            assert time.monotonic() < deadline, "the slow replica never had 2 in flight"
            time.sleep(0.01)
        admin.remove("slow")  # returns once its two requests have finished
        assert list(admin.replicas()) == ["other"]
        assert sum(a.headers["x-upstream"] == "slow" for a in answers) == 2
    for sender in senders:
        sender.join()
    assert sorted(a.status_code for a in answers) == [200] * 4
    assert Counter(a.headers["x-upstream"] for a in answers) == {"slow": 2, "other": 2}


@pytest.mark.parametrize("options", [DIY, OPTIMIZED], ids=["diy", "optimized"])
def test_membership_changes_under_load_fail_no_request(
        fake_replica: Start, balancer: Start, processes: list[subprocess.Popen[bytes]],
        options: tuple[str, ...]) -> None:
    """As an autoscaler replaces replicas: start a new one and add it, drain the oldest,
    stop its process once drained, remove it; every request meanwhile is answered 200."""
    knobs = ("--latency-ms", "40", "--chunk-delay-ms", "20")
    started = {name: (fake_replica(name, *knobs), processes[-1]) for name in ("r0", "r1")}
    lb, admin_url = with_admin(balancer, {name: url for name, (url, _) in started.items()},
                               *options)
    stop = threading.Event()
    statuses: Counter[int] = Counter()
    served: Counter[str] = Counter()
    lock = threading.Lock()

    def load(stream: bool) -> None:
        with httpx.Client() as client:
            while not stop.is_set():
                answer = completion(client, lb, stream)
                with lock:
                    statuses[answer.status_code] += 1
                    served[answer.headers.get("x-upstream", "")] += 1

    senders = [threading.Thread(target=load, args=(i % 2 == 1,)) for i in range(6)]
    for sender in senders:
        sender.start()
    try:
        with BalancerAdmin(admin_url) as admin:
            for round_ in range(4):
                name = f"r{round_ + 2}"
                url, process = fake_replica(name, *knobs), processes[-1]
                admin.add(name, url)
                started[name] = (url, process)
                time.sleep(0.4)
                oldest = next(iter(started))
                admin.drain(oldest)
                stop_trees([started.pop(oldest)[1]], grace_s=2)
                admin.remove(oldest)
    finally:
        stop.set()
        for sender in senders:
            sender.join()
    assert sum(statuses.values()) > 100
    assert statuses == {200: sum(statuses.values())}, statuses
    assert set(served) == {f"r{i}" for i in range(6)}


def test_replicas_found_by_name(fake_replica: Start, balancer: Start) -> None:
    """`--discover HOST:PORT`, as a Kubernetes headless Service is used: the balancer finds its
    replica by resolving a name, and serves through it."""
    url = fake_replica("found")
    port = url.rsplit(":", 1)[1]
    lb = balancer({}, "--discover", f"localhost:{port}", "--discover-interval-s", "0.2",
                  *OPTIMIZED)
    with httpx.Client() as client:
        answer = completion(client, lb)
        assert answer.status_code == 200
        assert answer.headers["x-upstream"] == f"127.0.0.1:{port}"
        health = client.get(f"{lb}/health").json()
    assert health["healthy_replicas"] == 1  # localhost's other address, if any, has no server


def test_without_replicas_or_a_name_the_balancer_says_what_to_give() -> None:
    done = subprocess.run([sys.executable, "-m", "stacks.balancer"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2
    assert "--replica NAME=URL (repeat) or --discover HOST:PORT" in done.stderr
