"""Following a records file while the load generator appends it: the one reader of a growing
file. Each call returns the rows finished since the last, so progress bars and a capacity
probe's failure watch share one pass over the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class RecordFollower:
    """Reads whole new lines of a records file (a torn last line waits for its end); the first
    line is the header, every other one a request in `workloads.records.COLUMNS` order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0  # requests read so far
        self._offset = 0
        self._header_read = False

    def new_rows(self) -> list[list[Any]]:
        if not self.path.is_file():
            return []
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read()
        whole = chunk[:chunk.rfind(b"\n") + 1]
        self._offset += len(whole)
        lines = whole.splitlines()
        if lines and not self._header_read:
            self._header_read = True
            lines = lines[1:]
        rows = [json.loads(line) for line in lines]
        self.count += len(rows)
        return rows
