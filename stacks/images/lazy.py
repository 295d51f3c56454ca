"""Lazy start, as Slacker, SOCI and Nydus do it: the image mounted at once, each 4 MiB block
fetched over an HTTP range request on first read and cached on local disk.

    registry blob ─HTTP range─ nbdkit (curl plugin; cache, log and stats filters)
        ─NBD over a Unix socket─ nbdfuse (the image as one read-only file)
        ─ the file system inside it ─ mount point the replica runs from

The file system inside is read by the kernel's own squashfs, on a loop device over nbdfuse's
file, where this process may mount (root, a loop device, squashfs in the kernel): the image is
then a block device whose blocks are fetched on first read, as in the seed, and each file is
read through one FUSE layer and cached in the kernel's page cache. Elsewhere `squashfuse_ll`,
a second FUSE layer that needs no privilege. All are Debian's (nbdkit, libnbd-bin, squashfuse,
util-linux). The cache filter rounds every read up to whole 4 MiB blocks
(`cache-min-block-size`) and keeps them in a file under the node's cache directory for as long
as the mount lives, which is as long as the stack on this node uses the image: a replica
started again, or a second replica, reads what the first one fetched from local disk.

With the image's prefetch plan (`stacks.images.prefetch`), a background reader fetches the
blocks an earlier start read, in its order, from the mount on. nbdkit's log filter, behind the
cache, records every block fetched: a start without a plan records the next one's.

Before anything is mounted, block 0 (the file system's superblock, read through the same
cache, so it is fetched once) is checked against the manifest's block digest. A mount that
fails on the way leaves nothing mounted and no fetcher running.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Literal, TextIO

from stacks.errors import ImageDigestMismatch, ImageError, ImageFetchError
from stacks.images.manifest import ImageManifest
from stacks.images.prefetch import Prefetcher, PrefetchPlan
from stacks.process import spawn, stop_trees, tail, wait_ready

NBDKIT = shutil.which("nbdkit") or "/usr/bin/nbdkit"
NBDFUSE = shutil.which("nbdfuse") or "/usr/bin/nbdfuse"
# The low-level, multi-threaded squashfuse, whose files stay in the kernel's page cache between
# opens: importing the engine from a mount took 28.6 s with a cold block cache and 14.7 s with
# a warm one (as from local disk), against 51.9 and 30.8 s with plain `squashfuse`.
SQUASHFUSE = shutil.which("squashfuse_ll") or "/usr/bin/squashfuse_ll"
FUSERMOUNT = shutil.which("fusermount3") or shutil.which("fusermount") or "/bin/fusermount3"
MOUNT = shutil.which("mount") or "/bin/mount"
UMOUNT = shutil.which("umount") or "/bin/umount"
# What reads the file system inside the image: "kernel" (squashfs on a loop device), "fuse"
# (squashfuse_ll), or "auto": the kernel where this process may mount, FUSE elsewhere.
FileSystem = Literal["auto", "kernel", "fuse"]
READY_TIMEOUT_S = 30.0
# nbdkit answers one request at a time, and each FUSE read of the device is one request. At the
# kernel's default readahead, 128 KiB, a 4 MiB block is 32 of them, the registry's link idle
# while the 31 after the first come from the cache; at 1 MiB, 4. The diy image's prefetch plan
# alone: 11.3–12.1 s against 13.7–14.1 s (4 MiB: 11.6 s; FUSE's requests stop at 1 MiB).
DEVICE_READAHEAD_KB = 1024
APT_HINT = "install Debian's nbdkit, libnbd-bin, squashfuse and fuse3 (`make image-tools`)"


class LazyMount:
    """One image mounted lazily under `node_dir/lazy/<digest>/`; a context manager."""

    def __init__(self, registry_url: str, manifest: ImageManifest, node_dir: Path,
                 prefetch: PrefetchPlan | None = None, file_system: FileSystem = "auto") -> None:
        self.manifest = manifest
        self.requested: FileSystem = file_system
        self.file_system: FileSystem = file_system  # once mounted: "kernel" or "fuse"
        self.url = registry_url + manifest.blob_path
        self.where = node_dir / "lazy" / manifest.digest.removeprefix("sha256:")[:16]
        self.processes: list[subprocess.Popen[bytes]] = []
        self.plan = prefetch
        self.prefetcher: Prefetcher | None = None
        self._lock: TextIO | None = None  # held while this object owns the mount point

    @property
    def name(self) -> str:
        return f"{self.manifest.name}@{self.manifest.digest[:19]}…"

    @property
    def root(self) -> Path:
        """Where the image's files appear."""
        return self.where / "root"

    @property
    def socket(self) -> Path:
        return self.where / "nbd.sock"

    @property
    def device(self) -> Path:
        return self.where / "device" / "image"

    @property
    def fetcher_log(self) -> Path:
        return self.where / "nbdkit.log"

    @property
    def fetched_log(self) -> Path:
        """Every read the block cache passed on to the registry, in order."""
        return self.where / "fetched.log"

    def __enter__(self) -> LazyMount:
        self.mount()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def mount(self) -> Path:
        for tool in (NBDKIT, NBDFUSE, FUSERMOUNT):
            if not os.access(tool, os.X_OK):
                raise ImageError(f"a lazy start needs {Path(tool).name}: {APT_HINT}")
        refusal = "" if self.requested == "fuse" else kernel_mount_refusal()
        if self.requested == "kernel" and refusal:
            raise ImageError(f"image {self.name}: the kernel cannot mount it here ({refusal}); "
                             "use file_system: fuse or auto")
        self.file_system = "fuse" if self.requested == "fuse" or refusal else "kernel"
        if not os.access(SQUASHFUSE, os.X_OK) and self.requested != "kernel":
            raise ImageError(f"a lazy start needs squashfuse_ll: {APT_HINT}")
        self._hold_mount_point()
        self._unmount()  # whatever an earlier, killed run left here
        cache = self.where / "cache"
        for directory in (cache, self.device.parent, self.root):
            directory.mkdir(parents=True, exist_ok=True)
        try:
            self._start_fetcher(cache)
            # One NBD connection, so one HTTP connection to the registry at a time: the
            # bandwidth cap is per connection, and the eager download has one too.
            self._start(
                [NBDFUSE, "-r", "-C", "1", str(self.device), "--unix", str(self.socket)],
                "nbdfuse.log", self.device.exists, "nbdfuse (the image as a file)")
            self._widen_reads()
            self._check_superblock()
            if self.file_system == "kernel" and not self._mount_in_kernel():
                self.file_system = "fuse"  # "auto", refused by the kernel
            if self.file_system == "fuse":
                self._start([SQUASHFUSE, "-f", str(self.device), str(self.root)],
                            "squashfuse.log", lambda: os.path.ismount(self.root),
                            "squashfuse (the image's file system)")
            if self.plan is not None:
                self.prefetcher = Prefetcher(self.device, self.plan)
                self.prefetcher.start()
        except BaseException:
            self.close()
            raise
        return self.root

    def _hold_mount_point(self) -> None:
        """Only one mount of an image per node at a time: a second harness process mounting it
        would first unmount the one in use. The lock dies with the process that holds it."""
        if self._lock is not None:
            return
        self.where.mkdir(parents=True, exist_ok=True)
        self._lock = (self.where / "mount.lock").open("a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise ImageError(f"image {self.name} is mounted at {self.root} by another process "
                             "on this node; stop that run first") from None

    def _start_fetcher(self, cache: Path) -> None:
        env = {**os.environ, "TMPDIR": str(cache)}  # where the cache filter keeps its blocks
        # The log filter sits behind the cache: it sees only what is fetched, whole blocks.
        argv = [NBDKIT, "--readonly", "--foreground", "--unix", str(self.socket),
                "--filter=cache", "--filter=log", "--filter=stats", "curl", f"url={self.url}",
                "cache-on-read=true", f"cache-min-block-size={self.manifest.block_size}",
                f"logfile={self.fetched_log}", f"statsfile={self.where / 'stats.txt'}",
                "timeout=30"]
        self._start(argv, self.fetcher_log.name, self.socket.exists,
                    "nbdkit (the block fetcher)", env)

    def _start(self, argv: list[str], log: str, ready: Callable[[], bool], what: str,
               env: dict[str, str] | None = None) -> None:
        log_path = self.where / log
        log_path.write_text("")
        self.processes.append(spawn(argv, log_path, env))
        if not wait_ready(ready, self.processes[-1], READY_TIMEOUT_S):
            raise ImageFetchError(f"image {self.name}: {what} did not start: "
                                  f"{self.fetch_failure() or tail(log_path, 3) or 'no output'}")

    def _widen_reads(self) -> None:
        """The device's readahead raised to `DEVICE_READAHEAD_KB`, where this process may
        (root); elsewhere it stays at the kernel's default."""
        with contextlib.suppress(OSError):  # nbdfuse gone: the superblock's check says so
            readahead_setting(self.device).write_text(f"{DEVICE_READAHEAD_KB}\n")

    def _check_superblock(self) -> None:
        try:
            with self.device.open("rb") as image:
                first = image.read(self.manifest.block_size)
        except OSError as exc:
            raise ImageFetchError(f"image {self.name}: its first block could not be fetched "
                                  f"({exc.strerror}): {self.fetch_failure()}") from exc
        if hashlib.sha256(first).hexdigest() != self.manifest.block_digests[0]:
            raise ImageDigestMismatch(f"image {self.name}: its first block does not match the "
                                      "manifest's digest; nothing was mounted or started")

    def _mount_in_kernel(self) -> bool:
        """Mount the image with the kernel's squashfs. Where the kernel refuses (a container
        without the right to attach a loop device): False under "auto", the reason kept in
        `kernel-mount.log`; an error under "kernel", and always when the fetch failed."""
        try:
            # `-o loop` attaches a loop device with autoclear: it is freed with the unmount.
            done = subprocess.run([MOUNT, "-t", "squashfs", "-o", "ro,loop", str(self.device),
                                   str(self.root)], capture_output=True, text=True,
                                  check=False, timeout=READY_TIMEOUT_S)
            why = (done.stderr.strip()[-200:] or f"mount exited with {done.returncode}"
                   if done.returncode else "")
        except subprocess.TimeoutExpired:
            why = f"mount did not return within {READY_TIMEOUT_S:g} s"
        if not why:
            return True
        failed = self.fetch_failure()
        if self.requested == "kernel" or failed:
            raise ImageFetchError(f"image {self.name}: the kernel's squashfs did not mount "
                                  f"it: {failed or why}")
        (self.where / "kernel-mount.log").write_text(why + "\n")
        self._unmount_point(self.root)  # whatever a half-done mount left
        return False

    def fetch_failure(self) -> str:
        """The fetcher's last error (the registry gone or answering errors), or ''."""
        with contextlib.suppress(OSError):
            lines = [line for line in self.fetcher_log.read_text().splitlines()
                     if "error" in line.lower() or "curl" in line.lower()]
            if lines:
                return f"the registry failed mid-fetch: {lines[-1].strip()[-200:]}"
        return ""

    def close(self) -> None:
        """Unmount (file system, then device), stop the fetcher and free the mount point;
        safe to call twice."""
        self._unmount()
        if self._lock is not None:
            self._lock.close()  # releases the lock
            self._lock = None

    def _unmount(self) -> None:
        """Unmount and stop what this object, or a killed run before it, left here."""
        if self.prefetcher is not None:
            self.prefetcher.stop()  # it holds the device open
            self.prefetcher = None
        for point in (self.root, self.device.parent):  # the file system first
            self._unmount_point(point)
        stop_trees(self.processes, grace_s=2)
        self.processes = []
        self.socket.unlink(missing_ok=True)
        shutil.rmtree(self.where / "cache", ignore_errors=True)

    @staticmethod
    def _unmount_point(point: Path) -> None:
        kind = mounted_type(point)
        if kind is None:
            return
        # Detached at once, freed when the last open file closes; a FUSE mount whose process
        # died (a killed run's) is listed too, and detached alike.
        tool = [FUSERMOUNT, "-u", "-z"] if kind.startswith("fuse") else [UMOUNT, "-l"]
        subprocess.run([*tool, str(point)], capture_output=True, check=False)


def readahead_setting(device: Path) -> Path:
    """The kernel's readahead for the file system holding `device` (nbdfuse's, here), KiB."""
    number = os.stat(device).st_dev
    return Path(f"/sys/class/bdi/{os.major(number)}:{os.minor(number)}/read_ahead_kb")


def kernel_mount_refusal() -> str:
    """Why the kernel's squashfs cannot mount an image from this process, or ''."""
    if os.geteuid() != 0:
        return "mounting needs root"
    if not Path("/dev/loop-control").exists():
        return "no loop device"
    if "squashfs" not in Path("/proc/filesystems").read_text():
        return "the kernel has no squashfs"
    return ""


def mounted_type(point: Path) -> str | None:
    """The type of what is mounted at `point` ("squashfs", "fuse.squashfuse_ll"…), or None."""
    target = str(point.absolute())
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        # The table writes a space in a path as \040.
        if len(fields) > 2 and fields[1].replace("\\040", " ") == target:
            return fields[2]
    return None
