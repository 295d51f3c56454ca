"""`harness coldstart`: how long one replica takes from "scheduled" to its first answer, when it
runs from its stack's image, eager (diy) or lazy (optimized), phase by phase.

    results/<run-id>/
      run.json, specs/<stack>.yaml
      starts.jsonl                one StartRecord per start, appended as each one ends
      <stack>/trial-<k>/<cache>/  replica and balancer logs of that start
      registry/                   the registry's config and its log of every response served
      coldstart.json              the typed summary (ColdStartResult), rewritten after each trial

Per trial and stack (the order alternates between trials), on one registry with the asked
bandwidth and latency: a cold start (the node holds nothing of the image: no unpacked tree, no
mount, no cached block), then a warm one on the same node (the tree, or the mount and the
blocks it fetched, kept from the cold start). A start's phases:

- image: the manifest fetched, then the image downloaded, checked and unpacked (eager) or
  mounted (lazy); usable from then on;
- engine: the replica's processes started → `/health` answers 200; the same work for both
  modes, except that lazy reads each block it touches for the first time from the registry;
- first response: `/health` → the first successful completion, sent straight to the replica;
- bytes fetched: what the registry sent for the image before that first completion, from its
  own log of responses.

The images are built (or found up to date) and pushed before any start is timed.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field

from harness.errors import EndpointError, UsageError
from harness.experiments.trial import default_out_dir, fresh_out_dir
from harness.measure.coldstart import summarize_starts
from harness.measure.environment import capture_environment
from harness.report.coldstart_results import (
    COLDSTART_FILE,
    ColdStartResult,
    RegistrySettings,
    StartRecord,
)
from harness.report.results import RunInfo
from stacks.images.build import build_image, built_dir
from stacks.images.manifest import ImageManifest
from stacks.images.node import Mode, NodeImages, forgotten_cleared
from stacks.images.prefetch import fetch_plan, plan_name
from stacks.images.registry import (
    DEFAULT_BANDWIDTH_MBPS,
    DEFAULT_LATENCY_MS,
    Registry,
    manifest_name,
    push,
)
from stacks.images.serve import REGISTRY_DIR, StackImages
from stacks.launcher import Stack
from stacks.spec import ImageSpec, StackSpec, load_local_stack_spec

FIRST_RESPONSE_TIMEOUT_S = 120.0
# `NAME:MODE`: the same stack started each of these ways.
START_MODES = {"eager": ImageSpec(mode="eager"), "lazy": ImageSpec(mode="lazy"),
               "lazy-noprefetch": ImageSpec(mode="lazy", prefetch=False),
               "lazy-fuse": ImageSpec(mode="lazy", file_system="fuse")}
STARTS_FILE = "starts.jsonl"


class ColdStartConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stacks: list[str] = Field(default=["diy", "optimized"], min_length=1)
    trials: int = Field(default=3, ge=1, le=50)
    bandwidth_mbps: float = Field(default=DEFAULT_BANDWIDTH_MBPS, gt=0)
    latency_ms: float = Field(default=DEFAULT_LATENCY_MS, ge=0, le=10_000)
    out: Path | None = None
    experiment: str | None = "coldstart"


class _Timer:
    """The launcher's start observer: when the replica was spawned and became healthy, and
    the first completion sent to it right then."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.spawned = self.healthy = self.answered = 0.0
        self.answered_at = 0.0  # wall clock, to match the registry's log

    def on_starting(self, name: str, log_path: Path) -> None:
        if name == "replica-0":
            self.spawned = time.monotonic()

    def on_ready(self, name: str, elapsed_s: float) -> None:
        if name != "replica-0":
            return
        self.healthy = time.monotonic()
        replica = self.stack.replicas[0]
        response = httpx.post(f"{replica.url}/v1/completions", timeout=FIRST_RESPONSE_TIMEOUT_S,
                              json={"model": self.stack.served_model, "max_tokens": 8,
                                    "prompt": "Fix the grammar: I could of went there."})
        if response.status_code != 200:
            raise EndpointError(f"{self.stack.spec.name}: the first completion failed with "
                             f"{response.status_code}; see {replica.log_path}")
        self.answered = time.monotonic()
        self.answered_at = time.time()


def one_replica(stack: str) -> tuple[str, StackSpec]:
    """`NAME` (the stack's own image mode) or `NAME:MODE` (the same stack started eager or
    lazy, to see the image's part apart from the stacks' other differences): its label and
    the spec of one replica of it."""
    name, _, mode = stack.partition(":")
    spec = load_local_stack_spec(name)
    if mode and mode not in START_MODES:
        raise UsageError(f"--stacks: {stack}: the mode after ':' must be one of "
                         f"{', '.join(START_MODES)}")
    image = {"image": START_MODES[mode]} if mode else {}
    spec = spec.model_copy(update={"replicas": 1, "restart_policy": "never", "autoscaling": None,
                                   **image})
    if spec.image.mode == "none":
        raise UsageError(f"--stacks: stack {spec.name} runs from this machine (image.mode: "
                         "none); give it image: {mode: eager} or {mode: lazy}, or name it "
                         f"{spec.name}:eager or {spec.name}:lazy")
    return stack if mode else spec.name, spec


