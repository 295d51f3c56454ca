"""Replicas found by name, as a Kubernetes headless Service publishes them: every address the
name resolves to is a replica (Envoy's STRICT_DNS cluster does the same).

Every `interval_s` the name is resolved again. An address that appears is added (with health
checks on, it joins at its first passing probe); one that is gone is removed the membership's
way: it gets no new request and is forgotten once its last one ends. A failed lookup changes
nothing, so a DNS hiccup never empties the fleet, and a replica that is gone stays while it is
the only one serving (its successor still pending). Only the members found here are managed
here: replicas given on the command line or through the admin interface stay as they are.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from stacks.balancer.membership import Membership, MembershipRefused

Resolve = Callable[[str, int], Awaitable[list[str]]]


async def resolve_addresses(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, sorted, without repeats."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def parse_target(target: str) -> tuple[str, int]:
    """`HOST:PORT` (a DNS name, or an address) into its parts; ValueError saying what is wrong."""
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--discover wants HOST:PORT, e.g. optimized-replicas:8000, "
                         f"got {target!r}")
    return host.strip("[]"), int(port)


def replica_url(address: str, port: int) -> str:
    return f"http://[{address}]:{port}" if ":" in address else f"http://{address}:{port}"


class DnsDiscovery:
    def __init__(self, members: Membership, target: str, interval_s: float,
                 log: Callable[[str], None], resolve: Resolve = resolve_addresses) -> None:
        self.members = members
        self.host, self.port = parse_target(target)
        self.interval_s = interval_s
        self.log = log
        self.resolve = resolve
        self.found: set[str] = set()  # the members this discovery added and has not removed

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.refresh()

    async def refresh(self) -> None:
        try:
            addresses = await self.resolve(self.host, self.port)
        except (OSError, UnicodeError) as exc:  # UnicodeError: a name no DNS can hold
            self.log(f"resolving {self.host}: {exc}; members unchanged")
            return
        wanted = {f"{address}:{self.port}": replica_url(address, self.port)
                  for address in addresses}
        for name, url in wanted.items():
            if name in self.found and self.members.get(name) is not None:
                continue
            try:
                self.members.add(name, url)
            except MembershipRefused as exc:  # still leaving after it vanished: next time
                self.log(f"discovered {name}: {exc}")
                continue
            self.found.add(name)
        for name in sorted(self.found - wanted.keys()):
            if self.members.get(name) is None:  # taken out another way (the admin interface)
                self.found.discard(name)
                continue
            if not any(view.name != name for view in self.members.serving):
                # A pod on its way out (rolling update) still serves while its successor is
                # pending: keep it until another serves, or no request has anywhere to go.
                continue
            try:
                self.members.remove(name)
            except MembershipRefused as exc:
                self.log(f"{name} no longer resolves, kept: {exc}")
                continue
            self.found.discard(name)
