"""`harness quality`: does the optimized stack answer like the baseline?

The same prompts (writing-assistant tasks from the workload's seeded generator) go to each
stack in turn, greedy (`temperature: 0`), with the log-probability of every chosen token
(`logprobs: 1`). Against the baseline (the first stack), per other stack:

- `token_agreement`: of all positions the baseline generated, the fraction where the other
  stack chose the same token *and* every earlier token matched (a divergence ends agreement
  for the rest of that answer: later tokens continue a different text);
- `first_divergence`: per prompt, the position of the first differing token (the answer's
  length when none differs); its mean and minimum;
- `logprob_diff_mean` / `_max`: |Δ log p| of the chosen tokens over the agreeing positions —
  how much the quantized model's confidence moved where it still agrees;
- `exact_match_rate`: answers identical token for token.

Verdict: PASS when `token_agreement >= min_agreement` (default 1.0: the seed's bar, zero quality
regression) and `logprob_diff_max <= max_logprob_diff` (default: no limit).
"""

from __future__ import annotations

import json
import math
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from harness.errors import HarnessError
from harness.schedule import build_schedule, load_tokenizer
from harness.workload import load_workload_spec


class QualityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stacks: list[str] = Field(default=["diy", "optimized"], min_length=2)
    workload: str = "writing_assistant"
    prompts: int = Field(default=32, ge=1, le=10_000)
    max_tokens: int = Field(default=32, ge=1, le=4096)
    min_agreement: float = Field(default=1.0, ge=0, le=1)
    max_logprob_diff: float = Field(default=math.inf, ge=0)
    out: Path | None = None
    experiment: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    tokens: list[str]
    logprobs: list[float]


@dataclass(frozen=True, slots=True)
class Agreement:
    stack: str
    baseline: str
    prompts: int
    token_agreement: float
    exact_match_rate: float
    first_divergence_mean: float
    first_divergence_min: int
    logprob_diff_mean: float
    logprob_diff_max: float
    passed: bool


def quality_prompts(workload: str, count: int) -> list[str]:
    """The first `count` prompts of the workload's seeded schedule."""
    rate = 10.0  # only the prompts matter here: a steady schedule just long enough
    sized = load_workload_spec(workload).with_overrides(rate, count / rate + 1)
    entries = build_schedule(sized, load_tokenizer(sized.tokenizer_path())).entries
    return [entry.prompt for entry in entries[:count]]


def greedy_answer(endpoint: str, model: str, prompt: str, max_tokens: int,
                  headers: dict[str, str] | None = None) -> Answer:
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
            "logprobs": 1, "seed": 0}
    request = urllib.request.Request(
        f"{endpoint}/v1/completions", data=json.dumps(body).encode(),
        headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            choice = json.load(response)["choices"][0]
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise HarnessError(f"{endpoint} gave no greedy completion with logprobs: {exc!r}") \
            from exc
    logprobs = choice.get("logprobs") or {}
    tokens, values = logprobs.get("tokens"), logprobs.get("token_logprobs")
    if not tokens or values is None:
        raise HarnessError(f"{endpoint} answered without token logprobs; the quality check "
                           "needs an OpenAI-compatible server that returns `logprobs`")
    return Answer(list(tokens), [float(v) for v in values])


def compare(baseline: list[Answer], other: list[Answer], stack: str, baseline_name: str,
            min_agreement: float, max_logprob_diff: float) -> Agreement:
    agreed = total = exact = 0
    divergences: list[int] = []
    diffs: list[float] = []
    for base, answer in zip(baseline, other, strict=True):
        position = 0
        while (position < len(base.tokens) and position < len(answer.tokens)
               and base.tokens[position] == answer.tokens[position]):
            diffs.append(abs(base.logprobs[position] - answer.logprobs[position]))
            position += 1
        same = position == len(base.tokens) == len(answer.tokens)
        exact += same
        divergences.append(position)
        agreed += position
        total += len(base.tokens)
    agreement = agreed / total if total else math.nan
    diff_max = max(diffs) if diffs else math.nan
    passed = agreement >= min_agreement and not (diffs and diff_max > max_logprob_diff)
    return Agreement(
        stack=stack, baseline=baseline_name, prompts=len(baseline),
        token_agreement=agreement, exact_match_rate=exact / len(baseline),
        first_divergence_mean=sum(divergences) / len(divergences),
        first_divergence_min=min(divergences),
        logprob_diff_mean=sum(diffs) / len(diffs) if diffs else math.nan,
        logprob_diff_max=diff_max, passed=passed)


def agreement_json(agreement: Agreement) -> dict[str, Any]:
    return {key: (None if isinstance(value, float) and math.isnan(value) else value)
            for key, value in asdict(agreement).items()}
