"""The autoscaler of a running stack: a thread beside its launcher that observes, decides with
the stack's policy (`stacks.autoscaler.policy`) and acts through the launcher and the
balancer's admin interface.

Every `interval_s` it reads each member's in-flight requests from the balancer (requests the
balancer has sent and not yet answered: running and queued in the engine alike), and asks the
policy for the fleet's size. It then makes the fleet that size:

- up: a replica is started in the next free slot (from the stack's image when it has one: a
  real cold start), and joins the balancer once its `/health` answers 200;
- down: a replica still starting is stopped first (it serves nothing); else the newest one in
  rotation is drained by the balancer (no new request; the ones in flight finish) and only
  then stopped, so no request fails because of a scaling action.

Each observation and action is appended to `<log_dir>/scaling.jsonl` with its wall-clock time
(`stacks.event_log`), what the harness draws the timeline and computes the scaling metrics
from:

    {"at_unix_s": ..., "event": "tick", "replica": null, "concurrency": 5, "mean": 4.2,
     "recommendation": 2, "desired": 2, "ready": 1, "starting": 1, "draining": 0}
    {"at_unix_s": ..., "event": "scale_up", "replica": null, "from": 1, "to": 2}
    {"at_unix_s": ..., "event": "replica_starting", "replica": "replica-1"}
    {"at_unix_s": ..., "event": "replica_joined", "replica": "replica-1", "start_s": 48.1}
    {"at_unix_s": ..., "event": "replica_draining", "replica": "replica-1"}
    {"at_unix_s": ..., "event": "replica_stopped", "replica": "replica-1", "drain_s": 0.8}
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stacks.autoscaler.config import AutoscalingSpec
from stacks.autoscaler.policy import Observation, ScalerState, make_policy
from stacks.balancer.admin_client import BalancerAdmin
from stacks.errors import MembershipError
from stacks.event_log import EventLog

if TYPE_CHECKING:
    from stacks.launcher import Member, Stack

START_RETRY_S = 10.0  # after a replica failed to start, before the next try
DRAIN_WAIT_S = 120.0  # the longest a drain may take before the replica is stopped anyway


@dataclass(slots=True)
class Starting:
    member: Member
    since: float  # monotonic


class Autoscaler:
    """`spec`: the policy to follow, by default the stack's own `autoscaling:` (a scorecard
    phase scales a stack started as a fixed fleet with the section that fleet set aside)."""

    def __init__(self, stack: Stack, events_path: Path,
                 spec: AutoscalingSpec | None = None) -> None:
        self.stack = stack
        scaling = spec or stack.spec.autoscaling
        assert scaling is not None
        self.spec = scaling
        self.policy = make_policy(self.spec, stack.spec.replicas)
        self.state = ScalerState(len(stack.replicas))
        self.log = EventLog(events_path)
        key_env = stack.spec.balancer.api_key_env
        self.admin = BalancerAdmin(stack.admin_url, os.environ.get(key_env, "") if key_env else "")
        self.starting: list[Starting] = []
        self.draining: dict[str, Member] = {}
        self.failed_at = -START_RETRY_S
        self._lock = threading.Lock()
        self._end = threading.Event()
        self._drains: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._run, name="autoscaler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def settle(self, replicas: int) -> None:
        """Before the first decision: drain and stop the newest replicas until `replicas` are
        left, and wait for it, so a load that follows meets the fleet at that size."""
        while len(self.stack.replicas) > replicas:
            self._stop_one()
        for drain in self._drains:
            drain.join(timeout=DRAIN_WAIT_S)
        self._drains = []
        self.state = ScalerState(len(self.stack.replicas))

    def close(self) -> None:
        """Stop deciding; stop the replicas still starting; wait for drains under way."""
        self._end.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        with self._lock:
            for starting in self.starting:
                starting.member.retire()
            self.starting = []
        for drain in self._drains:
            drain.join(timeout=DRAIN_WAIT_S)
        self.admin.close()

    def _run(self) -> None:
        while not self._end.wait(self.spec.interval_s):
            try:
                members = self.admin.replicas()
            except MembershipError as exc:
                self.log.record("no_observation", None, error=str(exc))
                continue
            self._check_starting()
            concurrency = sum(int(m["inflight"]) for m in members.values())
            self.state, decision = self.policy.decide(
                self.state, Observation(time.monotonic(), concurrency))
            ready = sum(m["state"] == "serving" for m in members.values())
            self.log.record("tick", None, concurrency=concurrency,
                            mean=round(decision.mean_concurrency, 3),
                            recommendation=decision.recommendation, desired=decision.replicas,
                            ready=ready, starting=len(self.starting),
                            draining=len(self.draining))
            self._resize(decision.replicas)

    def _fleet(self) -> int:
        """Replicas in rotation or on their way there (not those leaving)."""
        return len(self.stack.replicas) + len(self.starting)

    def _resize(self, desired: int) -> None:
        fleet = self._fleet()
        if desired > fleet and time.monotonic() - self.failed_at >= START_RETRY_S:
            self.log.record("scale_up", None, **{"from": fleet, "to": desired})
            for _ in range(desired - fleet):
                self._start_one()
        elif desired < fleet:
            self.log.record("scale_down", None, **{"from": fleet, "to": desired})
            for _ in range(fleet - desired):
                self._stop_one()

    def _free_slot(self) -> int:
        used = {m.name for m in self.stack.replicas} | {s.member.name for s in self.starting} \
            | set(self.draining)
        return next(index for index in range(len(used) + 1) if f"replica-{index}" not in used)

    def _start_one(self) -> None:
        member = self.stack.start_replica(self._free_slot())
        with self._lock:
            self.starting.append(Starting(member, time.monotonic()))
        self.log.record("replica_starting", member.name, log=str(member.log_path))

    def _check_starting(self) -> None:
        """Join each replica whose /health answers; drop each that exited while starting."""
        for starting in list(self.starting):
            member = starting.member
            code = member.process.poll()
            if code is not None:
                self._forget_starting(starting)
                self.failed_at = time.monotonic()
                self.log.record("start_failed", member.name, code=code,
                                log=str(member.log_path))
            elif member.healthy():
                self.admin.add(member.name, member.url)
                self._forget_starting(starting)
                self._rejoin(member)
                self.log.record("replica_joined", member.name,
                                start_s=round(time.monotonic() - starting.since, 3))

    def _rejoin(self, member: Member) -> None:
        with self._lock:
            self.stack.replicas = [*self.stack.replicas, member]

    def _forget_starting(self, starting: Starting) -> None:
        with self._lock:
            self.starting.remove(starting)

    def _stop_one(self) -> None:
        if self.starting:
            starting = self.starting[-1]
            self._forget_starting(starting)
            starting.member.retire()
            self.log.record("replica_stopped", starting.member.name, drain_s=0.0,
                            while_starting=True)
            return
        with self._lock:  # the stack's list is replaced whole: the supervisor reads it
            newest = max(self.stack.replicas, key=lambda m: int(m.name.rsplit("-", 1)[1]))
            self.stack.replicas = [m for m in self.stack.replicas if m is not newest]
        self.draining[newest.name] = newest
        drain = threading.Thread(target=self._drain, args=(newest,), name=f"drain-{newest.name}",
                                 daemon=True)
        self._drains.append(drain)
        drain.start()

    def _drain(self, member: Member) -> None:
        """Out of rotation, its requests finished, forgotten by the balancer: then stopped."""
        began = time.monotonic()
        self.log.record("replica_draining", member.name)
        try:
            self.admin.remove(member.name, wait_s=DRAIN_WAIT_S)
        except MembershipError as exc:
            if exc.status is not None and not self._end.is_set():  # refused: it stays
                self._rejoin(member)
                self.draining.pop(member.name, None)
                self.log.record("drain_refused", member.name, error=str(exc))
                return
            # The balancer gone (the stack stopping) or a request past every timeout.
            self.log.record("drain_failed", member.name, error=str(exc))
        member.retire()
        self.draining.pop(member.name, None)
        self.log.record("replica_stopped", member.name,
                        drain_s=round(time.monotonic() - began, 3))
