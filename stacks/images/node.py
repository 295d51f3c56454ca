"""This machine as a node that runs replicas from images: the one door the launcher uses.

    node = NodeImages(registry_url)
    opened = node.open("diy", "eager")     # fetched (or mounted) once per image and node
    opened.root                            # python/ and model/ inside
    runtime_python(opened.root), runtime_env(opened.root, env)   # what a replica runs
    node.close()                           # unmount, stop fetchers

An image is opened once per node and shared by every replica of it there, as a container
runtime shares an image's snapshot: a second replica, or one started again, finds it ready
(a warm start). An unpacked tree also stays on disk for later runs, as a pulled image does;
a lazy mount's block cache lives as long as the mount. `forget` drops what the node holds of
an image, for a cold start.

A forgotten unpacked tree is moved aside, not deleted, until `clear_forgotten` at the end of
a run. This machine's root file system is ext4 without a journal, where the inode allocator
skips every inode freed in the last 60 to 360 seconds, one lookup each: unpacking the diy
image's 57,000 files right after deleting the tree before it took 27.5–28.1 s, against
10.1–10.5 s with that tree moved aside (2 rounds each, alternating; nearly all of it kernel
time in `recently_deleted`, by perf). A node pulling an image has not just deleted another
of that size; a trial must not pay for the one before it.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stacks.images.contents import MODEL_DIR, PY_VERSION, PYTHON_DIR
from stacks.images.eager import fetch_manifest, pull, unpacked_tree
from stacks.images.lazy import FileSystem, LazyMount
from stacks.images.manifest import ImageManifest
from stacks.images.prefetch import PrefetchPlan, fetch_plan, plan_from
from stacks.spec import PROJECT_ROOT

NODE_DIR = PROJECT_ROOT / "images" / "node"
Mode = Literal["eager", "lazy"]
# What a replica must not inherit from the harness's own environment: it would put the
# machine's virtual environment back on the replica's module path.
HOST_PYTHON_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONUSERBASE")


@dataclass(slots=True)
class OpenedImage:
    manifest: ImageManifest
    mode: Mode
    root: Path
    usable_s: float  # from "replica scheduled" to "image usable"; 0 when the node had it
    warm: bool  # the node already held it
    prefetch_blocks: int = 0  # blocks a lazy mount prefetches from its image's plan
    file_system: str = ""  # lazy: "kernel" or "fuse", what reads the mounted image
    download_s: float = 0.0  # eager, cold: the blob's download and digest check, of usable_s
    unpack_s: float = 0.0  # eager, cold: its unpacking, of usable_s


class NodeImages:
    def __init__(self, registry_url: str, node_dir: Path = NODE_DIR) -> None:
        self.registry_url = registry_url
        self.node_dir = Path(node_dir)
        self.opened: dict[tuple[str, Mode], OpenedImage] = {}
        self.mounts: dict[str, LazyMount] = {}
        self.unplanned: set[str] = set()  # stacks mounted while their image had no plan

    def open(self, stack: str, mode: Mode, prefetch: bool = True,
             file_system: FileSystem = "auto") -> OpenedImage:
        """The stack's image as a tree replicas can run from; fetched or mounted the first
        time this node opens it (a cold start), then shared (warm). A lazy mount prefetches
        by the image's plan if there is one and `prefetch` is on, and is read by
        `file_system` (`stacks.images.lazy`)."""
        held = self.opened.get((stack, mode))
        if held is not None:
            return OpenedImage(held.manifest, mode, held.root, 0.0, warm=True,
                               prefetch_blocks=held.prefetch_blocks,
                               file_system=held.file_system)
        started = time.monotonic()
        manifest = fetch_manifest(self.registry_url, stack)
        warm = False
        plan = None
        pulled = None
        if mode == "eager":
            root = unpacked_tree(self.node_dir, manifest)
            warm = root.is_dir()  # unpacked by an earlier run on this node
            if not warm:
                pulled = pull(self.registry_url, manifest, self.node_dir)
        else:
            plan = fetch_plan(self.registry_url, manifest)
            if plan is None:
                self.unplanned.add(stack)
            plan = plan if prefetch else None
            mount = LazyMount(self.registry_url, manifest, self.node_dir, prefetch=plan,
                              file_system=file_system)
            root = mount.mount()
            self.mounts[stack] = mount
        opened = OpenedImage(manifest, mode, root, time.monotonic() - started, warm,
                             prefetch_blocks=len(plan.blocks) if plan else 0,
                             file_system=self.mounts[stack].file_system if mode == "lazy"
                             else "",
                             download_s=pulled.download_s if pulled else 0.0,
                             unpack_s=pulled.unpack_s if pulled else 0.0)
        self.opened[(stack, mode)] = opened
        return opened

    def forget(self, stack: str, mode: Mode) -> None:
        """Drop what this node holds of the stack's image: the next open is cold."""
        self.opened.pop((stack, mode), None)
        if mode == "lazy":
            self.unplanned.discard(stack)
            mount = self.mounts.pop(stack, None)
            if mount is not None:
                mount.close()
            return
        forget_unpacked(stack, self.node_dir)

    def record_plan(self, stack: str) -> PrefetchPlan | None:
        """The blocks the stack's lazy mount fetched so far, in order, as the plan the next
        start prefetches; once, from a mount made while the image had no plan (what a
        prefetching start fetches follows its plan, not its engine)."""
        mount = self.mounts.get(stack)
        if mount is None or stack not in self.unplanned:
            return None
        self.unplanned.discard(stack)
        return plan_from(mount.manifest, mount.fetched_log)

    def fetch_failure(self, stack: str) -> str:
        """Why a lazily mounted image failed to read, if its fetcher says so."""
        mount = self.mounts.get(stack)
        return mount.fetch_failure() if mount is not None else ""

    def close(self) -> None:
        """Unmount every lazy image and stop its fetcher (unpacked trees stay on disk)."""
        for mount in self.mounts.values():
            mount.close()
        self.mounts = {}
        self.opened = {key: value for key, value in self.opened.items() if key[1] == "eager"}


