"""A worker's clock against its master's, so that a skew between hosts shows up as send lag.

Worker and master share one anchor, a wall-clock instant. A worker whose clock is behind sends
late by that much, yet by its own clock it is on time: the skew would hide. So before its first
send a worker measures how far its clock is from the master's, as NTP does, over Locust's
message channel: it sends its time t1, the master answers with its own tm, the answer arrives
at t2; the offset is tm - (t1 + t2) / 2, from the exchange with the shortest round trip. The
worker still sends by its own clock, as a host would, and its records are put on the master's
clock by adding the offset: a late worker's lateness is then in `sent_s - scheduled_s`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from locust.runners import MasterRunner, WorkerRunner

PROBE, REPLY = "harness_clock_probe", "harness_clock_reply"
PROBES = 8
PROBE_GAP_S = 0.005
WAIT_S = 2.0
logger = logging.getLogger("replay")


def answer_probes(runner: MasterRunner) -> None:
    """On the master: answer each worker's probe with the master's time."""

    def answer(msg: Any, **_: Any) -> None:
        runner.send_message(REPLY, {"sent": msg.data["sent"], "master": time.time()},
                            client_id=msg.node_id)

    runner.register_message(PROBE, answer)


class MasterClock:
    """On a worker: the offset of the master's clock from this one, in seconds."""

    def __init__(self, runner: WorkerRunner) -> None:
        self.runner = runner
        self.samples: list[tuple[float, float]] = []  # (round trip, offset)
        runner.register_message(REPLY, self._answered)

    def _answered(self, msg: Any, **_: Any) -> None:
        now = time.time()
        sent = float(msg.data["sent"])
        self.samples.append((now - sent, float(msg.data["master"]) - (sent + now) / 2))

    def measure(self) -> float:
        """Probe the master and wait for its answers (at most WAIT_S): master - worker."""
        for _ in range(PROBES):
            self.runner.send_message(PROBE, {"sent": time.time()})
            gevent.sleep(PROBE_GAP_S)
        deadline = time.monotonic() + WAIT_S
        while len(self.samples) < PROBES and time.monotonic() < deadline:
            gevent.sleep(PROBE_GAP_S)
        if not self.samples:
            logger.warning("the master answered no clock probe: records stay on this "
                           "worker's clock")
            return 0.0
        round_trip, offset = min(self.samples)
        logger.warning("clock offset to the master %+.4f s (round trip %.4f s)", offset,
                       round_trip)
        return offset
