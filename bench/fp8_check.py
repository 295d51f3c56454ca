"""Check an FP8 per-channel checkpoint layer by layer against its bf16 source: error and time.

For every quantized Linear layer, with random activations `x` (`--tokens` rows):
- on a CUDA GPU with FP8 (compute capability ≥ 8.9, e.g. H100): `torch._scaled_mm` on the FP8
  weights with their row-wise (per-output-channel) scales and per-token FP8 activations, as
  vLLM runs FP8_DYNAMIC, against `x @ W.T` in bf16;
- elsewhere (CPUs have no FP8 matmul): the weights dequantized (`fp8 × scale`) and multiplied in
  float32, against the bf16 weights in float32.

Per layer it prints the weight error ‖W − deq(Wq)‖/‖W‖, the output error ‖y − y_ref‖/‖y_ref‖,
and the time of both products.

    .venv/bin/harness model quantize models/tiny --out /tmp/tiny-fp8 --scheme fp8
    .venv/bin/python bench/fp8_check.py models/tiny /tmp/tiny-fp8 [--tokens 256] [--repeats 20]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from safetensors import safe_open

FP8_MAX = 448.0  # float8_e4m3fn


def tensors(directory: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(directory / "model.safetensors"), "pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118


def timed(product: Callable[[], torch.Tensor], repeats: int, device: str) -> tuple[
        torch.Tensor, float]:
    """The product and its median time in milliseconds."""
    result = product()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = product()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return result, sorted(times)[len(times) // 2]


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.norm(a.float() - b.float()) / torch.linalg.norm(b.float()))


def gpu_fp8_product(x: torch.Tensor, weight: torch.Tensor,
                    scale: torch.Tensor) -> Callable[[], torch.Tensor]:
    """Per-token FP8 activations × per-channel FP8 weights on the tensor cores."""
    weight_t = weight.t()  # column-major (K, N), as _scaled_mm wants its second operand
    scale_b = scale.float().reshape(1, -1)

    def product() -> torch.Tensor:
        scale_a = (x.abs().amax(dim=1, keepdim=True).float() / FP8_MAX).clamp(min=1e-12)
        x_fp8 = (x.float() / scale_a).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
        return torch._scaled_mm(x_fp8, weight_t, scale_a=scale_a, scale_b=scale_b,
                                out_dtype=torch.bfloat16)

    return product


def products(x: torch.Tensor, reference: torch.Tensor, weight: torch.Tensor,
             scale: torch.Tensor, on_gpu: bool) -> tuple[Callable[[], torch.Tensor],
                                                          Callable[[], torch.Tensor]]:
    """(bf16 reference product, FP8 product) for one layer."""
    if on_gpu:
        def bf16() -> torch.Tensor:
            return x @ reference.t()

        return bf16, gpu_fp8_product(x, weight, scale)

    def bf16_cpu() -> torch.Tensor:
        return x.float() @ reference.float().t()

    def fp8_cpu() -> torch.Tensor:
        return x.float() @ (weight.float() * scale.float()).t()

    return bf16_cpu, fp8_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="the bf16 model directory")
    parser.add_argument("fp8", type=Path, help="its FP8 checkpoint (harness model quantize)")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    options = parser.parse_args()
    config = json.loads((options.fp8 / "config.json").read_text())["quantization_config"]
    weights = config["config_groups"]["group_0"]["weights"]
    if weights["type"] != "float":
        raise SystemExit(f"{options.fp8} is not an FP8 checkpoint (weights type "
                         f"{weights['type']}); write one with --scheme fp8")
    on_gpu = torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 9)
    device = "cuda" if on_gpu else "cpu"
    source, quantized = tensors(options.source), tensors(options.fp8)
    generator = torch.Generator().manual_seed(0)
    method = "torch._scaled_mm, row-wise scales" if on_gpu else "dequantized, float32 matmul"
    table = Table(title=f"FP8 per-{weights['strategy']} vs bf16, {options.tokens} tokens, "
                        f"on {device} ({method})")
    for column in ("layer", "weight error", "output error", "bf16 ms", "fp8 ms"):
        table.add_column(column, justify="left" if column == "layer" else "right")
    for key in sorted(k for k in quantized if k.endswith(".weight_scale")):
        name = key.removesuffix(".weight_scale")
        weight_fp8 = quantized[f"{name}.weight"].to(device)
        scale = quantized[key].to(device)
        reference = source[f"{name}.weight"].to(device)
        x = torch.randn(options.tokens, reference.shape[1], generator=generator).to(
            device, torch.bfloat16)
        dequantized = weight_fp8.float() * scale.float()
        bf16, fp8 = products(x, reference, weight_fp8, scale, on_gpu)
        y_ref, bf16_ms = timed(bf16, options.repeats, device)
        y, fp8_ms = timed(fp8, options.repeats, device)
        table.add_row(name, f"{relative(dequantized, reference):.3%}",
                      f"{relative(y, y_ref):.3%}", f"{bf16_ms:.3f}", f"{fp8_ms:.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()
