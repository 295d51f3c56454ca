"""FP8 per-channel GEMM against bf16 at the layer shapes of Llama 1B and 8B: time and error.

The mechanism behind the seed's +30 % per pod: W8A8 FP8 with per-output-channel (row-wise)
weight scales and per-token activation scales, as vLLM runs `FP8_DYNAMIC` on an H100-class
GPU, through `torch._scaled_mm`. For each linear layer of a decoder block (qkv, o, gate_up,
down) and each batch of tokens (1 … 512), it times:

- `bf16`: `x @ W.T` in bf16;
- `fp8 per-channel`: x quantized per token (its scale computed in the timed call, as vLLM
  does), `_scaled_mm` with the row-wise weight scales, bf16 out;
- `fp8 per-tensor`: one scale for x and one for W, for comparison;

and the output error ‖y − y_ref‖ / ‖y_ref‖ of each against a float32 reference.

Only torch and the standard library are imported: it runs as it is on a GPU machine that has
torch and nothing of this project. It needs a GPU with FP8 (compute capability ≥ 8.9: H100,
H200, L4, L40S). Elsewhere `--emulate` checks the script itself: the same steps with the
products in float32 on the CPU (errors meaningful, times not).

    python bench/fp8_gemm.py --out DIR                  # both models, batches 1..512
    python bench/fp8_gemm.py --models llama-1b --batches 1,64 --emulate --repeats 2
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max
# (name, out_features, in_features) of one decoder block's linear layers, from the models'
# configs: Llama 3.2 1B (hidden 2048, 32 heads, 8 KV heads of 64, MLP 8192) and Llama 3.1 8B
# (hidden 4096, 32 heads, 8 KV heads of 128, MLP 14336). qkv and gate_up are fused, as vLLM
# runs them.
SHAPES: dict[str, list[tuple[str, int, int]]] = {
    "llama-1b": [("qkv", 2048 + 2 * 512, 2048), ("o", 2048, 2048),
                 ("gate_up", 2 * 8192, 2048), ("down", 2048, 8192)],
    "llama-8b": [("qkv", 4096 + 2 * 1024, 4096), ("o", 4096, 4096),
                 ("gate_up", 2 * 14336, 4096), ("down", 4096, 14336)],
}
BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]


def per_row_fp8(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """FP8 values and one float32 scale per row (a token of x, an output channel of W)."""
    scale = tensor.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12) / FP8_MAX
    return (tensor.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8), scale


def per_tensor_fp8(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scale = tensor.abs().amax().float().clamp(min=1e-12) / FP8_MAX
    return (tensor.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8), scale.reshape(1, 1)


def scaled_mm(x8: torch.Tensor, x_scale: torch.Tensor, w8: torch.Tensor,
              w_scale: torch.Tensor, emulate: bool) -> torch.Tensor:
    """y = (x8 · x_scale) @ (w8 · w_scale).T in bf16. `_scaled_mm` wants its second operand
    column-major: `w8.t()` of a row-major W is."""
    if emulate:
        return ((x8.float() * x_scale) @ (w8.float() * w_scale).t()).to(torch.bfloat16)
    if x_scale.numel() == 1 and w_scale.numel() == 1:  # tensor-wise: two scalar scales
        return torch._scaled_mm(x8, w8.t(), scale_a=x_scale.reshape(()),
                                scale_b=w_scale.reshape(()), out_dtype=torch.bfloat16)
    # Row-wise: scale_a one per token (M, 1), scale_b one per output channel (1, N).
    return torch._scaled_mm(x8, w8.t(), scale_a=x_scale, scale_b=w_scale.t(),
                            out_dtype=torch.bfloat16)


def timed(product: Callable[[], torch.Tensor], repeats: int, cuda: bool) -> tuple[
        torch.Tensor, float]:
    """The product and its median time in microseconds (CUDA events on a GPU)."""
    result = product()  # warm-up: kernel selection, caches
    times = []
    for _ in range(repeats):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(
                enable_timing=True)
            start.record()
            result = product()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) * 1000)
        else:
            begin = time.perf_counter()
            result = product()
            times.append((time.perf_counter() - begin) * 1e6)
    return result, statistics.median(times)


def relative_error(output: torch.Tensor, reference: torch.Tensor) -> float:
    return float((output.float() - reference).norm() / reference.norm())


def measure(out_features: int, in_features: int, batch: int, repeats: int, device: str,
            emulate: bool, generator: torch.Generator) -> dict[str, float]:
    cuda = device == "cuda"
    # Weights like a trained layer's (≈ N(0, 1/in)), with a few outlier channels, which
    # per-channel scales exist for; activations with a few large features, as LLMs have.
    weight = torch.randn(out_features, in_features, generator=generator) / math.sqrt(
        in_features)
    weight[:: max(1, out_features // 64)] *= 8
    x = torch.randn(batch, in_features, generator=generator)
    x[:, :: max(1, in_features // 128)] *= 10
    weight, x = weight.to(device, torch.bfloat16), x.to(device, torch.bfloat16)
    reference = x.float() @ weight.float().t()
    w8, w_scale = per_row_fp8(weight)
    w8t, wt_scale = per_tensor_fp8(weight)

    def channel() -> torch.Tensor:
        x8, x_scale = per_row_fp8(x)
        return scaled_mm(x8, x_scale, w8, w_scale, emulate)

    def tensor() -> torch.Tensor:
        x8, x_scale = per_tensor_fp8(x)
        return scaled_mm(x8, x_scale, w8t, wt_scale, emulate)

    bf16, bf16_us = timed(lambda: x @ weight.t(), repeats, cuda)
    fp8_channel, channel_us = timed(channel, repeats, cuda)
    fp8_tensor, tensor_us = timed(tensor, repeats, cuda)
    return {"bf16_us": bf16_us, "fp8_channel_us": channel_us, "fp8_tensor_us": tensor_us,
            "speedup_channel": bf16_us / channel_us, "speedup_tensor": bf16_us / tensor_us,
            "bf16_error": relative_error(bf16, reference),
            "fp8_channel_error": relative_error(fp8_channel, reference),
            "fp8_tensor_error": relative_error(fp8_tensor, reference)}


def block_totals(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Per model and batch, the four layers together: a decoder block's GEMM time."""
    totals: dict[tuple[object, object], dict[str, float]] = {}
    for row in rows:
        total = totals.setdefault((row["model"], row["batch"]), {"bf16_us": 0.0,
                                                                 "fp8_channel_us": 0.0})
        total["bf16_us"] += float(row["bf16_us"])  # type: ignore[arg-type]
        total["fp8_channel_us"] += float(row["fp8_channel_us"])  # type: ignore[arg-type]
    return [{"model": model, "batch": batch, **total,
             "speedup_channel": total["bf16_us"] / total["fp8_channel_us"]}
            for (model, batch), total in totals.items()]


