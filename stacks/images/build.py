"""`harness image build STACK`: one file a replica runs from, named by its content digest.

    manifest = build_image(spec)      # images/built/<stack>/image.sqfs + manifest.json

The format is squashfs with zstd (Debian's squashfs-tools): a read-only file system in one
file, compressed per 1 MiB block, whose directory tables sit together, so a mount reads a few
blocks and then only the files it opens. That is what lets the lazy start fetch a fraction
of the image; a tar archive would have to be read to its end to find one file.

Pruning (`stacks.images.contents`) rests on a trace: the stack's replica is started once from
this machine's environment, serves a completion, and the files its processes map are noted;
and on the engine's word for what it switches off here (triton on the CPU build).
The same trace notes the order its processes open files in (`stacks.images.read_order`): those
files are packed first, in that order, so a lazy start reads a few consecutive blocks.
The image is rebuilt when what it is built from changes (the engine's version, the
interpreter, the model's files); otherwise the built one is returned as it is, and a stack
made from the same things as another (an ablation's variant) takes that one's image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from stacks.errors import ImageError
from stacks.images.contents import (
    SWITCHED_OFF_BY_ENGINE,
    engine_distribution,
    installed_version,
    stage,
    switched_off_by_engine,
)
from stacks.images.manifest import ImageContents, ImageManifest, digests
from stacks.images.read_order import OpenTrace, write_sort_file
from stacks.models.prepare import prepare
from stacks.spec import PROJECT_ROOT, ImageSpec, StackSpec

IMAGES_DIR = PROJECT_ROOT / "images"
BUILT_DIR = IMAGES_DIR / "built"
MKSQUASHFS = shutil.which("mksquashfs") or "/usr/bin/mksquashfs"
# zstd at level 3 packs 2.2 GB in about half the time level 15 takes, and the image is
# within a few % of the size; a registry serves it at the same speed either way.
# How the files lie in the image and what is pruned; part of the source key, so a change
# is a rebuild.
LAYOUT = "read-order, engine-switched-off pruned"
MKSQUASHFS_ARGS = ["-comp", "zstd", "-Xcompression-level", "3", "-b", "1M", "-noappend",
                   "-no-progress", "-quiet", "-all-root"]


def built_dir(stack: str) -> Path:
    return BUILT_DIR / stack


def build_image(spec: StackSpec, say: Callable[[str], None] = lambda _: None,
                trace: bool = True, force: bool = False) -> ImageManifest:
    """The stack's built image, built now unless an up-to-date one exists."""
    served = prepare(spec)
    model = served.engine.model_path()
    key = source_key(model, trace)
    out = built_dir(spec.name)
    manifest_path = out / "manifest.json"
    if not force and manifest_path.is_file() and (out / "image.sqfs").is_file():
        existing = ImageManifest.read(manifest_path)
        if existing.source_key == key:
            say(f"image {spec.name}: up to date ({existing.digest[:19]}…)")
            return existing
    if not force and (shared := same_image(spec.name, key)) is not None:
        say(f"image {spec.name}: the same as {shared.name}'s ({shared.digest[:19]}…)")
        return shared
    started = time.monotonic()
    mapped: set[Path] | None = None
    order: list[Path] = []
    switched_off: list[str] = []
    if trace:
        say(f"image {spec.name}: tracing what one replica loads (a start and a completion)")
        mapped, order = trace_replica(served, out / "trace")
        switched_off = switched_off_by_engine(served.engine.env)
    say(f"image {spec.name}: staging the runtime, the engine and the model")
    staging = out / "staging"
    contents = stage(staging, model, mapped, switched_off)
    sort_file = out / "read-order.txt"
    ordered = write_sort_file(order, mapped or set(), contents.placed, sort_file)
    say(f"image {spec.name}: packing {contents.files} files "
        f"({contents.bytes / 1e9:.2f} GB) with mksquashfs, {ordered} first in read order")
    blob = out / "image.sqfs"
    try:
        pack(staging, blob, spec.name, sort_file if ordered else None)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    digest, blocks = digests(blob)
    manifest = ImageManifest(
        name=spec.name, digest=digest, size=blob.stat().st_size, block_digests=blocks,
        source_key=key, build_s=round(time.monotonic() - started, 1),
        contents=ImageContents(distributions=contents.distributions, pruned=contents.pruned,
                               files=contents.files, unpacked_bytes=contents.bytes,
                               model=str(model), read_order_files=ordered))
    manifest.write(manifest_path)
    say(f"image {spec.name}: {manifest.size / 1e6:.0f} MB from {contents.bytes / 1e6:.0f} MB, "
        f"{digest[:19]}…; left out: {', '.join(contents.pruned) or 'nothing'}")
    return manifest


