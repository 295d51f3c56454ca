"""Prefetch, as Nydus and SOCI do it: the blocks a lazy start read, in the order it first read
them, recorded once per image and kept beside its manifest in the registry. The next lazy start
reads them in that order in the background from the moment it mounts, so the blocks arrive
while the engine computes, instead of each one after the engine asked for it.

    plan = fetch_plan(registry_url, manifest)            # None: no start recorded yet
    mount = LazyMount(registry_url, manifest, node_dir, prefetch=plan)
    ... the replica starts ...
    recorded = plan_from(manifest, mount.fetched_log)    # a start without a plan records one
    publish(recorded, registry_root)

The prefetcher reads through the mounted device, the same single NBD connection (so the same
single HTTP connection to the registry) the engine's own reads use: prefetching fetches sooner,
not over more bandwidth than an eager pull gets. A block read before the prefetcher reaches it
comes from the cache when it does.

It reads each block whole, not one page of it, although one page makes the cache filter fetch
the whole block: a block read whole stays in the node's page cache above the fetcher, where
the engine's reads find it without asking nbdkit. nbdkit 1.32 serializes every request through
the curl plugin and the cache filter's lock, a read of a cached block included: with one page
prefetched, each of the engine's reads waited behind the block in flight. Importing the engine
from a cold mount, 3 rounds alternating: 23.6–24.0 s prefetching a page of each block, 21.3–21.9
s without prefetch, 17.4–17.9 s prefetching whole blocks (findings.md).

The page cache kept is the device file's, and nbdfuse does not ask FUSE to keep it across
opens: a new open of the device drops it. Past the superblock's check, only the mount and the
prefetcher open the device.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stacks.images.manifest import ImageManifest

TIMEOUT_S = 30.0
STOP_WAIT_S = 5.0  # a block in flight arrives in well under this at any sane bandwidth
# One read the cache filter passed on to the registry, as nbdkit's log filter writes it.
FETCH_LINE = re.compile(r" Read id=\d+ offset=0x([0-9a-f]+) count=0x([0-9a-f]+)")


class PrefetchPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="the stack whose image it is")
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$", description="the image it was "
                        "recorded on: a plan is used for that image only")
    block_size: int = Field(ge=1)
    blocks: list[int] = Field(description="block indexes, in the order a start first read them")
    recorded_at: str = Field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def plan_name(stack: str) -> str:
    """Where the registry keeps the stack's plan, beside its manifest."""
    return f"manifests/{stack}.prefetch.json"


def blocks_fetched(fetch_log: Path, block_size: int) -> list[int]:
    """The blocks the fetcher took from the registry, in order, each once."""
    seen: dict[int, None] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in fetch_log.read_text().splitlines():
            if (match := FETCH_LINE.search(line)) is None:
                continue
            offset, count = int(match[1], 16), int(match[2], 16)
            for block in range(offset // block_size, (offset + count - 1) // block_size + 1):
                seen.setdefault(block, None)
    return list(seen)


def plan_from(manifest: ImageManifest, fetch_log: Path) -> PrefetchPlan | None:
    """The plan a start without one recorded; None when it fetched nothing."""
    blocks = blocks_fetched(fetch_log, manifest.block_size)
    if not blocks:
        return None
    return PrefetchPlan(name=manifest.name, digest=manifest.digest,
                        block_size=manifest.block_size, blocks=blocks)


def publish(plan: PrefetchPlan, registry_root: Path) -> Path:
    path = registry_root / plan_name(plan.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(plan.model_dump_json() + "\n")
    partial.replace(path)
    return path


def fetch_plan(registry_url: str, manifest: ImageManifest) -> PrefetchPlan | None:
    """The image's plan from the registry; None when there is none for this very image (a
    plan is a hint: a missing, stale or unreadable one means a start without prefetch)."""
    try:
        response = httpx.get(f"{registry_url}/{plan_name(manifest.name)}", timeout=TIMEOUT_S)
        if response.status_code != 200:
            return None
        plan = PrefetchPlan.model_validate_json(response.content)
    except (httpx.HTTPError, ValidationError):
        return None
    fits = plan.digest == manifest.digest and plan.block_size == manifest.block_size
    return plan if fits else None


class Prefetcher:
    """Reads the plan's blocks from `device`, in order, on a background thread."""

    def __init__(self, device: Path, plan: PrefetchPlan) -> None:
        self.device = device
        self.plan = plan
        self.blocks_read = 0
        self.finished_s: float | None = None  # seconds from start to the last block read
        self.error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"prefetch-{plan.name}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop after the block in flight; the device can be unmounted then."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(STOP_WAIT_S)

    def _run(self) -> None:
        started = time.monotonic()
        size = self.plan.block_size
        try:
            descriptor = os.open(self.device, os.O_RDONLY)
        except OSError as exc:
            self.error = f"could not open {self.device}: {exc.strerror}"
            return
        try:
            # No readahead: it would fetch the next block too, out of the plan's order.
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_RANDOM)
            buffer = bytearray(size)  # only the page cache keeps what is read
            for block in self.plan.blocks:
                if self._stop.is_set():
                    return
                os.preadv(descriptor, [buffer], block * size)
                self.blocks_read += 1
            self.finished_s = time.monotonic() - started
        except OSError as exc:  # the registry gone: the engine's own read reports it
            self.error = f"block {self.plan.blocks[self.blocks_read]}: {exc.strerror}"
        finally:
            os.close(descriptor)