def environment(device: str) -> dict[str, object]:
    found: dict[str, object] = {"torch": torch.__version__, "python": platform.python_version(),
                                "device": device}
    if device == "cuda":
        found["gpu"] = torch.cuda.get_device_name(0)
        found["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
        found["cuda"] = torch.version.cuda
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(SHAPES))
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)))
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--emulate", action="store_true",
                        help="float32 products on the CPU: checks the script, not the GPU")
    parser.add_argument("--out", type=Path, help="folder for fp8_gemm.json")
    args = parser.parse_args(argv)
    models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in models if name not in SHAPES]
    if unknown:
        print(f"error: unknown model {unknown[0]!r}; known: {', '.join(SHAPES)}",
              file=sys.stderr)
        return 2
    batches = [int(value) for value in args.batches.split(",")]
    device = "cpu" if args.emulate else "cuda"
    if not args.emulate and not (torch.cuda.is_available()
                                 and torch.cuda.get_device_capability(0) >= (8, 9)):
        print("error: no CUDA GPU with FP8 (compute capability ≥ 8.9) here; run with "
              "--emulate to check the script on the CPU", file=sys.stderr)
        return 2
    generator = torch.Generator().manual_seed(0)
    rows: list[dict[str, object]] = []
    print(f"{'model':9} {'layer':8} {'N×K':>12} {'batch':>5} {'bf16 µs':>9} {'fp8/ch µs':>9} "
          f"{'×':>5} {'fp8/t µs':>9} {'err bf16':>9} {'err ch':>9} {'err t':>9}")
    for model in models:
        for layer, out_features, in_features in SHAPES[model]:
            for batch in batches:
                figures = measure(out_features, in_features, batch, args.repeats, device,
                                  args.emulate, generator)
                rows.append({"model": model, "layer": layer, "out_features": out_features,
                             "in_features": in_features, "batch": batch, **figures})
                print(f"{model:9} {layer:8} {f'{out_features}×{in_features}':>12} "
                      f"{batch:>5} {figures['bf16_us']:>9.1f} {figures['fp8_channel_us']:>9.1f} "
                      f"{figures['speedup_channel']:>5.2f} {figures['fp8_tensor_us']:>9.1f} "
                      f"{figures['bf16_error']:>9.2e} {figures['fp8_channel_error']:>9.2e} "
                      f"{figures['fp8_tensor_error']:>9.2e}", flush=True)
    totals = block_totals(rows)
    for total in totals:
        print(f"{total['model']} batch {total['batch']}: one block's GEMMs bf16 "
              f"{total['bf16_us']:.0f} µs, fp8 per-channel {total['fp8_channel_us']:.0f} µs, "
              f"{total['speedup_channel']:.2f}×")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "fp8_gemm.json").write_text(json.dumps(
            {"environment": environment(device), "emulated": args.emulate,
             "repeats": args.repeats, "layers": rows, "blocks": totals}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
