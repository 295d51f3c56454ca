"""Per-request records: the load generator's output, one JSON line per finished request.

The first line is a header; every other line is one request as a JSON array in `COLUMNS` order:

    {"records_version": 1, "anchor_unix_s": 1764000000.0, "schedule_sha256": "..."}
    [0, 0.0312, 0.0313, 0.2201, 0.2205, 200, true, null, 48, 50, "replica-1"]

Times are seconds from the run's anchor (the wall-clock instant the schedule's offset 0 maps
to). `first_byte_s` is the first generated token of a stream, or the response headers of a
whole response. `error` is a class — `timeout`, `connection`, `http_<status>`, `protocol` — or
null. Lines are appended as requests finish and flushed every `FLUSH_INTERVAL_S`, so a crash
loses at most the last flush interval; a reader skips a torn last line.

This module never imports locust, so the harness reads records with the same column list.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

RECORDS_VERSION = 1
FLUSH_INTERVAL_S = 0.5
COLUMNS = ("index", "scheduled_s", "sent_s", "first_byte_s", "done_s", "status", "ok", "error",
           "prompt_tokens", "output_tokens", "replica")


class RecordFile:
    """Appends records to a JSON-lines file; `flush()` puts the buffered lines on disk."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.count = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a", encoding="utf-8")
        if self._file.tell() == 0:
            self._file.write(json.dumps({"records_version": RECORDS_VERSION, **header}) + "\n")
            self._file.flush()
        self._pending: list[str] = []

    def add(self, row: list[Any]) -> None:
        # Serialized as each request finishes, so a flush is one write, not a burst of work
        # that would delay the sends due at that moment.
        self._pending.append(json.dumps(row))
        self.count += 1

    def add_many(self, rows: list[list[Any]]) -> None:
        for row in rows:
            self.add(row)

    def flush(self) -> None:
        if self._pending:
            self._file.write("\n".join(self._pending) + "\n")
            self._pending.clear()
            self._file.flush()

    def close(self) -> None:
        self.flush()
        self._file.close()


def read_record_header(path: Path) -> dict[str, Any]:
    """The header of a records file alone (its anchor, its schedule's hash)."""
    with path.open(encoding="utf-8") as lines:
        return dict(json.loads(next(lines)))


def read_record_lines(path: Path) -> tuple[dict[str, Any], list[list[Any]]]:
    """Header and rows of a records file; a torn last line (a crash mid-write) is skipped."""
    with path.open(encoding="utf-8") as lines:
        header = json.loads(next(lines))
        rows = []
        for line in lines:
            if not line.endswith("\n"):
                break
            rows.append(json.loads(line))
    return header, rows
