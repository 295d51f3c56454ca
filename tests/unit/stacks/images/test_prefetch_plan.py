"""The prefetch plan without processes: the blocks read from the fetcher's log, in order, and
which plan a start may use."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.experiments.coldstart import one_replica
from stacks.images.manifest import BLOCK_SIZE, ImageContents, ImageManifest
from stacks.images.prefetch import PrefetchPlan, blocks_fetched, plan_from

MiB = 1024 * 1024
# What nbdkit's log filter writes behind the cache filter (nbdkit 1.32), trimmed.
FETCH_LOG = """\
2026-12-03 15:07:16.479154 Ready thread_model=2
2026-12-03 15:07:16.498027 connection=1 Connect export="" tls=0 size=0x1801000
2026-12-03 15:07:16.504285 connection=1 Read id=1 offset=0x0 count=0x400000 ...
2026-12-03 15:07:16.514824 connection=1 ...Read id=1 return=0
2026-12-03 15:07:16.547123 connection=1 Read id=3 offset=0x1800000 count=0x1000 ...
2026-12-03 15:07:16.592494 connection=1 Read id=4 offset=0x800000 count=0x800000 ...
2026-12-03 15:07:16.604285 connection=1 Read id=5 offset=0x0 count=0x400000 ...
2026-12-03 15:07:16.672634 connection=1 Read id=6 offset=0x1400000 count=0x400000 ...
"""


def manifest(digest: str = "sha256:" + "a" * 64) -> ImageManifest:
    return ImageManifest(name="s", digest=digest, size=25 * MiB, block_digests=[],
                         source_key="k", contents=ImageContents(
                             distributions=[], pruned=[], files=0, unpacked_bytes=0, model="m"))


def test_the_blocks_fetched_are_read_in_order_each_once_spans_split_into_blocks(
        tmp_path: Path) -> None:
    log = tmp_path / "fetched.log"
    log.write_text(FETCH_LOG)
    # block 6 (the image's tail), then a read of 8 MiB spanning blocks 2 and 3; block 0 again
    # (evicted and fetched again) is not a second entry.
    assert blocks_fetched(log, BLOCK_SIZE) == [0, 6, 2, 3, 5]


def test_a_start_that_fetched_nothing_records_no_plan(tmp_path: Path) -> None:
    assert plan_from(manifest(), tmp_path / "missing.log") is None
    log = tmp_path / "fetched.log"
    log.write_text(FETCH_LOG)
    plan = plan_from(manifest(), log)
    assert plan is not None
    assert (plan.name, plan.digest, plan.blocks[:2]) == ("s", manifest().digest, [0, 6])


def test_a_plan_names_the_image_it_was_recorded_on() -> None:
    with pytest.raises(ValueError, match="digest"):
        PrefetchPlan(name="s", digest="latest", block_size=BLOCK_SIZE, blocks=[0])


@pytest.mark.parametrize(("mode", "image_mode", "prefetch"), [
    ("eager", "eager", True), ("lazy", "lazy", True), ("lazy-noprefetch", "lazy", False)])
def test_coldstart_starts_a_stack_each_way_it_names(mode: str, image_mode: str,
                                                    prefetch: bool) -> None:
    label, spec = one_replica(f"diy:{mode}")
    assert label == f"diy:{mode}"
    assert (spec.image.mode, spec.image.prefetch, spec.replicas) == (image_mode, prefetch, 1)


def test_coldstart_names_the_start_modes_it_knows() -> None:
    with pytest.raises(UsageError, match="eager, lazy, lazy-noprefetch"):
        one_replica("diy:fast")
