"""Images on real parts, with a small image (a few files, not an engine): the registry (Debian's
nginx with its echo module), the eager pull (download, digest, unsquashfs) and the lazy mount
(nbdkit, nbdfuse, then the kernel's squashfs on a loop device or squashfuse_ll). Every error
path leaves nothing mounted, no loop device and no process behind.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from stacks.errors import ImageDigestMismatch, ImageError, ImageFetchError
from stacks.images import lazy
from stacks.images.build import pack
from stacks.images.eager import pull, unpacked_tree
from stacks.images.lazy import FileSystem, LazyMount, kernel_mount_refusal, mounted_type
from stacks.images.link import SLACK_S
from stacks.images.manifest import BLOCK_SIZE, ImageContents, ImageManifest, digests
from stacks.images.node import NodeImages, forget_unpacked, forgotten_cleared, forgotten_dir
from stacks.images.prefetch import PrefetchPlan, blocks_fetched, fetch_plan, plan_name, publish
from stacks.images.read_order import write_sort_file
from stacks.images.registry import Registry, manifest_name, push

FETCHERS = ("nbdkit", "nbdfuse", "squashfuse", "squashfuse_ll")
BIG_FILE_BYTES = 24 * 1024 * 1024  # 6 blocks of 4 MiB, incompressible


def make_image(root: Path, name: str = "tiny-image") -> Path:
    """A squashfs image of a few small files and one big random one; its manifest's path."""
    tree = root / "tree"
    (tree / "python" / "lib").mkdir(parents=True)
    (tree / "python" / "lib" / "hello.py").write_text("print('hello from the image')\n")
    (tree / "model").mkdir()
    (tree / "model" / "config.json").write_text('{"layers": 4}\n')
    (tree / "model" / "weights.bin").write_bytes(os.urandom(BIG_FILE_BYTES))
    built = root / "built" / name
    built.mkdir(parents=True)
    pack(tree, built / "image.sqfs", name)
    digest, blocks = digests(built / "image.sqfs")
    ImageManifest(name=name, digest=digest, size=(built / "image.sqfs").stat().st_size,
                  block_digests=blocks, source_key="test",
                  contents=ImageContents(distributions=[], pruned=[], files=3,
                                         unpacked_bytes=BIG_FILE_BYTES, model="model")
                  ).write(built / "manifest.json")
    return built / "manifest.json"


def no_leftovers(where: Path) -> None:
    mounts = Path("/proc/self/mounts").read_text()
    assert str(where) not in mounts, mounts
    loops = [backing.read_text()
             for backing in Path("/sys/block").glob("loop*/loop/backing_file")]
    assert not [loop for loop in loops if str(where) in loop], loops
    mine = [proc for proc in psutil.Process().children(recursive=True)
            if proc.name() in FETCHERS and proc.status() != psutil.STATUS_ZOMBIE]
    assert mine == []


@pytest.fixture(params=["kernel", "fuse"])
def file_system(request: pytest.FixtureRequest) -> FileSystem:
    """Each lazy test with each reader of the image's file system that this machine allows."""
    if request.param == "kernel" and (why := kernel_mount_refusal()):
        pytest.skip(f"the kernel's squashfs cannot mount here: {why}")
    kind: FileSystem = request.param
    return kind


@pytest.fixture
def image(tmp_path: Path) -> Iterator[tuple[Registry, ImageManifest]]:
    manifest = push(make_image(tmp_path), tmp_path / "registry")
    with Registry(tmp_path / "registry", bandwidth_mbps=800, latency_ms=5) as registry:
        yield registry, manifest
    assert registry.process is None


def test_the_registry_serves_ranges_after_its_latency_and_counts_the_bytes(
        image: tuple[Registry, ImageManifest]) -> None:
    import httpx
    registry, manifest = image
    started = time.time()
    reply = httpx.get(registry.url + manifest.blob_path,
                      headers={"range": f"bytes=0-{BLOCK_SIZE - 1}"}, timeout=10)
    assert reply.status_code == 206
    assert len(reply.content) == BLOCK_SIZE
    assert time.time() - started >= 0.005  # its added latency
    assert registry.bytes_served(manifest.blob_path, since=started) == BLOCK_SIZE


