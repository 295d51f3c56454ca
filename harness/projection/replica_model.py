"""One replica as the simulation sees it: a processor-sharing server with a batching cost.

An engine with continuous batching serves every request it holds at once, each a little slower
the more it holds. So here a request alone on a replica takes its `work` (seconds, drawn from
the latencies measured at the lowest load, where requests barely overlap), and with n requests
in service each progresses at 1 / (1 + slowdown × (n - 1)) of that speed. One replica then
completes at most 1 / (slowdown × mean work) requests a second however many it holds: its
capacity. Beyond `max_batch` requests (vLLM's `max_num_seqs`) the rest wait their turn.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

import numpy as np
import simpy

from stacks.balancer.policies import ReplicaView


@dataclass(frozen=True)
class ReplicaModel:
    work_s: np.ndarray  # solo latencies: each request's work is one of them, drawn at random
    slowdown: float  # the batching cost per extra request in service
    max_batch: int = 256

    @property
    def mean_work_s(self) -> float:
        return float(np.mean(self.work_s))

    def saturation_qps(self) -> float:
        """The most it completes a second, with a full batch held."""
        n = self.max_batch
        return n / (self.mean_work_s * (1 + self.slowdown * (n - 1)))

    def scaled(self, factor: float) -> ReplicaModel:
        """The same replica `factor` times faster at batching (capacity × about `factor`)."""
        return ReplicaModel(self.work_s, self.slowdown / factor, self.max_batch)


class SimReplica:
    """A replica in the simulation. Processor sharing is kept in virtual time: every request
    in service has done the same work since it started, so each holds the virtual instant it
    finishes at, in a heap, and an arrival or a departure costs O(log n)."""

    def __init__(self, env: simpy.Environment, model: ReplicaModel, name: str,
                 latencies: list[tuple[float, float]]) -> None:
        self.env = env
        self.model = model
        self.view = ReplicaView(name)  # what the balancer's policy looks at
        self.latencies = latencies  # (arrival, latency) of each request finished, fleet-wide
        self.virtual = 0.0
        self.updated = 0.0
        self.serving: list[tuple[float, int, float]] = []  # (virtual finish, seq, arrival)
        self.waiting: deque[tuple[float, float]] = deque()  # (work, arrival)
        self.seq = 0
        self.changed = env.event()
        self.process = env.process(self._serve())

    def speed(self) -> float:
        n = len(self.serving)
        return 1.0 / (1.0 + self.model.slowdown * (n - 1)) if n else 0.0

    def _advance(self) -> None:
        now = self.env.now
        self.virtual += (now - self.updated) * self.speed()
        self.updated = now

    def _start(self, work: float, arrival: float) -> None:
        self.seq += 1
        heapq.heappush(self.serving, (self.virtual + work, self.seq, arrival))

    def submit(self, work: float) -> None:
        self._advance()
        self.view.inflight += 1
        if len(self.serving) < self.model.max_batch:
            self._start(work, self.env.now)
        else:
            self.waiting.append((work, self.env.now))
        if not self.changed.triggered:
            self.changed.succeed()

    def _serve(self):  # type: ignore[no-untyped-def]  # a SimPy process
        while True:
            if not self.serving:
                yield self.changed
                self.changed = self.env.event()
                continue
            due = (self.serving[0][0] - self.virtual) / self.speed()
            yield self.env.timeout(max(due, 0.0)) | self.changed
            if self.changed.triggered:
                self.changed = self.env.event()
            self._advance()
            while self.serving and self.serving[0][0] <= self.virtual + 1e-9:
                _, _, arrival = heapq.heappop(self.serving)
                self.latencies.append((arrival, self.env.now - arrival))
                self.view.inflight -= 1
                if self.waiting:
                    work, queued_at = self.waiting.popleft()
                    self._start(work, queued_at)
