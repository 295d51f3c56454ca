"""Plays a scenario's faults against a launched stack's replicas, beside the replay, on the
replay's own clock.

The load generator writes the wall-clock instant of offset 0 (the anchor) in its records
file's header a few seconds before its first send; the player reads it there, so a fault
planned at offset t lands at anchor + t whatever the load generator's start-up took. Each
occurrence is appended to `faults.jsonl` as it starts, with the wall-clock time it was acted on:

    {"fault": 0, "kind": "kill_replica", "replica": "replica-0", "planned_s": 25.0,
     "end_s": 25.0, "offset_s": 25.0012, "at_unix_s": 1764600025.0012}

A replica left stopped is always continued on the way out, whatever ended the replay.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from harness.errors import UsageError
from harness.workload.scenario import FaultPlan, Occurrence, Signal

ANCHOR_POLL_S = 0.02


class Signalled(Protocol):
    """A replica as the player sees it."""

    name: str

    def signal(self, sig: signal.Signals) -> None: ...


def read_anchor(records: Path) -> float | None:
    """The anchor from a records file's header, once it is written."""
    try:
        with records.open() as handle:
            line = handle.readline()
    except OSError:
        return None
    if not line.endswith("\n"):
        return None
    return float(json.loads(line)["anchor_unix_s"])


class FaultPlayer:
    def __init__(self, plan: FaultPlan, replicas: Sequence[Signalled], records: Path,
                 log: Path, stack: str) -> None:
        if plan.replicas_needed() > len(replicas):
            raise UsageError(f"the scenario needs replica {plan.replicas_needed() - 1}; stack "
                             f"{stack} has {len(replicas)} (indices from 0)")
        self.plan = plan
        self.replicas = list(replicas)
        self.records = records
        self.log = log
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._stopped: set[int] = set()  # replicas left SIGSTOPped
        self._thread = threading.Thread(target=self._run, name="faults", daemon=True)

    def __enter__(self) -> FaultPlayer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for index in sorted(self._stopped):  # never leave a replica frozen
            self.replicas[index].signal(signal.SIGCONT)
        self._stopped.clear()

    def _run(self) -> None:
        try:
            anchor = self._wait_anchor()
            if anchor is None:
                return
            timeline: list[tuple[float, Signal | Occurrence]] = sorted(
                [(s.offset_s, s) for s in self.plan.signals]
                + [(o.start_s, o) for o in self.plan.occurrences],
                key=lambda item: (item[0], isinstance(item[1], Signal)))
            for offset, item in timeline:
                if self._stop.wait(max(0.0, anchor + offset - time.time())):
                    return
                if isinstance(item, Signal):
                    self._send(item)
                else:
                    self._note(item, anchor)
        except BaseException as exc:  # noqa: BLE001 - kept for the trial to report
            self.error = exc

    def _wait_anchor(self) -> float | None:
        while (anchor := read_anchor(self.records)) is None:
            if self._stop.wait(ANCHOR_POLL_S):
                return None
        return anchor

    def _send(self, item: Signal) -> None:
        self.replicas[item.replica].signal(signal.Signals[item.signal])
        if item.signal == "SIGSTOP":
            self._stopped.add(item.replica)
        elif item.signal == "SIGCONT":
            self._stopped.discard(item.replica)

    def _note(self, occurrence: Occurrence, anchor: float) -> None:
        now = time.time()
        entry: dict[str, Any] = {
            "fault": occurrence.fault, "kind": occurrence.kind,
            "replica": None if occurrence.replica is None
            else self.replicas[occurrence.replica].name,
            "planned_s": round(occurrence.start_s, 4), "end_s": round(occurrence.end_s, 4),
            "offset_s": round(now - anchor, 4), "at_unix_s": round(now, 4)}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")
