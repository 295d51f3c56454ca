"""`harness quality` end to end: each stack up in turn, the same greedy prompts, the
comparison saved, then logged to MLflow.

    results/<time>-quality/
      quality.json     config, prompts, every stack's tokens and log-probs, the comparison
      <stack>/logs/    replica and balancer logs
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.environment import capture_environment
from harness.quality import (
    Answer,
    QualityConfig,
    agreement_json,
    compare,
    greedy_answer,
    quality_prompts,
)
from harness.run import auth_headers, default_out_dir, fresh_out_dir, load_stacks, serving
from stacks.launcher import StartObserver


def run_quality(config: QualityConfig, observer: Any) -> Path:
    """Write `quality.json` and return its path. `observer.stack_starting(name)` gives a
    StartObserver; `observer.answered(stack, done, total)` follows the prompts."""
    stacks = load_stacks(config.stacks)
    out = fresh_out_dir(config.out or default_out_dir("quality"))
    prompts = quality_prompts(config.workload, config.prompts)
    answers: dict[str, list[Answer]] = {}
    for spec in stacks:
        starting: StartObserver = observer.stack_starting(spec.name)
        with serving(spec, out / spec.name / "logs", starting) as target:
            headers = auth_headers(spec.name, target.api_key_env)
            answers[spec.name] = []
            for index, prompt in enumerate(prompts):
                answers[spec.name].append(greedy_answer(target.endpoint, target.model, prompt,
                                                        config.max_tokens, headers))
                observer.answered(spec.name, index + 1, len(prompts))
    baseline = stacks[0].name
    comparisons = [compare(answers[baseline], answers[spec.name], spec.name, baseline,
                           config.min_agreement, config.max_logprob_diff)
                   for spec in stacks[1:]]
    path = out / "quality.json"
    path.write_text(json.dumps({
        "kind": "quality", "run_id": uuid.uuid4().hex,
        "experiment": config.experiment or f"{config.workload}-quality",
        "finished": datetime.now().astimezone().isoformat(timespec="seconds"),
        "config": {**config.model_dump(mode="json"),
                   "max_logprob_diff": None if config.max_logprob_diff == float("inf")
                   else config.max_logprob_diff},
        "environment": capture_environment(),
        "baseline": baseline,
        "comparisons": [agreement_json(agreement) for agreement in comparisons],
        "prompts": prompts,
        "answers": {name: [{"tokens": a.tokens, "logprobs": a.logprobs} for a in stack_answers]
                    for name, stack_answers in answers.items()},
    }, indent=1))
    return path