def test_the_registry_s_bandwidth_holds_for_small_range_requests_and_banks_no_idle_time(
        image: tuple[Registry, ImageManifest]) -> None:
    """nginx's own limit would let each 4 MiB response through at loopback speed."""
    import httpx
    registry, manifest = image  # 800 Mbit/s: 100 MB/s, 42 ms per 4 MiB block
    with httpx.Client(timeout=10) as client:  # one connection, as the fetchers have
        client.get(registry.url + manifest.blob_path, headers={"range": "bytes=0-0"})
        time.sleep(0.5)  # idle: a link carries nothing more for it
        started = time.monotonic()
        for block in range(4):
            reply = client.get(registry.url + manifest.blob_path, headers={
                "range": f"bytes={block * BLOCK_SIZE}-{(block + 1) * BLOCK_SIZE - 1}"})
            assert len(reply.content) == BLOCK_SIZE
        took = time.monotonic() - started
    carried = 4 * BLOCK_SIZE / (registry.bandwidth_mbps * 1e6 / 8)
    # The link may run SLACK_S ahead of its schedule, and each response waits 5 ms first.
    assert carried - SLACK_S <= took < carried * 1.5 + 4 * 0.005 + 0.2, (took, carried)


def test_an_eager_pull_checks_the_digest_and_unpacks_the_whole_image(
        image: tuple[Registry, ImageManifest], tmp_path: Path) -> None:
    registry, manifest = image
    pulled = pull(registry.url, manifest, tmp_path / "node")
    tree = pulled.tree
    assert (tree / "python" / "lib" / "hello.py").read_text().startswith("print")
    assert (tree / "model" / "weights.bin").stat().st_size == BIG_FILE_BYTES
    assert registry.bytes_served(manifest.blob_path) == manifest.size
    assert sorted(p.name for p in (tmp_path / "node" / "eager").iterdir()) == [tree.name]
    # Timed apart: the download carries the link's time for the whole blob, the unpack none.
    carried = manifest.size / (registry.bandwidth_mbps * 1e6 / 8)
    assert pulled.download_s >= carried - SLACK_S, (pulled.download_s, carried)
    assert pulled.unpack_s > 0


def test_a_tampered_blob_is_refused_before_anything_is_unpacked_or_mounted(
        image: tuple[Registry, ImageManifest], tmp_path: Path,
        file_system: FileSystem) -> None:
    registry, manifest = image
    blob = registry.root / manifest.blob_path.lstrip("/")
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF  # inside block 0, the superblock's block
    blob.unlink()  # a new file: the built image it was linked from stays intact
    blob.write_bytes(bytes(data))
    node = tmp_path / "node"
    with pytest.raises(ImageDigestMismatch, match="tiny-image.*nothing was unpacked"):
        pull(registry.url, manifest, node)
    assert not unpacked_tree(node, manifest).exists()
    assert list((node / "eager").iterdir()) == []  # no partial download left
    mount = LazyMount(registry.url, manifest, node, file_system=file_system)
    with pytest.raises(ImageDigestMismatch, match="tiny-image.*nothing was mounted"):
        mount.mount()
    no_leftovers(node)


def test_a_lazy_mount_fetches_only_the_blocks_read_and_caches_them(
        image: tuple[Registry, ImageManifest], tmp_path: Path,
        file_system: FileSystem) -> None:
    registry, manifest = image
    since = time.time()
    with LazyMount(registry.url, manifest, tmp_path / "node", file_system=file_system) as mount:
        kind = mounted_type(mount.root)
        assert kind is not None
        assert kind.startswith("squashfs" if file_system == "kernel" else "fuse")
        assert (mount.root / "python" / "lib" / "hello.py").read_text().startswith("print")
        small = registry.bytes_served(manifest.blob_path, since=since)
        assert 0 < small < manifest.size / 2
        assert (mount.root / "model" / "weights.bin").read_bytes()[:4]  # its first block
        before = registry.bytes_served(manifest.blob_path, since=since)
        assert (mount.root / "python" / "lib" / "hello.py").read_text()  # cached: no fetch
        assert registry.bytes_served(manifest.blob_path, since=since) == before
    no_leftovers(tmp_path / "node")


