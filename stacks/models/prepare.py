"""What a stack serves, made ready: the one door from outside into `stacks.models`.

`prepare(spec)` returns the spec as the launcher runs it: the model directory exists (the
embedded model is built on first use) and, for a quantized engine, `engine.model` points at
the W8A8 copy, written on first use and cached by the source's content. `Stack.start()` calls
it, so a stack spec deploys itself whoever launches it.

The harness reaches models only through this module: `model_dir` for a workload's tokenizer,
and the build and quantize entry points behind `harness model build|quantize`.
"""

from __future__ import annotations

from stacks.models.cache import ensure_quantized
from stacks.models.quantize import QuantizeReport, quantize_checkpoint
from stacks.models.tiny import DEFAULT_MODEL_DIR, TinyModelConfig, build_tiny_model
from stacks.models.tiny import ensure_model_dir as model_dir
from stacks.spec import StackSpec

__all__ = ["DEFAULT_MODEL_DIR", "QuantizeReport", "TinyModelConfig", "build_tiny_model",
           "model_dir", "prepare", "quantize_checkpoint"]


def prepare(spec: StackSpec) -> StackSpec:
    """The spec as the launcher should run it (see the module docstring)."""
    source = model_dir(spec.engine.model_path(), "config.json",
                       f"stack {spec.name}: engine.model")
    quantization = spec.engine.quantization
    if quantization is None:
        return spec
    served = ensure_quantized(source, quantization.scheme, quantization.granularity)
    engine = spec.engine.model_copy(update={"model": str(served), "quantization": None})
    return spec.model_copy(update={"engine": engine})