def runtime_python(root: Path) -> Path:
    return root / PYTHON_DIR / "bin" / PY_VERSION


def runtime_model(root: Path) -> Path:
    return root / MODEL_DIR


def runtime_env(root: Path, env: dict[str, str]) -> dict[str, str]:
    """`env` for a replica running from the image at `root`: its interpreter finds its own
    standard library, packages and libpython there, and nothing of this machine's."""
    clean = {key: value for key, value in env.items() if key not in HOST_PYTHON_ENV}
    python = root / PYTHON_DIR
    libs = [str(python / "lib"), *filter(None, env.get("LD_LIBRARY_PATH", "").split(":"))]
    return {**clean, "PYTHONHOME": str(python), "PYTHONNOUSERSITE": "1",
            "LD_LIBRARY_PATH": ":".join(libs)}


def forget_unpacked(stack: str, node_dir: Path = NODE_DIR) -> bool:
    """Take the unpacked tree of the stack's built image off this node, so that its next
    eager start pulls it whole (cold); whether there was one. The tree is moved aside, for
    `clear_forgotten` to delete (why: this module's docstring). A lazy start is always cold:
    its block cache lives only as long as its mount."""
    from stacks.images.build import built_dir  # building is not a node's concern otherwise

    manifest_path = built_dir(stack) / "manifest.json"
    if not manifest_path.is_file():
        return False
    manifest = ImageManifest.read(manifest_path)
    tree = unpacked_tree(node_dir, manifest)
    if not tree.is_dir():
        return False
    aside = forgotten_dir(node_dir)
    # Room for the next unpack and one more besides: a long run must not fill the disk with
    # trees kept aside. Short of it, the tree is deleted now, at the next unpack's cost.
    if shutil.disk_usage(node_dir).free >= 2 * manifest.contents.unpacked_bytes:
        aside.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # another file system: deleted below instead
            tree.rename(aside / f"{tree.name}-{time.time_ns()}")
    shutil.rmtree(tree, ignore_errors=True)  # what is still here: no room, or not moved
    return True


def forgotten_dir(node_dir: Path = NODE_DIR) -> Path:
    return node_dir / "forgotten"


def clear_forgotten(node_dir: Path = NODE_DIR) -> None:
    """Delete the trees `forget_unpacked` moved aside (a killed run's too)."""
    shutil.rmtree(forgotten_dir(node_dir), ignore_errors=True)


@contextlib.contextmanager
def forgotten_cleared(node_dir: Path = NODE_DIR) -> Iterator[None]:
    """A run that forgets trees: they are deleted when it ends (an error or Ctrl-C
    included; a killed run's are deleted by the next run's end), when no timed unpack of
    this run follows. A cold run started within minutes of that pays for them once, in its
    first unpack, as a trial once paid for the one before it."""
    try:
        yield
    finally:
        clear_forgotten(node_dir)