def test_an_unreachable_registry_fails_the_lazy_mount_with_the_image_named(
        image: tuple[Registry, ImageManifest], tmp_path: Path) -> None:
    registry, manifest = image
    url = registry.url
    registry.stop()
    with pytest.raises(ImageFetchError, match="tiny-image"):
        LazyMount(url, manifest, tmp_path / "node").mount()
    no_leftovers(tmp_path / "node")


def test_the_registry_dying_mid_fetch_fails_reads_and_names_the_image(
        image: tuple[Registry, ImageManifest], tmp_path: Path,
        file_system: FileSystem) -> None:
    registry, manifest = image
    with LazyMount(registry.url, manifest, tmp_path / "node", file_system=file_system) as mount:
        registry.stop()
        with pytest.raises(OSError, match="Input/output error"):  # the block never arrives
            (mount.root / "model" / "weights.bin").read_bytes()
        assert "mid-fetch" in mount.fetch_failure()
    no_leftovers(tmp_path / "node")


def test_an_eager_download_cut_by_the_registry_leaves_no_partial_file(
        tmp_path: Path) -> None:
    manifest = push(make_image(tmp_path), tmp_path / "registry")
    # 24 MB at 8 Mbit/s: 24 s, so stopping it after half a second cuts it mid-fetch.
    with Registry(tmp_path / "registry", bandwidth_mbps=8, latency_ms=0) as registry:
        threading.Timer(0.5, registry.stop).start()
        with pytest.raises(ImageFetchError, match="tiny-image.*mid-fetch"):
            pull(registry.url, manifest, tmp_path / "node")
    assert list((tmp_path / "node" / "eager").iterdir()) == []


@pytest.fixture
def node(image: tuple[Registry, ImageManifest], tmp_path: Path) -> Iterator[NodeImages]:
    """A node on the image's registry, closed and checked for leftovers after the test."""
    node = NodeImages(image[0].url, tmp_path / "node")
    try:
        yield node
    finally:
        node.close()
    no_leftovers(tmp_path / "node")


def test_a_node_opens_an_image_once_and_shares_it_until_forgotten(
        image: tuple[Registry, ImageManifest], node: NodeImages, tmp_path: Path) -> None:
    registry, manifest = image
    cold = node.open(manifest.name, "lazy")
    warm = node.open(manifest.name, "lazy")
    assert not cold.warm
    assert warm.warm
    assert warm.root == cold.root
    assert os.path.ismount(cold.root)
    node.forget(manifest.name, "lazy")
    assert not os.path.ismount(cold.root)
    eager = node.open(manifest.name, "eager")
    assert not eager.warm
    assert NodeImages(registry.url, tmp_path / "node").open(manifest.name, "eager").warm


