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

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

from pydantic import Field

from harness.client import answering, post_json
from harness.errors import EndpointError
from harness.experiments.target import Spec, Target
from harness.experiments.trial import Experiment, ExperimentConfig, TrialObserver
from harness.report.results import QualityResult
from harness.workload.schedule import build_schedule, load_tokenizer
from harness.workload.spec import load_workload_spec


class QualityConfig(ExperimentConfig):
    stacks: list[str] = Field(default=["diy", "optimized"], min_length=2)
    trials: Literal[1] = 1  # greedy answers are deterministic: one trial says it all
    workers: Literal[0] = 0
    ablate: Literal[False] = False
    prompts: int = Field(default=32, ge=1, le=10_000)
    max_tokens: int = Field(default=32, ge=1, le=4096)
    min_agreement: float = Field(default=1.0, ge=0, le=1)
    max_logprob_diff: float = Field(default=math.inf, ge=0)


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


def greedy_answer(target: Target, prompt: str, max_tokens: int) -> Answer:
    body = {"model": target.model, "prompt": prompt, "max_tokens": max_tokens,
            "temperature": 0, "logprobs": 1, "seed": 0}
    url = f"{target.endpoint}/v1/completions"
    response = post_json(url, body, target.headers(), timeout_s=120)
    with answering(url):
        logprobs = response.json()["choices"][0].get("logprobs") or {}
        tokens, values = logprobs.get("tokens"), logprobs.get("token_logprobs")
    if not tokens or values is None:
        raise EndpointError(f"{url} answered without token logprobs; the quality check needs "
                            "an OpenAI-compatible server that returns `logprobs`")
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


class QualityObserver(TrialObserver, Protocol):
    def answered(self, stack: str, done: int, total: int) -> None: ...


class QualityExperiment(Experiment[QualityConfig, QualityObserver]):
    """Each stack in turn answers the same greedy prompts; the others are compared with the
    first (the baseline)."""

    kind = "quality"
    summary_file = "quality.json"

    def __init__(self, config: QualityConfig, observer: QualityObserver) -> None:
        super().__init__(config, load_workload_spec(config.workload), "quality", observer)
        self.prompts = quality_prompts(config.workload, config.prompts)
        self.answers: dict[str, list[Answer]] = {}
        self.write_inputs()

    def default_experiment(self) -> str:
        return f"{self.workload.name}-quality"

    def measure(self, spec: Spec, trial: int, target: Target, trial_dir: Path) -> None:
        answers = self.answers.setdefault(spec.name, [])
        for index, prompt in enumerate(self.prompts):
            answers.append(greedy_answer(target, prompt, self.config.max_tokens))
            self.observer.answered(spec.name, index + 1, len(self.prompts))

    def summary(self) -> QualityResult:
        config = self.config
        comparisons = [compare(self.answers[self.baseline], answers, name, self.baseline,
                               config.min_agreement, config.max_logprob_diff)
                       for name, answers in self.answers.items() if name != self.baseline]
        return QualityResult.model_validate({
            "kind": "quality", "run_id": self.run_info.run_id,
            "experiment": self.run_info.experiment,
            "finished": datetime.now().astimezone().isoformat(timespec="seconds"),
            "config": {**config.model_dump(mode="json", include={
                "stacks", "workload", "prompts", "max_tokens", "min_agreement", "out",
                "experiment"}), "max_logprob_diff": None if math.isinf(config.max_logprob_diff)
                else config.max_logprob_diff},
            "environment": self.run_info.environment, "baseline": self.baseline,
            "comparisons": [asdict(agreement) for agreement in comparisons],
            "prompts": self.prompts,
            "answers": {name: [asdict(answer) for answer in answers]
                        for name, answers in self.answers.items()}})


def run_quality(config: QualityConfig, observer: QualityObserver) -> Path:
    """Write `quality.json` and return its path."""
    return QualityExperiment(config, observer).run()
