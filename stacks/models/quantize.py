"""W8A8 quantization of a Hugging Face Llama checkpoint into the compressed-tensors format that
vLLM loads unmodified.

Every Linear layer but `lm_head` gets 8-bit weights with static scales — one per output
channel (`channel`, the optimized stack's choice) or one per tensor (`tensor`, for comparison)
— and dynamic per-token 8-bit activations; embeddings and norms stay in the source's dtype.

- `fp8`: compressed-tensors' FP8_DYNAMIC scheme (float8_e4m3), for H100-class GPUs.
- `int8`: its W8A8 scheme (symmetric int8), for CPUs: vLLM's x86 CPU backend has no FP8 W8A8.
- `auto`: fp8 on a CUDA GPU with FP8 support (compute capability ≥ 8.9), else int8.

Scales are computed from the weights alone (data-free: nothing static depends on
activations), with compressed-tensors' own `calculate_qparams`, and the checkpoint is written
by its `ModelCompressor`. Beside it, `quantization_report.json` records the source's hash and,
per layer, the weight reconstruction error with per-channel and per-tensor scales.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from stacks.errors import ModelError

Scheme = Literal["int8", "fp8"]
Granularity = Literal["channel", "tensor"]
REPORT = "quantization_report.json"
# What a checkpoint directory carries besides weights and config.json (save_pretrained writes
# those); copied as they are.
SIDE_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
              "special_tokens_map.json", "tokenizer.model")
IGNORED = ["lm_head"]  # the output projection stays in the source dtype, as is customary


@dataclass(frozen=True, slots=True)
class LayerError:
    """Relative weight reconstruction error, ‖W − deq(q(W))‖ / ‖W‖, of one Linear layer."""

    layer: str
    shape: tuple[int, int]
    channel: float
    tensor: float


@dataclass(frozen=True, slots=True)
class QuantizeReport:
    source: str
    source_sha256: str
    scheme: Scheme
    granularity: Granularity
    layers: list[LayerError]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "layers": [asdict(layer) for layer in self.layers]}


def source_sha256(directory: Path) -> str:
    """One hash over the files that make a checkpoint (names and bytes), so a changed source
    gives a new quantized model."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        if path.name in (REPORT, "build.json"):
            continue
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def resolve_scheme(scheme: str) -> Scheme:
    if scheme in ("int8", "fp8"):
        return scheme  # type: ignore[return-value]
    if scheme != "auto":
        raise ModelError(f"unknown scheme {scheme!r}: choose fp8, int8 or auto")
    import torch

    if torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 9):
        return "fp8"
    return "int8"


def weight_args(scheme: Scheme, granularity: Granularity) -> Any:
    from compressed_tensors.quantization import QuantizationArgs

    return QuantizationArgs(num_bits=8, type="float" if scheme == "fp8" else "int",
                            strategy=granularity, symmetric=True, dynamic=False)


def quantization_config(scheme: Scheme, granularity: Granularity) -> Any:
    """FP8_DYNAMIC or W8A8 (per-channel), or the same with per-tensor weight scales."""
    from compressed_tensors.quantization import (
        QuantizationArgs,
        QuantizationConfig,
        QuantizationScheme,
    )

    activations = QuantizationArgs(num_bits=8, type="float" if scheme == "fp8" else "int",
                                   strategy="token", symmetric=True, dynamic=True)
    group = QuantizationScheme(targets=["Linear"], weights=weight_args(scheme, granularity),
                               input_activations=activations)
    return QuantizationConfig(config_groups={"group_0": group}, ignore=IGNORED)


def weight_qparams(weight: Any, args: Any) -> tuple[Any, Any]:
    """Scale and zero point of a [out, in] weight: from each row's range (channel) or the
    whole tensor's."""
    import torch
    from compressed_tensors.quantization.utils import calculate_qparams

    values = weight.detach().to(torch.float32)
    if args.strategy == "channel":
        low, high = values.amin(dim=1, keepdim=True), values.amax(dim=1, keepdim=True)
    else:
        low, high = values.amin().reshape(1), values.amax().reshape(1)
    return calculate_qparams(low, high, args)


def reconstruction_error(weight: Any, args: Any) -> float:
    import torch
    from compressed_tensors.quantization.lifecycle.forward import fake_quantize

    values = weight.detach().to(torch.float32)
    scale, zero_point = weight_qparams(values, args)
    restored = fake_quantize(values, scale, zero_point, args)
    return float(torch.linalg.norm(values - restored) / torch.linalg.norm(values))


def quantize_checkpoint(source: Path, out: Path, scheme: str = "auto",
                        granularity: Granularity = "channel") -> QuantizeReport:
    """Write the quantized checkpoint to `out` (replaced only once complete)."""
    import torch
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import apply_quantization_config
    from transformers import AutoModelForCausalLM

    chosen = resolve_scheme(scheme)
    if not (source / "config.json").is_file():
        raise ModelError(f"{source} is not a model directory (no config.json)")
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.bfloat16)
    config = quantization_config(chosen, granularity)
    apply_quantization_config(model, config)
    layers = []
    for name, module in model.named_modules():
        if getattr(module, "quantization_scheme", None) is None:
            continue
        args = module.quantization_scheme.weights
        scale, zero_point = weight_qparams(module.weight, args)
        module.weight_scale.data = scale.to(module.weight_scale.dtype)
        if hasattr(module, "weight_zero_point"):
            module.weight_zero_point.data = zero_point.to(module.weight_zero_point.dtype)
        layers.append(LayerError(
            name, tuple(module.weight.shape),  # type: ignore[arg-type]
            reconstruction_error(module.weight, weight_args(chosen, "channel")),
            reconstruction_error(module.weight, weight_args(chosen, "tensor"))))
    if not layers:
        raise ModelError(f"{source}: no Linear layer to quantize")
    compressor = ModelCompressor.from_pretrained_model(
        model, quantization_format="float-quantized" if chosen == "fp8" else "int-quantized")
    compressor.compress_model(model)
    report = QuantizeReport(str(source), source_sha256(source), chosen, granularity, layers)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(staging)
        compressor.update_config(str(staging))
        for name in SIDE_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, staging / name)
        (staging / REPORT).write_text(json.dumps(report.to_json(), indent=2))
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report
