"""Who the balancer sends requests to, and changes to that while it serves.

A replica is in one of these states:

    serving    in rotation
    pending    added while health checks are on: joins at its first passing probe
    ejected    out of rotation: by health checks (two failed probes in a row, or one refused
               connection, probe or request: nothing listens there; back once its /health
               answers 200) or by outlier detection (consecutive failed attempts; back after
               its ejection time, `stacks.balancer.defences.OutlierDetection`)
    draining   gets no new request; the ones it has finish there
    drained    draining, and nothing in flight any more: safe to stop
    removing   draining, and forgotten once its last request ends

Each change is an event with its wall-clock time (`stacks.event_log`: `added`, `ejected` with
its reason, `in_rotation`, `draining`, `removed`), appended to `--events FILE` when given: what
the harness times detection and recovery by.

No state change fails a request: a request is only ever sent to a serving replica, and a
replica leaves the table only when nothing is in flight there. The runtime changes (add, drain,
remove) come from the loopback admin interface (`stacks.balancer.admin`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from stacks.balancer.defences import OutlierDetection
from stacks.balancer.metrics import BalancerMetrics
from stacks.balancer.policies import ReplicaView
from stacks.balancer.upstream import UpstreamPool
from stacks.event_log import EventLog

# A busy engine can answer one probe late: only this many failed probes in a row eject it.
PROBE_FAILURES_TO_EJECT = 2


class MembershipRefused(ValueError):
    """A membership change that cannot be made, with the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_replica_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise ValueError(f"replica URL must look like http://HOST:PORT, got {url!r}")
    return parts.hostname, parts.port


@dataclass(slots=True)
class Replica:
    view: ReplicaView
    pool: UpstreamPool
    url: str
    probe_ok: bool = True  # by health checks (always, without them)
    failed_probes: int = 0  # in a row
    outlier_out: bool = False  # ejected by outlier detection, until its time is up
    times_ejected: int = 0  # by outlier detection
    failed_attempts: int = 0  # in a row
    readmit: asyncio.TimerHandle | None = None
    draining: bool = False
    removing: bool = False
    ever_healthy: bool = True  # False while pending

    @property
    def healthy(self) -> bool:
        return self.probe_ok and not self.outlier_out

    @property
    def state(self) -> str:
        if self.removing:
            return "removing"
        if self.draining:
            return "draining" if self.view.inflight else "drained"
        if self.healthy:
            return "serving"
        return "ejected" if self.ever_healthy else "pending"

    def describe(self) -> dict[str, object]:
        return {"name": self.view.name, "url": self.url, "state": self.state,
                "inflight": self.view.inflight}


