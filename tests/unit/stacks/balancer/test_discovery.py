"""Replicas found by DNS: added as addresses appear, removed as they go, unchanged on a failed
lookup, and only the members it found are its own."""

from __future__ import annotations

import asyncio

import pytest

from stacks.balancer.discovery import DnsDiscovery, parse_target, replica_url
from stacks.balancer.membership import Membership
from stacks.balancer.metrics import BalancerMetrics


class FakeDns:
    """A resolver whose answer the test sets: a list of addresses, or an error."""

    def __init__(self) -> None:
        self.answer: list[str] | OSError = []

    async def __call__(self, host: str, port: int) -> list[str]:
        if isinstance(self.answer, OSError):
            raise self.answer
        return list(self.answer)


def discovery(dns: FakeDns, members: Membership) -> DnsDiscovery:
    return DnsDiscovery(members, "replicas.default.svc:8000", 5.0, lambda _: None, dns)


def membership() -> Membership:
    return Membership(BalancerMetrics(), health_checks=False, log=lambda _: None)


def test_follows_the_addresses_a_name_resolves_to() -> None:
    dns, members = FakeDns(), membership()
    found = discovery(dns, members)
    dns.answer = ["10.0.0.1", "10.0.0.2"]
    asyncio.run(found.refresh())
    assert sorted(members.replicas) == ["10.0.0.1:8000", "10.0.0.2:8000"]
    assert members["10.0.0.2:8000"].url == "http://10.0.0.2:8000"

    dns.answer = ["10.0.0.2", "10.0.0.3"]  # one pod gone, one new
    asyncio.run(found.refresh())
    assert sorted(members.replicas) == ["10.0.0.2:8000", "10.0.0.3:8000"]  # idle: forgotten

    dns.answer = OSError("temporary failure in name resolution")
    asyncio.run(found.refresh())
    assert sorted(members.replicas) == ["10.0.0.2:8000", "10.0.0.3:8000"]


def test_keeps_the_last_replica_and_what_it_did_not_find() -> None:
    dns, members = FakeDns(), membership()
    members.add("static", "http://127.0.0.1:9000", at_start=True)
    found = discovery(dns, members)
    dns.answer = ["10.0.0.1"]
    asyncio.run(found.refresh())
    dns.answer = []
    asyncio.run(found.refresh())
    assert sorted(members.replicas) == ["static"]  # its own went; the given one stays

    alone = membership()
    only = discovery(dns, alone)
    dns.answer = ["10.0.0.1"]
    asyncio.run(only.refresh())
    dns.answer = []
    asyncio.run(only.refresh())
    assert list(alone.replicas) == ["10.0.0.1:8000"]  # the last one serving is not taken out


def test_a_replica_that_left_while_busy_comes_back_once_forgotten() -> None:
    dns, members = FakeDns(), membership()
    found = discovery(dns, members)
    dns.answer = ["10.0.0.1", "10.0.0.2"]
    asyncio.run(found.refresh())
    members["10.0.0.1:8000"].view.inflight = 1  # a request still running there
    dns.answer = ["10.0.0.2"]
    asyncio.run(found.refresh())
    assert members["10.0.0.1:8000"].state == "removing"
    dns.answer = ["10.0.0.1", "10.0.0.2"]
    asyncio.run(found.refresh())  # still leaving: not added twice
    assert members["10.0.0.1:8000"].state == "removing"
    members["10.0.0.1:8000"].view.inflight = 0
    members.request_done(members["10.0.0.1:8000"])
    asyncio.run(found.refresh())
    assert members["10.0.0.1:8000"].state == "serving"


def test_targets_and_urls() -> None:
    assert parse_target("optimized-replicas.default.svc:8000") == (
        "optimized-replicas.default.svc", 8000)
    assert parse_target("[::1]:8000") == ("::1", 8000)
    assert replica_url("fd00::5", 8000) == "http://[fd00::5]:8000"
    for bad in ("replicas", "replicas:http", ":8000", "replicas:70000"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_target(bad)


def test_a_rolling_update_keeps_the_old_pod_until_its_successor_serves() -> None:
    dns = FakeDns()
    members = Membership(BalancerMetrics(), health_checks=True, log=lambda _: None)
    found = discovery(dns, members)
    dns.answer = ["10.0.0.1"]
    asyncio.run(found.refresh())
    members.health_result("10.0.0.1:8000", True)  # its first passing probe
    dns.answer = ["10.0.0.2"]  # the old pod left the Service; the new one is not probed yet
    asyncio.run(found.refresh())
    assert members["10.0.0.1:8000"].state == "serving"
    assert members["10.0.0.2:8000"].state == "pending"
    members.health_result("10.0.0.2:8000", True)
    asyncio.run(found.refresh())
    assert sorted(members.replicas) == ["10.0.0.2:8000"]
