"""Eager start, as a plain container runtime pulls: the whole image downloaded, its digest
checked, unpacked to local disk; the replica starts from the unpacked tree.

Nothing is unpacked from bytes whose digest does not match, and a download that fails (the
registry gone mid-fetch) leaves no partial file behind.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from stacks.errors import ImageDigestMismatch, ImageError, ImageFetchError
from stacks.images.manifest import ImageManifest

UNSQUASHFS = shutil.which("unsquashfs") or "/usr/bin/unsquashfs"
CHUNK = 1024 * 1024
TIMEOUT_S = 30.0  # between bytes, not for the whole download


def fetch_manifest(registry_url: str, stack: str) -> ImageManifest:
    """The stack's manifest as the registry serves it: what every start reads first."""
    url = f"{registry_url}/manifests/{stack}.json"
    try:
        response = httpx.get(url, timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise ImageFetchError(f"image {stack}: registry at {registry_url} unreachable "
                              f"({type(exc).__name__})") from exc
    if response.status_code == 404:
        raise ImageError(f"image {stack}: not in the registry; push it "
                         f"(`harness image push {stack}`)")
    if response.status_code != 200:
        raise ImageFetchError(f"image {stack}: the registry answered {response.status_code} "
                              f"for {url}")
    return ImageManifest.model_validate_json(response.content)


def download(registry_url: str, manifest: ImageManifest, dest: Path) -> None:
    """The blob to `dest`, its sha256 computed as it arrives and checked at the end."""
    partial = dest.with_suffix(".partial")
    digest = hashlib.sha256()
    name = f"{manifest.name}@{manifest.digest[:19]}…"
    try:
        with httpx.stream("GET", registry_url + manifest.blob_path, timeout=TIMEOUT_S) as reply:
            if reply.status_code != 200:
                raise ImageFetchError(f"image {name}: the registry answered "
                                      f"{reply.status_code} for its blob")
            with partial.open("wb") as out:
                for chunk in reply.iter_bytes(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise ImageFetchError(f"image {name}: the registry at {registry_url} failed "
                              f"mid-fetch ({type(exc).__name__}: {exc})") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if f"sha256:{digest.hexdigest()}" != manifest.digest:
        partial.unlink(missing_ok=True)
        raise ImageDigestMismatch(f"image {name}: the blob's sha256 is {digest.hexdigest()[:12]}…, "
                                  "not its digest; nothing was unpacked or started")
    partial.replace(dest)


def unpack(blob: Path, tree: Path, name: str) -> None:
    """The image's files to `tree` (replaced if it exists)."""
    shutil.rmtree(tree, ignore_errors=True)
    partial = tree.with_name(tree.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        subprocess.run([UNSQUASHFS, "-no-progress", "-quiet", "-d", str(partial), str(blob)],
                       check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise ImageError(f"image {name}: unsquashfs failed: "
                         f"{exc.stderr.decode(errors='replace').strip()[-300:]}") from exc
    partial.rename(tree)


def unpacked_tree(node_dir: Path, manifest: ImageManifest) -> Path:
    """Where the image is unpacked on this node (it exists only once complete)."""
    return node_dir / "eager" / manifest.digest.removeprefix("sha256:")[:16]


@dataclass(frozen=True, slots=True)
class PulledImage:
    tree: Path
    # Timed apart because they wait on different things: the download on the link, the
    # unpack on the cores and the disk (it writes the whole unpacked tree).
    download_s: float  # the blob downloaded and its digest checked
    unpack_s: float


def pull(registry_url: str, manifest: ImageManifest, node_dir: Path) -> PulledImage:
    """Download, check and unpack the image under `node_dir`."""
    tree = unpacked_tree(node_dir, manifest)
    blob = tree.with_suffix(".sqfs")
    blob.parent.mkdir(parents=True, exist_ok=True)
    try:
        started = time.monotonic()
        download(registry_url, manifest, blob)
        downloaded = time.monotonic()
        unpack(blob, tree, manifest.name)
        unpacked = time.monotonic()
    finally:
        blob.unlink(missing_ok=True)  # the tree is what stays on the node
    return PulledImage(tree, downloaded - started, unpacked - downloaded)