class Membership:
    """The replica table, the serving views policies choose from, and every state change."""

    def __init__(self, metrics: BalancerMetrics, health_checks: bool,
                 log: Callable[[str], None], events: EventLog | None = None,
                 outlier: OutlierDetection | None = None) -> None:
        self.metrics = metrics
        self.outlier = outlier
        self.events = events or EventLog(None)
        self.health_checks = health_checks
        self.log = log
        self.replicas: dict[str, Replica] = {}
        self.serving: list[ReplicaView] = []

    def get(self, name: str) -> Replica | None:
        return self.replicas.get(name)

    def __getitem__(self, name: str) -> Replica:
        return self.replicas[name]

    def __len__(self) -> int:
        return len(self.replicas)

    # changes asked for -------------------------------------------------------------------
    def add(self, name: str, url: str, at_start: bool = False) -> Replica:
        """A new replica; with health checks on, it joins at its first passing probe (a
        replica given at start is trusted, as before: the launcher waited for its health)."""
        if not name or len(name) > 200 or not name.isprintable() or "/" in name:
            raise MembershipRefused(400, f"replica name must be 1-200 printable characters "
                                         f"without '/', got {name!r}")
        if name in self.replicas:
            raise MembershipRefused(409, f"replica {name!r} is already a member "
                                         f"({self.replicas[name].state})")
        try:
            host, port = parse_replica_url(url)
        except ValueError as exc:
            raise MembershipRefused(400, str(exc)) from None
        joins_now = at_start or not self.health_checks
        replica = Replica(ReplicaView(name), UpstreamPool(host, port), url,
                          probe_ok=joins_now, ever_healthy=joins_now)
        self.replicas[name] = replica
        self.metrics.add_replica(name, serving=joins_now)
        self._rotation_changed()
        if not at_start:
            self.events.record("added", name, url=url, serving=joins_now)
            self.log(f"{name} added at {url}" + ("" if joins_now else
                                                 ": joins at its first passing probe"))
        return replica

    def drain(self, name: str) -> Replica:
        replica = self._member(name)
        if not replica.draining:
            self._keep_one_besides(name)
            replica.draining = True
            self._rotation_changed()
            self.events.record("draining", name, inflight=replica.view.inflight)
            self.log(f"{name} draining: {replica.view.inflight} in flight")
        self._retire_if_idle(replica)
        return replica

    def remove(self, name: str) -> Replica:
        replica = self._member(name)
        if not replica.draining:
            self._keep_one_besides(name)
        if not replica.draining:
            self.events.record("draining", name, inflight=replica.view.inflight)
        replica.draining = replica.removing = True
        self._rotation_changed()
        self.log(f"{name} removing: {replica.view.inflight} in flight")
        self._retire_if_idle(replica)
        return replica

    def _member(self, name: str) -> Replica:
        replica = self.replicas.get(name)
        if replica is None:
            raise MembershipRefused(404, f"no replica named {name!r}; members: "
                                         f"{', '.join(self.replicas) or 'none'}")
        return replica

    def _keep_one_besides(self, name: str) -> None:
        """Refuse to take out the last replica that could serve: requests would fail."""
        if not any(not r.draining for other, r in self.replicas.items() if other != name):
            raise MembershipRefused(409, f"{name!r} is the last replica not draining; add "
                                         "another first")

    # what the data path reports ----------------------------------------------------------
    def request_done(self, replica: Replica) -> None:
        if replica.draining:
            self._retire_if_idle(replica)

    def _retire_if_idle(self, replica: Replica) -> None:
        if replica.view.inflight:
            return
        replica.pool.close()  # idle keep-alive connections; a drained replica may be stopped
        if replica.removing:
            if replica.readmit is not None:
                replica.readmit.cancel()
            del self.replicas[replica.view.name]
            self.metrics.remove_replica(replica.view.name)
            self.events.record("removed", replica.view.name)
            self.log(f"{replica.view.name} removed")

    # what the monitor and the data path learn --------------------------------------------
    def health_result(self, name: str, healthy: bool, refused: bool = False) -> None:
        """A probe's answer. A late or failed one may be a busy engine: two in a row eject.
        A refused connection is not ambiguous: it ejects at once."""
        replica = self.replicas.get(name)
        if replica is None or replica.draining:
            return
        was = replica.healthy
        replica.failed_probes = 0 if healthy else replica.failed_probes + 1
        if healthy:
            replica.probe_ok = True
        elif refused or replica.failed_probes >= PROBE_FAILURES_TO_EJECT:
            replica.probe_ok = False
        self._changed(replica, was, "refused" if refused else "health")

    def attempt_done(self, name: str, ok: bool, refused: bool = False) -> None:
        """One attempt's outcome on a replica: failures in a row feed outlier detection; a
        refused connection, with health checks on, is what a refused probe would say."""
        replica = self.replicas.get(name)
        if replica is None:
            return
        if refused and self.health_checks:
            self.health_result(name, False, refused=True)
        if ok:
            replica.failed_attempts = 0
            return
        replica.failed_attempts += 1
        rule = self.outlier
        if rule is None or replica.outlier_out or replica.failed_attempts < rule.consecutive_5xx:
            return
        out = sum(r.outlier_out for r in self.replicas.values() if not r.draining)
        members = sum(not r.draining for r in self.replicas.values())
        if not rule.may_eject(out, members):
            return
        was = replica.healthy
        replica.outlier_out, replica.failed_attempts = True, 0
        replica.times_ejected += 1
        replica.readmit = asyncio.get_running_loop().call_later(
            rule.ejection_s(replica.times_ejected), self._readmit, replica)
        self._changed(replica, was, "outlier")

    def _readmit(self, replica: Replica) -> None:
        was = replica.healthy
        replica.outlier_out, replica.readmit = False, None
        self._changed(replica, was, "outlier")

    def _changed(self, replica: Replica, was: bool, reason: str) -> None:
        """Log, count and apply a change of a replica's health (none: nothing to do)."""
        name = replica.view.name
        if replica.healthy == was or replica.draining:
            return
        self._rotation_changed()
        if replica.healthy:
            self.events.record("in_rotation", name)
            self.log(f"{name} is healthy: in rotation" + (" again" if replica.ever_healthy
                                                          else ""))
            replica.ever_healthy = True
        else:
            replica.view.external = 0
            self.metrics.ejected(name, reason)
            self.events.record("ejected", name, reason=reason)
            self.log(f"{name} ejected ({reason})")

    def _rotation_changed(self) -> None:
        self.serving = [r.view for r in self.replicas.values()
                        if r.healthy and not r.draining]
        for name, replica in self.replicas.items():
            self.metrics.set_healthy(name, replica.healthy and not replica.draining)
