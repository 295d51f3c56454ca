"""The image's files in the order a start reads them, as eStargz and Nydus lay out theirs: the
files a replica opens while it starts are packed first, in that order, so a lazy start finds
them in a few consecutive blocks instead of spread over most of the image (each 4 MiB block it
touches is fetched whole).

    with OpenTrace(log_dir) as trace:          # env for the traced replica
        ... start a replica with trace.env, serve a completion ...
    order = trace.read_order()                # files, first opened first
    sort_file = write_sort_file(order, mapped, placed, path)   # mksquashfs -sort

A Python audit hook (`open_hook/sitecustomize.py`, on the traced replica's PYTHONPATH) logs
every file each of its processes opens, imports included. Native libraries are mapped by the
dynamic loader, not opened by Python: each takes the place of the first file opened in its
directory or the nearest one above (a package's extension loads as its package is imported).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

HOOK_DIR = Path(__file__).resolve().parent / "open_hook"
ENV_VAR = "IMAGE_TRACE_OPENS"
# mksquashfs's priorities run from 32767 (packed first) down; 0 is every file not listed.
TOP_PRIORITY = 32767


class OpenTrace:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)

    @property
    def env(self) -> dict[str, str]:
        """What the traced replica's environment needs."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return {"PYTHONPATH": str(HOOK_DIR), ENV_VAR: str(self.log_dir)}

    def read_order(self) -> list[Path]:
        """Every file any traced process opened, each once, by when it was first opened."""
        first: dict[Path, float] = {}
        for log in sorted(self.log_dir.glob("*.log")):
            for line in log.read_text(errors="replace").splitlines():
                stamp, _, name = line.partition(" ")
                path = Path(os.path.realpath(name))
                when = float(stamp)
                if when < first.get(path, float("inf")):
                    first[path] = when
        return sorted(first, key=first.__getitem__)


def priorities(order: Iterable[Path], mapped: Iterable[Path],
               placed: Mapping[Path, Path]) -> dict[Path, int]:
    """Each placed file the trace saw (by its path in the image) and its mksquashfs priority:
    the first opened highest; a mapped native library with the first file opened near it."""
    rank: dict[Path, int] = {}
    near: dict[Path, int] = {}  # directory → rank of the first file opened in or below it
    for index, source in enumerate(path for path in order if path in placed):
        rank[source] = index
        for directory in source.parents:
            near.setdefault(directory, index)
    for library in mapped:
        real = Path(os.path.realpath(library))
        if real in placed and real not in rank:
            rank[real] = next((near[d] for d in real.parents if d in near), 0)
    # mksquashfs reads a line as a name and a priority: a name with a space cannot be listed.
    return {placed[source]: max(TOP_PRIORITY - index, 1) for source, index in rank.items()
            if not any(char.isspace() for char in str(placed[source]))}


def write_sort_file(order: Iterable[Path], mapped: Iterable[Path],
                    placed: Mapping[Path, Path], path: Path) -> int:
    """mksquashfs's sort file (paths relative to the packed tree); how many files it lists."""
    ranked = priorities(order, mapped, placed)
    path.write_text("".join(f"{name} {priority}\n" for name, priority in
                            sorted(ranked.items(), key=lambda item: -item[1])))
    return len(ranked)
