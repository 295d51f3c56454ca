"""An image's manifest: what a fetcher reads first, before any of the image's bytes.

It names the blob by its content digest and carries one digest per 4 MiB block, the unit the
lazy fetcher fetches and caches, so a block can be checked on its own (the lazy start checks
the first, which holds the file system's superblock, before it mounts anything).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stacks.errors import ImageError

BLOCK_SIZE = 4 * 1024 * 1024


class ImageContents(BaseModel):
    model_config = ConfigDict(extra="forbid")

    distributions: list[str] = Field(description="Python distributions packed")
    pruned: list[str] = Field(description="required by the engine, and never loaded by a "
                                          "traced replica or switched off by the engine "
                                          "here: left out")
    files: int
    unpacked_bytes: int
    model: str = Field(description="the model directory packed, as the stack serves it")
    read_order_files: int = Field(default=0, description="files packed first, in the order a "
                                  "traced start opened them")


class ImageManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="the stack the image runs")
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    size: int = Field(ge=1)
    block_size: int = BLOCK_SIZE
    block_digests: list[str]
    format: str = "squashfs+zstd"
    source_key: str = Field(description="what it was built from; a new key means a rebuild")
    built_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    build_s: float = 0.0
    contents: ImageContents

    @property
    def blob_file(self) -> str:
        return "image.sqfs"

    @property
    def blob_path(self) -> str:
        """Where the registry serves the blob."""
        return "/" + blob_name(self.digest)

    @classmethod
    def read(cls, path: Path) -> ImageManifest:
        try:
            return cls.model_validate_json(path.read_text())
        except FileNotFoundError as exc:
            raise ImageError(f"no image manifest at {path}; build the image first "
                             "(`harness image build STACK`)") from exc
        except ValidationError as exc:
            raise ImageError(f"{path}: not an image manifest ({exc.errors()[0]['msg']})") from exc

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(self.model_dump_json(indent=2) + "\n")
        partial.replace(path)


def blob_name(digest: str) -> str:
    return f"blobs/sha256/{digest.removeprefix('sha256:')}"


def digests(path: Path, block_size: int = BLOCK_SIZE) -> tuple[str, list[str]]:
    """The file's sha256 digest and each block's, in one pass."""
    whole = hashlib.sha256()
    blocks = []
    with path.open("rb") as handle:
        while block := handle.read(block_size):
            whole.update(block)
            blocks.append(hashlib.sha256(block).hexdigest())
    return f"sha256:{whole.hexdigest()}", blocks
