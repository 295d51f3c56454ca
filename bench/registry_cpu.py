"""What the image registry costs in CPU: a stack's built image served through the registry and
its link (`stacks.images.registry`), whole as an eager pull takes it, then in 4 MiB ranges on
one connection as the lazy fetcher takes it; for each, the time, the link's rate, and the CPU
seconds nginx and the link spent, per GB served.

A real registry's CPU is not the node's; here it shares the node's cores, and what it spends
while a lazy start's engine imports is taken from that start (docs/images.md).

    .venv/bin/python bench/registry_cpu.py [--stack diy] [--bandwidth-mbps 400] \\
        [--latency-ms 10] [--ranges 60]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from stacks.images.build import built_dir
from stacks.images.manifest import BLOCK_SIZE, ImageManifest, blob_name
from stacks.images.registry import Registry, push


def cpu_s(process: subprocess.Popen[bytes] | None) -> float:
    """User and system seconds of a running process (nginx runs as one, without a master)."""
    assert process is not None, "the registry is not running"
    return float(sum(psutil.Process(process.pid).cpu_times()[:2]))


def measure(label: str, registry: Registry, fetch: Callable[[], int]) -> None:
    nginx_before, link_before = cpu_s(registry.process), cpu_s(registry.link)
    started = time.monotonic()
    served = fetch()
    took = time.monotonic() - started
    nginx_s = cpu_s(registry.process) - nginx_before
    link_s = cpu_s(registry.link) - link_before
    print(f"{label}: {served / 1e6:.0f} MB in {took:.1f} s ({served / took / 1e6:.1f} MB/s); "
          f"CPU nginx {nginx_s:.2f} s, link {link_s:.2f} s "
          f"({(nginx_s + link_s) / (served / 1e9):.2f} s a GB, "
          f"{(nginx_s + link_s) / took:.2f} of a core)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="diy", help="whose built image to serve")
    parser.add_argument("--bandwidth-mbps", type=float, default=400.0)
    parser.add_argument("--latency-ms", type=float, default=10.0)
    parser.add_argument("--ranges", type=int, default=60, help="4 MiB ranges, one at a time")
    args = parser.parse_args()
    if args.ranges < 1 or args.bandwidth_mbps <= 0 or args.latency_ms < 0:
        parser.error("--ranges must be 1 or more, --bandwidth-mbps above 0, --latency-ms 0 "
                     "or more")
    manifest_path = built_dir(args.stack) / "manifest.json"
    if not manifest_path.is_file():
        parser.error(f"no built image for {args.stack}: run `harness image build {args.stack}`")
    blocks = min(args.ranges, len(ImageManifest.read(manifest_path).block_digests))
    with tempfile.TemporaryDirectory() as scratch, Registry(
            Path(scratch) / "registry", args.bandwidth_mbps, args.latency_ms,
            Path(scratch) / "run") as registry:
        manifest = push(manifest_path, registry.root)
        url = f"{registry.url}/{blob_name(manifest.digest)}"
        with httpx.Client(timeout=600) as client:

            def whole() -> int:
                with client.stream("GET", url) as response:
                    response.raise_for_status()
                    return sum(len(chunk) for chunk in response.iter_raw(1 << 20))

            def ranges() -> int:
                served = 0
                for k in range(blocks):
                    response = client.get(url, headers={
                        "Range": f"bytes={k * BLOCK_SIZE}-{(k + 1) * BLOCK_SIZE - 1}"})
                    response.raise_for_status()
                    served += len(response.content)
                return served

            measure("whole blob", registry, whole)
            measure(f"{blocks} ranges of 4 MiB", registry, ranges)


if __name__ == "__main__":
    main()
