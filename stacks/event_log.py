"""Events of a running stack, one JSON line each with its wall-clock time, appended as they
happen (a replica exited or became ready; a replica ejected, back in rotation, added, drained or
removed by the balancer). Wall-clock time is what joins them to the load generator's records,
whose header holds the wall-clock instant of their time zero.

    {"at_unix_s": 1764600000.12, "event": "replica_exited", "replica": "replica-1", "code": -9}
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


class EventLog:
    def __init__(self, path: Path | None) -> None:
        self.path = path  # None: kept in memory only
        self.events: list[dict[str, Any]] = []

    def record(self, event: str, replica: str | None, **details: Any) -> dict[str, Any]:
        entry = {"at_unix_s": round(time.time(), 3), "event": event, "replica": replica,
                 **details}
        self.events.append(entry)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as log:
                log.write(json.dumps(entry) + "\n")
        return entry


def read_events(path: Path) -> list[dict[str, Any]]:
    """The events logged so far (none when the file was never written); a torn last line,
    from a process killed mid-write, is skipped."""
    if not path.is_file():
        return []
    events = []
    for line in path.read_text().splitlines(keepends=True):
        if line.endswith("\n"):
            events.append(json.loads(line))
    return events
