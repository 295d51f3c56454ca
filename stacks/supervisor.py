"""Keeps a running stack's replicas up, as a Deployment's restart policy `Always` does: a
replica that exits, whatever the cause, is started again on the same port, so the balancer
finds it at the address it already knows (with health checks on, it is back in rotation once
its `/health` answers; without them, requests sent there fail until it is up).

Every exit and every return to health is an event with its wall-clock time, kept in
`Supervisor.events` and appended to `<log_dir>/events.jsonl` as it happens
(`stacks.event_log`):

    {"at_unix_s": 1764600000.12, "event": "replica_exited", "replica": "replica-1", "code": -9,
     "restarts": 1}
    {"at_unix_s": 1764600041.70, "event": "replica_ready", "replica": "replica-1",
     "down_s": 41.58}

The supervisor is a thread of the process that launched the stack. It restarts nothing while
the stack is being stopped, and it outlives the stop of the replicas it started: they die with
the thread that started them (`stacks.process`), so it ends only once they are stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from stacks.event_log import EventLog

POLL_S = 0.5


class Supervised(Protocol):
    """A replica as the supervisor sees it."""

    name: str

    def exit_code(self) -> int | None: ...

    def restart(self) -> None: ...

    def healthy(self) -> bool: ...


class Supervisor:
    def __init__(self, replicas: Callable[[], Sequence[Supervised]], events_path: Path,
                 poll_s: float = POLL_S) -> None:
        self.replicas = replicas
        self.log = EventLog(events_path)
        self.poll_s = poll_s
        self.restarts: dict[str, int] = {}
        self._down: dict[str, float] = {}  # replica -> when its exit was seen (monotonic)
        self._pause = threading.Event()
        self._paused = threading.Event()
        self._end = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.log.events

    def start(self) -> None:
        self._thread.start()

    def pause(self) -> None:
        """Restart nothing from now on (the stack is being stopped); returns once no restart
        is under way."""
        self._pause.set()
        if self._thread.is_alive():
            self._paused.wait(timeout=30)

    def close(self) -> None:
        self._pause.set()
        self._end.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._pause.is_set():
            for replica in self.replicas():
                self._check(replica)
            self._pause.wait(self.poll_s)
        self._paused.set()
        self._end.wait()

    def _check(self, replica: Supervised) -> None:
        code = replica.exit_code()
        if code is not None and not self._pause.is_set():
            count = self.restarts.get(replica.name, 0) + 1
            self.restarts[replica.name] = count
            self._down[replica.name] = time.monotonic()
            self.log.record("replica_exited", replica.name, code=code, restarts=count)
            replica.restart()
        elif replica.name in self._down and replica.healthy():
            down_s = time.monotonic() - self._down.pop(replica.name)
            self.log.record("replica_ready", replica.name, down_s=round(down_s, 3))


def describe(event: dict[str, object]) -> str:
    """A supervisor event in words."""
    if event["event"] == "replica_exited":
        return (f"{event['replica']} exited with code {event['code']}; restarting it "
                f"(restart {event['restarts']})")
    return f"{event['replica']} is healthy again, {event['down_s']} s after it exited"
