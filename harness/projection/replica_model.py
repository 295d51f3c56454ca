"""One replica as the simulation sees it: API servers in front of a batching engine.

- **The front stage.** Each request first passes one of the replica's `front_servers` API
  server processes (vLLM's `api_server_count`), one request at a time each, for `front_s`
  seconds: parsing, tokenizing, handing over, detokenizing. In vLLM that work is spread over
  the request's life; here it is one serial stage, the part that queues once the API
  servers are busy. With a small model on a CPU that stage saturates before the engine does
  (the seed's reason for several API servers).
- **The engine** serves every request it holds at once, each a little slower the more it
  holds, as continuous batching does: a request alone takes its engine `work` (seconds), and
  with n ≥ 2 requests in service each progresses at 1 / (1 + jump + slowdown × (n - 1)) of
  that speed. `jump` is what sharing costs at all, apart from how many share: diy's replica
  measured in a closed loop takes 57 % longer as soon as two requests share it
  (docs/findings.md, "One replica's latency against the requests it holds"); one likely
  part of it, on a CPU without a bf16 matrix unit, is that a bf16 GEMM over two rows costs
  half again one row's, where fp32 costs the same. The engine completes at most
  1 / (slowdown × mean work) requests a second however many it holds. Beyond `max_batch`
  requests (vLLM's `max_num_seqs`) the rest wait their turn.
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
    work_s: np.ndarray  # engine time of a request alone: each request draws one at random
    slowdown: float  # the batching cost per extra request in service
    max_batch: int = 256
    jump: float = 0.0  # the cost of sharing the engine at all, once a second request is in
    front_s: float = 0.0  # an API server's time per request; 0: no front stage
    front_servers: int = 1

    def factor(self, n: int) -> float:
        """How many times its work alone a request takes with `n` requests in service."""
        return 1.0 + self.jump * (n >= 2) + self.slowdown * (n - 1)

    @property
    def mean_work_s(self) -> float:
        return float(np.mean(self.work_s))

    def saturation_qps(self) -> float:
        """The most it completes a second: the engine with a full batch held, or its API
        servers all busy, whichever is fewer."""
        n = self.max_batch
        engine = n / (self.mean_work_s * self.factor(n))
        return min(engine, self.front_servers / self.front_s) if self.front_s else engine


class SimReplica:
    """A replica in the simulation. The engine's processor sharing is kept in virtual time:
    every request in service has done the same work since it started, so each holds the
    virtual instant it finishes at, in a heap, and an arrival or a departure costs O(log n)."""

    def __init__(self, env: simpy.Environment, model: ReplicaModel, name: str,
                 latencies: list[tuple[float, float]]) -> None:
        self.env = env
        self.model = model
        self.view = ReplicaView(name)  # in flight from every balancer: what a lone one sees
        self.latencies = latencies  # (arrival, latency) of each request finished, fleet-wide
        self.front = simpy.Resource(env, capacity=model.front_servers)
        self.virtual = 0.0
        self.updated = 0.0
        # (virtual finish, seq, arrival, sender) and (work, arrival, sender): `sender` is the
        # sending balancer's own view of this replica, None where the fleet has one balancer
        self.serving: list[tuple[float, int, float, ReplicaView | None]] = []
        self.waiting: deque[tuple[float, float, ReplicaView | None]] = deque()
        self.seq = 0
        self.changed = env.event()
        self.process = env.process(self._serve())

    def speed(self) -> float:
        n = len(self.serving)
        return 1.0 / self.model.factor(n) if n else 0.0

    def _advance(self) -> None:
        now = self.env.now
        self.virtual += (now - self.updated) * self.speed()
        self.updated = now

    def _start(self, work: float, arrival: float, sender: ReplicaView | None) -> None:
        self.seq += 1
        heapq.heappush(self.serving, (self.virtual + work, self.seq, arrival, sender))

    def submit(self, work: float, sender: ReplicaView | None = None) -> None:
        """A request of `work`; `sender`, the sending balancer's view of this replica where
        there are several, counts it in flight there too until it finishes."""
        self.view.inflight += 1
        if sender is not None:
            sender.inflight += 1
        if self.model.front_s:
            self.env.process(self._through_front(work, self.env.now, sender))
        else:
            self._to_engine(work, self.env.now, sender)

    def _through_front(self, work: float, arrival: float,  # type: ignore[no-untyped-def]
                       sender: ReplicaView | None):
        with self.front.request() as turn:
            yield turn
            yield self.env.timeout(self.model.front_s)
        self._to_engine(work, arrival, sender)

    def _to_engine(self, work: float, arrival: float, sender: ReplicaView | None) -> None:
        self._advance()
        if len(self.serving) < self.model.max_batch:
            self._start(work, arrival, sender)
        else:
            self.waiting.append((work, arrival, sender))
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
                _, _, arrival, sender = heapq.heappop(self.serving)
                self.latencies.append((arrival, self.env.now - arrival))
                self.view.inflight -= 1
                if sender is not None:
                    sender.inflight -= 1
                if self.waiting:
                    self._start(*self.waiting.popleft())