def test_a_forgotten_tree_is_moved_aside_until_the_run_ends(
        image: tuple[Registry, ImageManifest], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    registry, manifest = image
    monkeypatch.setattr("stacks.images.build.BUILT_DIR", tmp_path / "built")
    node_dir = tmp_path / "node"
    first = NodeImages(registry.url, node_dir).open(manifest.name, "eager")
    inode = first.root.stat().st_ino
    with forgotten_cleared(node_dir):
        assert forget_unpacked(manifest.name, node_dir)
        assert not first.root.exists()
        # Not deleted: its inodes stay in use while the next start unpacks.
        [aside] = forgotten_dir(node_dir).iterdir()
        assert aside.stat().st_ino == inode
        assert (aside / "python" / "lib" / "hello.py").is_file()
        again = NodeImages(registry.url, node_dir).open(manifest.name, "eager")
        assert not again.warm
        assert (again.root / "model" / "weights.bin").stat().st_size == BIG_FILE_BYTES
        assert not forget_unpacked("no-such-image", node_dir)
    assert not forgotten_dir(node_dir).exists()
    assert again.root.is_dir()
    # Without room for the next unpack and one more, the tree is deleted at once instead.
    monkeypatch.setattr("stacks.images.node.shutil.disk_usage",
                        lambda _: SimpleNamespace(total=10**12, used=10**12, free=0))
    assert forget_unpacked(manifest.name, node_dir)
    assert not again.root.exists()
    assert not forgotten_dir(node_dir).exists()


def test_a_manifest_missing_from_the_registry_says_to_push(
        image: tuple[Registry, ImageManifest], tmp_path: Path) -> None:
    registry, manifest = image
    (registry.root / manifest_name(manifest.name)).unlink()
    with pytest.raises(Exception, match="not in the registry; push it"):
        NodeImages(registry.url, tmp_path / "node").open(manifest.name, "eager")


def wait_for(done: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_first_lazy_start_records_its_blocks_and_the_next_prefetches_them_in_order(
        image: tuple[Registry, ImageManifest], node: NodeImages, file_system: FileSystem,
        tmp_path: Path) -> None:
    registry, manifest = image
    first = node.open(manifest.name, "lazy", file_system=file_system)
    assert first.prefetch_blocks == 0  # no plan yet
    assert (first.root / "model" / "weights.bin").read_bytes()[-4:]  # its last block
    plan = node.record_plan(manifest.name)
    assert plan is not None
    assert plan.blocks[0] == 0  # the superblock, checked before the mount
    assert node.record_plan(manifest.name) is None  # once per mount
    publish(plan, registry.root)
    node.forget(manifest.name, "lazy")

    # Nothing is read from the next mount: its prefetcher alone fetches the plan's blocks.
    since = time.time()
    second = node.open(manifest.name, "lazy", file_system=file_system)
    assert second.prefetch_blocks == len(plan.blocks)
    mount = node.mounts[manifest.name]
    assert mount.prefetcher is not None
    wait_for(lambda: mount.prefetcher is not None and mount.prefetcher.finished_s is not None)
    assert mount.prefetcher.error == ""
    # In the plan's order, each once: the same set of blocks, and nothing more.
    assert blocks_fetched(mount.fetched_log, BLOCK_SIZE) == plan.blocks
    fetched = registry.bytes_served(manifest.blob_path, since=since)
    assert fetched <= len(plan.blocks) * (BLOCK_SIZE + 1)
    assert node.record_plan(manifest.name) is None  # a planned mount records nothing
    setting = lazy.readahead_setting(mount.device)
    if os.access(setting, os.W_OK):  # where it may, the mount reads 1 MiB at a time
        assert int(setting.read_text()) == lazy.DEVICE_READAHEAD_KB

    # Each block was read whole: it waits in the page cache above the fetcher, so the
    # engine's reads of it return even while the fetcher is busy (here: stopped).
    fetcher = psutil.Process(mount.processes[0].pid)
    assert fetcher.name() == "nbdkit"
    read: list[bytes | OSError] = []

    def read_weights() -> None:
        try:
            read.append((second.root / "model" / "weights.bin").read_bytes())
        except OSError as exc:
            read.append(exc)

    reader = threading.Thread(target=read_weights, daemon=True)
    fetcher.suspend()
    try:
        reader.start()
        reader.join(10)
    finally:
        fetcher.resume()
    assert not reader.is_alive(), "a read of a prefetched block waited for the fetcher"
    assert read == [(tmp_path / "tree" / "model" / "weights.bin").read_bytes()]


def test_a_plan_for_another_image_or_none_at_all_means_no_prefetch(
        image: tuple[Registry, ImageManifest], node: NodeImages) -> None:
    registry, manifest = image
    assert fetch_plan(registry.url, manifest) is None
    stale = PrefetchPlan(name=manifest.name, digest="sha256:" + "0" * 64,
                         block_size=BLOCK_SIZE, blocks=[1, 2])
    publish(stale, registry.root)
    assert fetch_plan(registry.url, manifest) is None
    (registry.root / plan_name(manifest.name)).write_text("not json")
    assert fetch_plan(registry.url, manifest) is None
    assert node.open(manifest.name, "lazy").prefetch_blocks == 0


def test_the_files_a_start_reads_are_packed_first_in_its_order(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    marks = {}
    for name in ("a.bin", "b.bin", "c.bin"):  # incompressible, so found as is in the image
        marks[name] = os.urandom(64)
        (tree / name).write_bytes(marks[name] + os.urandom(200_000))
    sort_file = tmp_path / "read-order.txt"
    placed = {tree / name: Path(name) for name in marks}
    write_sort_file([tree / "c.bin", tree / "a.bin"], [], placed, sort_file)
    pack(tree, tmp_path / "image.sqfs", "ordered", sort_file)
    blob = (tmp_path / "image.sqfs").read_bytes()
    where = {name: blob.find(mark) for name, mark in marks.items()}
    assert min(where.values()) > 0
    assert where["c.bin"] < where["a.bin"] < where["b.bin"]  # read order, then the rest


def test_a_second_mount_of_an_image_on_the_node_is_refused_and_leaves_the_first_alone(
        image: tuple[Registry, ImageManifest], tmp_path: Path,
        file_system: FileSystem) -> None:
    registry, manifest = image
    with LazyMount(registry.url, manifest, tmp_path / "node", file_system=file_system) as first:
        with pytest.raises(ImageError, match="mounted .* by another process"):
            LazyMount(registry.url, manifest, tmp_path / "node", file_system=file_system).mount()
        assert os.path.ismount(first.root)
        assert (first.root / "python" / "lib" / "hello.py").read_text().startswith("print")
    again = LazyMount(registry.url, manifest, tmp_path / "node", file_system=file_system)
    with again:  # free once the first is closed
        assert os.path.ismount(again.root)
    no_leftovers(tmp_path / "node")


def test_a_mount_left_by_a_killed_run_is_cleared_before_the_image_is_mounted_again(
        image: tuple[Registry, ImageManifest], tmp_path: Path, file_system: FileSystem) -> None:
    registry, manifest = image
    killed = LazyMount(registry.url, manifest, tmp_path / "node", file_system=file_system)
    killed.mount()
    for process in killed.processes:  # the run dies: its fetchers with it, its mounts stay
        process.kill()
        process.wait()
    assert killed._lock is not None
    killed._lock.close()  # the lock dies with its process
    assert str(killed.root) in Path("/proc/self/mounts").read_text()
    with LazyMount(registry.url, manifest, tmp_path / "node", file_system=file_system) as again:
        assert (again.root / "python" / "lib" / "hello.py").read_text().startswith("print")
    no_leftovers(tmp_path / "node")


def test_auto_falls_back_to_fuse_where_the_kernel_refuses_to_mount_and_kernel_says_why(
        image: tuple[Registry, ImageManifest], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A container may be root without the right to attach a loop device: `mount` fails."""
    registry, manifest = image
    monkeypatch.setattr(lazy, "MOUNT", "/bin/false")
    monkeypatch.setattr(lazy, "kernel_mount_refusal", lambda: "")
    with LazyMount(registry.url, manifest, tmp_path / "node", file_system="auto") as mount:
        assert mount.file_system == "fuse"
        assert (mounted_type(mount.root) or "").startswith("fuse")
        assert "mount exited with 1" in (mount.where / "kernel-mount.log").read_text()
        assert (mount.root / "python" / "lib" / "hello.py").read_text().startswith("print")
    with pytest.raises(ImageFetchError, match="tiny-image.*kernel's squashfs did not mount"):
        LazyMount(registry.url, manifest, tmp_path / "node", file_system="kernel").mount()
    no_leftovers(tmp_path / "node")
