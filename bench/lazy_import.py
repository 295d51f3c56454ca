"""Importing the engine from a cold lazy mount, without prefetch and with it: the part of a
lazy start that waits for the registry. Each import gets its own fresh mount of the stack's
image (nothing of it on the node): the image's interpreter imports
`vllm.entrypoints.openai.api_server`, then the image is unmounted. The two modes alternate
within each round, on the same registry and link; the file system is read as a lazy start
reads it (`auto`: the kernel's squashfs where this process may mount, else squashfuse_ll).

    .venv/bin/python bench/lazy_import.py [--stack diy] [--rounds 3] \\
        [--bandwidth-mbps 400] [--latency-ms 10]

Needs the stack's image built and pushed (`harness image build STACK`) and its prefetch plan
in the registry (any `harness coldstart` with the stack lazy records one). Prints each
import's seconds, when the prefetcher finished, and the ratio of the means.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from stacks.errors import ImageError
from stacks.images.eager import fetch_manifest
from stacks.images.lazy import LazyMount
from stacks.images.manifest import ImageManifest
from stacks.images.node import runtime_env, runtime_python
from stacks.images.prefetch import PrefetchPlan, fetch_plan
from stacks.images.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
IMPORT = "import vllm.entrypoints.openai.api_server"


def cold_import(registry: Registry, manifest: ImageManifest, plan: PrefetchPlan | None,
                node: Path) -> tuple[float, str]:
    """Seconds to import the engine from a fresh mount; what the prefetcher did."""
    with LazyMount(registry.url, manifest, node, prefetch=plan) as mount:
        started = time.monotonic()
        done = subprocess.run([str(runtime_python(mount.root)), "-c", IMPORT],
                              env=runtime_env(mount.root, dict(os.environ)),
                              capture_output=True, text=True)
        took = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(f"importing the engine from image {manifest.name} failed: "
                             f"{done.stderr.strip().splitlines()[-1:] or ['no output']}")
        prefetcher = mount.prefetcher
        if prefetcher is None:
            return took, f" ({mount.file_system})"
        if prefetcher.error:
            return took, f" ({mount.file_system}); the prefetcher failed: {prefetcher.error}"
        if prefetcher.finished_s is None:
            return took, f" ({mount.file_system}); the plan not read yet when the import ended"
        return took, (f" ({mount.file_system}); plan of {len(prefetcher.plan.blocks)} blocks "
                      f"read in {prefetcher.finished_s:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="diy")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bandwidth-mbps", type=float, default=400.0)
    parser.add_argument("--latency-ms", type=float, default=10.0)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be 1 or more, got {args.rounds}")
    times: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="lazy-import-") as scratch, \
            Registry(ROOT / "images" / "registry", bandwidth_mbps=args.bandwidth_mbps,
                     latency_ms=args.latency_ms,
                     run_dir=Path(scratch) / "registry") as registry:
        manifest = fetch_manifest(registry.url, args.stack)
        plan = fetch_plan(registry.url, manifest)
        if plan is None:
            raise SystemExit(f"image {args.stack} has no prefetch plan in the registry: run "
                             f"`harness coldstart --stacks {args.stack}:lazy --trials 1` first")
        for round_ in range(1, args.rounds + 1):
            for prefetch in (False, True):
                took, what = cold_import(registry, manifest, plan if prefetch else None,
                                         Path(scratch) / "node")
                times[prefetch].append(took)
                print(f"round {round_}, {'prefetch' if prefetch else 'no prefetch'}: "
                      f"cold import {took:.1f} s{what}", flush=True)
    without, with_ = statistics.mean(times[False]), statistics.mean(times[True])
    print(f"{args.stack}, {args.bandwidth_mbps:g} Mbit/s, {args.latency_ms:g} ms: "
          f"no prefetch {without:.1f} s, prefetch {with_:.1f} s: prefetch "
          f"{without / with_:.2f}× sooner")


if __name__ == "__main__":
    try:
        main()
    except ImageError as exc:  # an image not built or pushed, a registry that did not start
        raise SystemExit(str(exc)) from None