def same_image(stack: str, key: str) -> ImageManifest | None:
    """Another stack's built image made from the same things (a variant of a stack that
    differs only in its balancer or API servers, an ablation's), taken as this stack's: its
    blob linked, its manifest renamed. Building it again would give the same bytes."""
    for path in sorted(BUILT_DIR.glob("*/manifest.json")):
        other = ImageManifest.read(path)
        blob = path.parent / other.blob_file
        if other.name == stack or other.source_key != key or not blob.is_file():
            continue
        out = built_dir(stack)
        out.mkdir(parents=True, exist_ok=True)
        (out / other.blob_file).unlink(missing_ok=True)
        try:
            os.link(blob, out / other.blob_file)
        except OSError:
            shutil.copyfile(blob, out / other.blob_file)
        mine = other.model_copy(update={"name": stack})
        mine.write(out / "manifest.json")
        return mine
    return None


def pack(tree: Path, blob: Path, name: str, sort_file: Path | None = None) -> None:
    """`tree` into one squashfs file at `blob`; the files `sort_file` lists first, highest
    priority first."""
    if not os.access(MKSQUASHFS, os.X_OK):
        raise ImageError("building an image needs Debian's squashfs-tools "
                         "(`make image-tools` installs it)")
    order = ["-sort", str(sort_file)] if sort_file is not None else []
    # A new file, renamed over the old: the old blob may be linked into the registry, and
    # writing it in place would change the bytes its digest names there.
    partial = blob.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    try:
        subprocess.run([MKSQUASHFS, str(tree), str(partial), *MKSQUASHFS_ARGS, *order,
                        "-processors", str(len(os.sched_getaffinity(0)))],
                       check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        partial.unlink(missing_ok=True)
        raise ImageError(f"image {name}: mksquashfs failed: "
                         f"{exc.stderr.decode(errors='replace').strip()[-300:]}") from exc
    partial.replace(blob)


def source_key(model: Path, trace: bool) -> str:
    """What an image is built from: the engine's version, the interpreter, the model's files
    (names, sizes, modification times), whether it was pruned by a trace, and the versions of
    what the engine may switch off."""
    engine = engine_distribution()
    parts = [engine.metadata["Name"], engine.version, sys.version, str(trace), LAYOUT,
             # what the engine's verdict on them rests on (a new release may change it)
             *(f"{name}:{installed_version(name)}" for name in SWITCHED_OFF_BY_ENGINE)]
    for path in sorted(model.rglob("*")):
        if path.is_file():
            stat = path.stat()
            parts.append(f"{path.relative_to(model)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def trace_replica(spec: StackSpec, log_dir: Path) -> tuple[set[Path], list[Path]]:
    """Every file mapped by the processes of one replica of `spec`, run from this machine's
    environment after it answered a completion; and the files they opened, in order."""
    from stacks.launcher import Stack  # the launcher starts replicas from images built here

    trace = OpenTrace(log_dir / "opens")
    shutil.rmtree(trace.log_dir, ignore_errors=True)
    env = {**spec.engine.env, **trace.env}
    if inherited := os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] += os.pathsep + inherited
    one = spec.model_copy(update={"replicas": 1, "restart_policy": "never", "autoscaling": None,
                                  "image": ImageSpec(mode="none"),
                                  "engine": spec.engine.model_copy(update={"env": env})})
    with Stack(one, log_dir) as stack:
        response = httpx.post(f"{stack.endpoint}/v1/completions", timeout=120, json={
            "model": stack.served_model, "prompt": "Fix the grammar: I could of went there.",
            "max_tokens": 16})
        if response.status_code != 200:
            raise ImageError(f"image {spec.name}: the traced replica answered "
                             f"{response.status_code}; see {log_dir}")
        mapped = mapped_files(stack.replicas[0].process.pid)
    return mapped, trace.read_order()


def mapped_files(pid: int) -> set[Path]:
    """The files mapped by process `pid` and all its descendants."""
    root = psutil.Process(pid)
    mapped: set[Path] = set()
    for process in [root, *root.children(recursive=True)]:
        try:
            maps = process.memory_maps(grouped=True)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        mapped.update(Path(os.path.normpath(region.path)) for region in maps
                      if region.path.startswith("/"))
    return mapped
