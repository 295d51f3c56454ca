"""The supervisor on stand-in replicas: each exit is restarted and recorded, each return to
health recorded with the time it took, and nothing is restarted once paused."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from stacks.supervisor import Supervisor


class StandIn:
    def __init__(self, name: str) -> None:
        self.name = name
        self.code: int | None = None
        self.up = True
        self.restarted = 0

    def exit_code(self) -> int | None:
        return self.code

    def restart(self) -> None:
        self.restarted += 1
        self.code = None
        self.up = False  # started, not healthy yet

    def healthy(self) -> bool:
        return self.up


def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_an_exit_is_restarted_and_its_return_recorded(tmp_path: Path) -> None:
    replica = StandIn("replica-1")
    supervisor = Supervisor(lambda: [replica], tmp_path / "events.jsonl", poll_s=0.01)
    supervisor.start()
    try:
        replica.code = -9
        wait_for(lambda: replica.restarted == 1)
        replica.up = True
        wait_for(lambda: len(supervisor.events) == 2)
    finally:
        supervisor.close()
    exited, ready = supervisor.events
    assert (exited["event"], exited["code"], exited["restarts"]) == ("replica_exited", -9, 1)
    assert ready["event"] == "replica_ready"
    assert ready["down_s"] >= 0
    written = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert written == supervisor.events


def test_nothing_is_restarted_once_paused(tmp_path: Path) -> None:
    replica = StandIn("replica-0")
    supervisor = Supervisor(lambda: [replica], tmp_path / "events.jsonl", poll_s=0.01)
    supervisor.start()
    supervisor.pause()
    replica.code = 0  # stopped by the launcher
    time.sleep(0.1)
    supervisor.close()
    assert replica.restarted == 0
    assert supervisor.events == []
