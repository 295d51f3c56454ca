"""The schedule file: every request a run will send, fixed before anything starts. This is the
contract between the harness, which writes it, and the load generator, which replays it; it is
defined here, once, free of Locust.

JSON lines; the first is a header, every other line one request:

    {"schedule_version": 1, "workload": ..., "api": ..., "stream": ..., "requests": N, ...}
    {"index": 0, "offset_s": 0.031, "max_tokens": 50, "prompt_tokens": 48, "prompt": "Fix ..."}
    ...

Its sha256 names it: every stack and trial of a run replays the same bytes, and the records
file says which hash it replayed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SCHEDULE_VERSION = 1


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    index: int
    offset_s: float  # send time, seconds after the run's anchor
    max_tokens: int
    prompt_tokens: int
    prompt: str


@dataclass(frozen=True, slots=True)
class Schedule:
    header: dict[str, Any]
    entries: list[ScheduleEntry]


def schedule_bytes(schedule: Schedule) -> bytes:
    lines = [json.dumps(schedule.header, sort_keys=True)]
    lines += [json.dumps(asdict(entry), ensure_ascii=False) for entry in schedule.entries]
    return ("\n".join(lines) + "\n").encode()


def write_schedule(schedule: Schedule, path: Path) -> str:
    """Write the schedule as JSON lines; returns its sha256."""
    data = schedule_bytes(schedule)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def read_schedule(path: Path) -> tuple[Schedule, str]:
    """The schedule in a file, and the sha256 of its bytes."""
    data = path.read_bytes()
    lines = data.decode("utf-8").splitlines()
    header = json.loads(lines[0])
    entries = [ScheduleEntry(**json.loads(line)) for line in lines[1:] if line.strip()]
    return Schedule(header, entries), hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