def time_start(spec: StackSpec, label: str, registry: Registry, node: NodeImages,
               log_dir: Path, trial: int, cache: str) -> StartRecord:
    """One start of one replica from the stack's image on `node`, phase by phase."""
    images = StackImages(spec, registry, node)
    stack = Stack(spec, log_dir, images=images)
    timer = _Timer(stack)
    since = time.time()
    try:
        stack.start(timer)
        assert stack.image is not None
        image = stack.image
        fetched = registry.bytes_served(
            image.manifest.blob_path, f"/{manifest_name(spec.name)}", f"/{plan_name(spec.name)}",
            since=since, until=timer.answered_at)
    finally:
        stack.stop()
    engine_s = timer.healthy - timer.spawned
    first_s = timer.answered - timer.healthy
    return StartRecord(
        stack=label, mode=spec.image.mode, trial=trial, cache=cache,
        image_s=round(image.usable_s, 4), engine_s=round(engine_s, 4),
        first_response_s=round(first_s, 4),
        total_s=round(image.usable_s + engine_s + first_s, 4), bytes_fetched=fetched,
        image_bytes=image.manifest.size, fetched_fraction=fetched / image.manifest.size,
        prefetch_blocks=image.prefetch_blocks, file_system=image.file_system,
        download_s=round(image.download_s, 4), unpack_s=round(image.unpack_s, 4))


def record_plan(spec: StackSpec, label: str, manifest: ImageManifest, registry: Registry,
                log_dir: Path, say: Callable[[str], None]) -> None:
    """A lazy stack whose image (`manifest`, built and pushed) has no prefetch plan yet starts
    once, untimed, to record one: every timed lazy start then prefetches, in every trial
    alike."""
    if spec.image.mode != "lazy" or not spec.image.prefetch:
        return
    if fetch_plan(registry.url, manifest) is not None:
        return
    say(f"{label}: one untimed lazy start records the blocks a start reads (once per image)")
    node = NodeImages(registry.url)  # a new node holds nothing: the start is cold
    try:
        with Stack(spec, log_dir, images=StackImages(spec, registry, node, say)):
            pass
    finally:
        node.close()


def run_coldstart(config: ColdStartConfig, say: Callable[[str], None]) -> Path:
    """Every start's phases to the results folder; the summary's path."""
    started = [one_replica(name) for name in config.stacks]
    if len({label for label, _ in started}) != len(started):
        raise UsageError(f"--stacks: each stack once, got {', '.join(config.stacks)}")
    out = fresh_out_dir(config.out or default_out_dir("coldstart"))
    run_info = write_inputs(config, started, out)
    images = {}
    manifests = {}
    for _, spec in started:
        manifest = manifests[spec.name] = build_image(spec, say)
        push(built_dir(spec.name) / "manifest.json", REGISTRY_DIR)
        images[spec.name] = {"digest": manifest.digest, "size": manifest.size,
                             "unpacked_bytes": manifest.contents.unpacked_bytes,
                             "left_out": manifest.contents.pruned}
    starts: list[StartRecord] = []
    settings = RegistrySettings(bandwidth_mbps=config.bandwidth_mbps,
                                latency_ms=config.latency_ms)
    with Registry(REGISTRY_DIR, config.bandwidth_mbps, config.latency_ms,
                  run_dir=out / "registry") as registry, forgotten_cleared():
        for label, spec in started:
            record_plan(spec, label, manifests[spec.name], registry, out / label / "recording",
                        say)
        for trial in range(1, config.trials + 1):
            for label, spec in started if trial % 2 else list(reversed(started)):
                node = NodeImages(registry.url)
                mode: Mode = "eager" if spec.image.mode == "eager" else "lazy"
                node.forget(spec.name, mode)  # cold: nothing of it on this node
                try:
                    for cache in ("cold", "warm"):
                        say(f"{label}: trial {trial}, {cache} start ({spec.image.mode})")
                        record = time_start(spec, label, registry, node,
                                            out / label / f"trial-{trial}" / cache, trial,
                                            cache)
                        with (out / STARTS_FILE).open("a") as handle:
                            handle.write(record.model_dump_json() + "\n")
                        starts.append(record)
                        pulled = (f" (download {record.download_s:.1f} s, unpack "
                                  f"{record.unpack_s:.1f} s)" if record.unpack_s else "")
                        say(f"{label}: {cache}: image {record.image_s:.2f} s{pulled}, engine "
                            f"{record.engine_s:.1f} s, first response "
                            f"{record.first_response_s:.2f} s, fetched "
                            f"{record.fetched_fraction:.1%} of the image")
                finally:
                    node.close()
            summary(run_info, config, settings, images, starts).write(out / COLDSTART_FILE)
    return out / COLDSTART_FILE


def summary(run_info: RunInfo, config: ColdStartConfig, settings: RegistrySettings,
            images: dict, starts: list[StartRecord]) -> ColdStartResult:
    summaries, ratios, notes = summarize_starts(starts)
    return ColdStartResult(run_id=run_info.run_id or "", stacks=config.stacks,
                           trials=config.trials, registry=settings, images=images,
                           starts=starts, summaries=summaries, ratios=ratios, notes=notes)


def write_inputs(config: ColdStartConfig, started: list[tuple[str, StackSpec]],
                 out: Path) -> RunInfo:
    (out / "specs").mkdir()
    for label, spec in started:
        (out / "specs" / f"{label}.yaml").write_text(yaml.safe_dump(spec.model_dump()))
    info = RunInfo.model_validate({
        **json.loads(config.model_dump_json()), "kind": "coldstart", "out": str(out),
        "experiment": config.experiment, "run_id": uuid.uuid4().hex,
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "environment": capture_environment()})
    info.write(out / "run.json")
    return info
