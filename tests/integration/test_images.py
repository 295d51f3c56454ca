"""Images on real parts, with a small image (a few files, not an engine): the registry (Debian's
nginx with its echo module), the eager pull (download, digest, unsquashfs) and the lazy mount
(nbdkit, nbdfuse, squashfuse). Every error path leaves nothing mounted and no process behind.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from stacks.errors import ImageDigestMismatch, ImageFetchError
from stacks.images.build import pack
from stacks.images.eager import pull, unpacked_tree
from stacks.images.lazy import LazyMount
from stacks.images.manifest import BLOCK_SIZE, ImageContents, ImageManifest, digests
from stacks.images.node import NodeImages
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
    mine = [proc for proc in psutil.Process().children(recursive=True)
            if proc.name() in FETCHERS and proc.status() != psutil.STATUS_ZOMBIE]
    assert mine == []


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


def test_an_eager_pull_checks_the_digest_and_unpacks_the_whole_image(
        image: tuple[Registry, ImageManifest], tmp_path: Path) -> None:
    registry, manifest = image
    tree = pull(registry.url, manifest, tmp_path / "node")
    assert (tree / "python" / "lib" / "hello.py").read_text().startswith("print")
    assert (tree / "model" / "weights.bin").stat().st_size == BIG_FILE_BYTES
    assert registry.bytes_served(manifest.blob_path) == manifest.size
    assert sorted(p.name for p in (tmp_path / "node" / "eager").iterdir()) == [tree.name]


def test_a_tampered_blob_is_refused_before_anything_is_unpacked_or_mounted(
        image: tuple[Registry, ImageManifest], tmp_path: Path) -> None:
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
    mount = LazyMount(registry.url, manifest, node)
    with pytest.raises(ImageDigestMismatch, match="tiny-image.*nothing was mounted"):
        mount.mount()
    no_leftovers(node)


def test_a_lazy_mount_fetches_only_the_blocks_read_and_caches_them(
        image: tuple[Registry, ImageManifest], tmp_path: Path) -> None:
    registry, manifest = image
    since = time.time()
    with LazyMount(registry.url, manifest, tmp_path / "node") as mount:
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
        image: tuple[Registry, ImageManifest], tmp_path: Path) -> None:
    registry, manifest = image
    with LazyMount(registry.url, manifest, tmp_path / "node") as mount:
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


def test_a_node_opens_an_image_once_and_shares_it_until_forgotten(
        image: tuple[Registry, ImageManifest], tmp_path: Path) -> None:
    registry, manifest = image
    node = NodeImages(registry.url, tmp_path / "node")
    try:
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
    finally:
        node.close()
    no_leftovers(tmp_path / "node")


def test_a_manifest_missing_from_the_registry_says_to_push(
        image: tuple[Registry, ImageManifest], tmp_path: Path) -> None:
    registry, manifest = image
    (registry.root / manifest_name(manifest.name)).unlink()
    with pytest.raises(Exception, match="not in the registry; push it"):
        NodeImages(registry.url, tmp_path / "node").open(manifest.name, "eager")
