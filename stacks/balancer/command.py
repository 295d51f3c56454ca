"""The balancer's command line, from a stack's spec: its policy, ports, defences, limits and
the replicas it starts with (`python -m stacks.balancer --help` lists every option)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from stacks.spec import BalancerSpec, StackSpec


class Addressed(Protocol):
    """A replica as the balancer's command line names it."""

    @property
    def name(self) -> str: ...

    @property
    def url(self) -> str: ...


def balancer_argv(spec: StackSpec, replicas: Sequence[Addressed], port: int, admin_port: int,
                  events: Path | None = None) -> list[str]:
    argv = [sys.executable, "-m", "stacks.balancer", "--host", spec.balancer.host,
            "--port", str(port), "--admin-port", str(admin_port),
            *balancer_options(spec.balancer)]
    if events is not None:
        argv += ["--events", str(events)]
    for replica in replicas:
        argv += ["--replica", f"{replica.name}={replica.url}"]
    return argv


def balancer_options(balancer: BalancerSpec) -> list[str]:
    """What the spec says of its policy, defences and limits, wherever the balancer runs."""
    argv = ["--policy", balancer.policy, "--seed", str(balancer.seed),
            "--upstream-timeout-s", str(balancer.upstream_timeout_s),
            "--health-interval-s", str(balancer.health_interval_s),
            "--load-interval-s", str(balancer.load_interval_s)]
    if balancer.retry:
        argv.append("--retry")
    argv += defence_args(balancer)
    argv += ["--max-header-bytes", str(balancer.max_header_bytes),
             "--max-body-bytes", str(balancer.max_body_bytes),
             "--header-timeout-s", str(balancer.header_timeout_s)]
    if balancer.api_key_env:
        argv += ["--api-key-env", balancer.api_key_env]
    return argv


def defence_args(balancer: BalancerSpec) -> list[str]:
    """The balancer's options for the defences its spec turns on."""
    argv = []
    if balancer.outlier is not None:
        argv += ["--outlier-consecutive-5xx", str(balancer.outlier.consecutive_5xx),
                 "--outlier-base-ejection-s", str(balancer.outlier.base_ejection_s),
                 "--outlier-max-ejection-percent", str(balancer.outlier.max_ejection_percent)]
    if balancer.retry_budget is not None:
        argv += ["--retry-budget-percent", str(balancer.retry_budget.percent),
                 "--retry-min-concurrency", str(balancer.retry_budget.min_concurrency)]
    if balancer.per_try_timeout_s > 0:
        argv += ["--per-try-timeout-s", str(balancer.per_try_timeout_s)]
    if balancer.admission is not None:
        argv += ["--admission-queue-limit", str(balancer.admission.queue_limit),
                 "--admission-retry-after-s", str(balancer.admission.retry_after_s)]
    return argv
