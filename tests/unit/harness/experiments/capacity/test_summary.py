"""What a capacity run records of each probe for an autoscaler: requests in flight."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.experiments.capacity.summary import Judging, concurrency_per_replica, judge_probe
from harness.measure.metrics import Window
from harness.measure.records import DTYPES
from harness.report.results import ProbeRow


def probe(trial: int, rate_qps: float, passed: bool, concurrency: float | None) -> ProbeRow:
    return ProbeRow.model_validate({
        "trial": trial, "probe": 1, "rate_qps": rate_qps, "passed": passed,
        "stopped_early": None, "drained_s": 0, "requests": 1, "ok_requests": 1,
        "failed_requests": 0, "success_rate": 1, "offered_qps": rate_qps,
        "throughput_qps": rate_qps, "goodput_qps": rate_qps, "latency_p50_s": 0.1,
        "latency_p90_s": 0.1, "latency_p99_s": 0.1, "service_p99_s": 0.1,
        "send_lag_p99_s": 0, "concurrency": concurrency, "errors": {},
        "schedule_sha256": "x", "schedule": "s", "records": "r"})


def test_a_probe_counts_its_requests_in_flight_by_littles_law() -> None:
    # 10 requests finished in a 5 s window, each 0.5 s from send to answer: 2 QPS × 0.5 s.
    rows = [{"index": k, "scheduled_s": 0.5 + 0.5 * k, "sent_s": 0.5 + 0.5 * k,
             "done_s": 1.0 + 0.5 * k, "first_byte_s": None, "status": 200, "ok": True,
             "error": None, "prompt_tokens": 5, "output_tokens": 5, "replica": "r0"}
            for k in range(10)]
    frame = pd.DataFrame(rows).astype(DTYPES)
    row = judge_probe(frame, Judging(Window(1.0, 5.0), 1.0, 0.99, False), None, trial=1,
                      probe=1, rate_qps=2.0, drained_s=0.0, schedule_sha256="x",
                      schedule="s", records="r")
    assert row.throughput_qps == 2.0
    assert row.concurrency == pytest.approx(1.0)


def test_concurrency_at_capacity_is_the_highest_passing_probe_per_replica() -> None:
    probes = [probe(1, 10, True, 4.0), probe(1, 20, True, 10.0), probe(1, 30, False, 40.0),
              probe(2, 15, True, 6.0), probe(2, 25, False, 30.0)]
    assert concurrency_per_replica(probes, replicas=2) == pytest.approx((10 + 6) / 2 / 2)
    assert concurrency_per_replica(probes, replicas=None) is None
    assert concurrency_per_replica([probe(1, 10, False, 9.0)], replicas=1) is None
