"""`python -m stacks.balancer --replica NAME=URL ... --policy p2c --port P`

Runs one balancer process until SIGINT or SIGTERM, then drains briefly and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from stacks.balancer.defences import Admission, OutlierDetection, RetryBudget
from stacks.balancer.discovery import parse_target
from stacks.balancer.limits import Limits
from stacks.balancer.membership import parse_replica_url
from stacks.balancer.policies import POLICIES
from stacks.balancer.server import Balancer, BalancerConfig


def parse_args(argv: list[str]) -> BalancerConfig:
    parser = argparse.ArgumentParser(prog="python -m stacks.balancer", description=__doc__)
    parser.add_argument("--replica", action="append", default=[], metavar="NAME=URL",
                        help="a replica, e.g. replica-0=http://127.0.0.1:8001 (repeat)")
    parser.add_argument("--discover", default=None, metavar="HOST:PORT",
                        help="every address HOST resolves to is a replica on PORT, followed "
                             "as it changes (a Kubernetes headless Service)")
    parser.add_argument("--discover-interval-s", type=float, default=5.0,
                        help="resolve the --discover name this often")
    parser.add_argument("--policy", default="round_robin", choices=sorted(POLICIES))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--admin-port", type=int, default=None, metavar="PORT",
                        help="serve the membership admin interface on 127.0.0.1:PORT "
                             "(0: any free port, logged at start; unset: no admin interface)")
    parser.add_argument("--events", type=Path, default=None, metavar="FILE",
                        help="append each membership change (ejected, in rotation, added, "
                             "draining, removed) to FILE as a JSON line with its wall-clock time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--upstream-timeout-s", type=float, default=600.0)
    parser.add_argument("--health-interval-s", type=float, default=0.0,
                        help="probe /health this often; eject failing replicas (0: off)")
    parser.add_argument("--load-interval-s", type=float, default=0.0,
                        help="scrape replicas' vLLM queue metrics this often (0: off)")
    parser.add_argument("--retry", action="store_true",
                        help="retry once elsewhere a refused connection, a 502/503 or an "
                             "attempt past --per-try-timeout-s that reached no client byte")
    add_defence_arguments(parser)
    defaults = Limits()
    parser.add_argument("--max-header-bytes", type=int, default=defaults.max_header_bytes,
                        help="request line and headers larger than this: 431")
    parser.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes,
                        help="request bodies larger than this: 413")
    parser.add_argument("--header-timeout-s", type=float, default=defaults.header_timeout_s,
                        help="headers not complete this long after a request's first byte: 408")
    parser.add_argument("--api-key-env", default="", metavar="NAME",
                        help="environment variable holding the key clients must send as "
                             "`authorization: Bearer <key>` (401 otherwise); unset: no key")
    args = parser.parse_args(argv)
    api_key = ""
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env, "")
        if not api_key:
            parser.error(f"--api-key-env {args.api_key_env}: that variable is unset or empty")
    replicas = given_replicas(parser, args)
    return BalancerConfig(
        replicas=replicas, policy=args.policy, host=args.host, port=args.port,
        admin_port=args.admin_port, events_path=args.events,
        seed=args.seed, upstream_timeout_s=args.upstream_timeout_s,
        health_interval_s=args.health_interval_s, load_interval_s=args.load_interval_s,
        retry=args.retry, api_key=api_key, **defences(args),
        discover=args.discover, discover_interval_s=args.discover_interval_s,
        limits=Limits(args.max_header_bytes, args.max_body_bytes, args.header_timeout_s),
    )


def given_replicas(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """The `--replica` options as {name: URL}, once `--discover` is checked too: one of them
    must say where the replicas are."""
    replicas: dict[str, str] = {}
    for item in args.replica:
        name, sep, url = item.partition("=")
        if not sep or not name or not url:
            parser.error(f"--replica wants NAME=URL, got {item!r}")
        if name in replicas:
            parser.error(f"replica name {name!r} given twice")
        try:
            parse_replica_url(url)
        except ValueError as exc:
            parser.error(str(exc))
        replicas[name] = url
    if not replicas and not args.discover:
        parser.error("give the replicas: --replica NAME=URL (repeat) or --discover HOST:PORT")
    if args.discover_interval_s <= 0:
        parser.error("--discover-interval-s must be positive")
    if args.discover:
        try:
            parse_target(args.discover)
        except ValueError as exc:
            parser.error(str(exc))
    return replicas


def add_defence_arguments(parser: argparse.ArgumentParser) -> None:
    """`stacks.balancer.defences`, each off unless its first option is given."""
    outlier, budget = OutlierDetection(), RetryBudget()
    parser.add_argument("--outlier-consecutive-5xx", type=int, default=0, metavar="N",
                        help="eject a replica after N failed attempts in a row (Envoy: 5; "
                             "0: no outlier detection)")
    parser.add_argument("--outlier-base-ejection-s", type=float,
                        default=outlier.base_ejection_s,
                        help="... for this × the times it was ejected (Envoy: 30)")
    parser.add_argument("--outlier-max-ejection-percent", type=float,
                        default=outlier.max_ejection_percent,
                        help="... unless more than this %% would be out (Envoy: 10; one "
                             "replica may always go)")
    parser.add_argument("--retry-budget-percent", type=float, default=0.0,
                        help="retries in flight stay under this %% of requests in flight "
                             "(Envoy: 20; 0: no budget)")
    parser.add_argument("--retry-min-concurrency", type=int,
                        default=budget.min_concurrency,
                        help="... or under this many (Envoy: 3)")
    parser.add_argument("--per-try-timeout-s", type=float, default=0.0,
                        help="abandon an attempt not answering by then (0: off)")
    parser.add_argument("--admission-queue-limit", type=int, default=0,
                        help="answer 503 with Retry-After once every serving replica has this "
                             "many requests (0: off)")
    parser.add_argument("--admission-retry-after-s", type=int, default=1)


def defences(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "outlier": OutlierDetection(args.outlier_consecutive_5xx, args.outlier_base_ejection_s,
                                    args.outlier_max_ejection_percent)
        if args.outlier_consecutive_5xx > 0 else None,
        "retry_budget": RetryBudget(args.retry_budget_percent, args.retry_min_concurrency)
        if args.retry_budget_percent > 0 else None,
        "per_try_timeout_s": args.per_try_timeout_s,
        "admission": Admission(args.admission_queue_limit, args.admission_retry_after_s)
        if args.admission_queue_limit > 0 else None,
    }


async def run(config: BalancerConfig) -> None:
    balancer = Balancer(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, balancer.should_exit.set)
    await balancer.serve()


def main(argv: list[str] | None = None) -> None:
    config = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.INFO)
    try:
        import uvloop
    except ImportError:  # the plain asyncio loop works, only slower
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(run(config))
    except OSError as exc:  # most often: the port is taken
        sys.exit(f"balancer: cannot listen on {config.host}:{config.port}: {exc}")


if __name__ == "__main__":
    main()
