"""Where quantized copies of models live: `models/quantized/<source>-<scheme>-<granularity>-
<hash>`, one per source content, written on first use and reused after."""

from __future__ import annotations

from pathlib import Path

from stacks.models.quantize import Granularity, quantize_checkpoint, resolve_scheme, source_sha256
from stacks.spec import PROJECT_ROOT

QUANTIZED_DIR = PROJECT_ROOT / "models" / "quantized"
HASH_CHARS = 12


def quantized_dir(source: Path, scheme: str, granularity: Granularity) -> Path:
    chosen = resolve_scheme(scheme)
    digest = source_sha256(source)[:HASH_CHARS]
    return QUANTIZED_DIR / f"{source.name}-{chosen}-{granularity}-{digest}"


def ensure_quantized(source: Path, scheme: str, granularity: Granularity) -> Path:
    """The quantized copy of `source`, written now if this source has none yet."""
    target = quantized_dir(source, scheme, granularity)
    if not (target / "config.json").is_file():
        quantize_checkpoint(source, target, scheme, granularity)
    return target
