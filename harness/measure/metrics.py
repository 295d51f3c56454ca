"""Every number shown to a user, computed here, from per-request records, with pandas.

Definitions (times are seconds from the trial's anchor; the measured window is cut by
*scheduled* time, `warmup_s <= scheduled_s < warmup_s + measured_s`, per trial):

- `requests`: scheduled in the window; `success_rate` = ok ÷ requests (a request never
  answered counts as a failure). `success_rate_low`: its exact (Clopper–Pearson) one-sided 95 %
  lower confidence bound: with no failure, 0.05^(1/n), about 1 − 3/n (the rule of three), so
  claiming 99.99 % takes about 30,000 requests without a failure.
- `throughput_qps`: successful requests that *finished* inside the window, per second of
  window — what the stack delivered. `goodput_qps`: those of them within `slo_s` end to end.
  `offered_qps`: requests scheduled in the window per second. `output_tokens_per_s` likewise.
- `latency_*`: end to end from the *scheduled* send time (`done_s - scheduled_s`), the
  headline: it counts the time a request waited because the load generator or the stack was
  behind (coordinated omission corrected). `service_*`: from the actual send
  (`done_s - sent_s`). `ttft_*`: first generated token after the send, streaming only.
  Percentiles are exact (numpy's default linear interpolation) over the successful requests
  scheduled in the window.
- `send_lag_*`: `sent_s - scheduled_s` over every request sent — the load generator's
  fidelity.
- `replica_share`: fraction of answered requests per replica (from `x-upstream`).
- `success_interval`: a success rate's exact (Clopper–Pearson) two-sided 95 % interval.
  `quantile_interval`: a percentile's distribution-free 95 % interval from order statistics
  (the ranks between which the true quantile lies with 95 % probability, by the binomial
  law); it assumes nothing of the latency's distribution, and it has no upper bound until
  enough requests lie above the percentile: for P99, 0.99^n ≤ 2.5 %, about 370 requests.
- `latency_over_slo` and `latency_over_slo_allowed`: how many requests decide "P99 ≤ SLO": the
  successes slower than the SLO, and the most that may be, however slow, for the P99 to stay
  within it (0 below 101 requests: one slow request can then decide it).

Over time (`per_second`), each second of the window holds what finished in it
(`throughput_qps`), and of the requests scheduled in it the end-to-end P99 and the failures;
with several trials, counts are per trial and percentiles pool the trials.

An empty series gives NaN (null in JSON) beside its count, never 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from harness.measure.records import STOPPED

PERCENTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99, "p999": 0.999}
# Ratio = stack ÷ baseline; for latencies below 1 is better, for the rest above 1.
RATIO_METRICS = ("throughput_qps", "goodput_qps", "success_rate", "output_tokens_per_s",
                 "latency_p50_s", "latency_p90_s", "latency_p99_s", "latency_p999_s",
                 "service_p50_s", "service_p99_s", "ttft_p50_s", "ttft_p99_s")


@dataclass(frozen=True, slots=True)
class Window:
    """The measured window of every trial, by scheduled time."""

    start_s: float
    length_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.length_s


def in_window(records: pd.DataFrame, window: Window) -> pd.DataFrame:
    """The requests scheduled in the measured window."""
    return records[(records["scheduled_s"] >= window.start_s)
                   & (records["scheduled_s"] < window.end_s)]


def trial_count(records: pd.DataFrame) -> int:
    return int(records["trial"].nunique()) if "trial" in records.columns else 1


def success_lower_bound(successes: int, requests: int, confidence: float = 0.95) -> float:
    """The exact one-sided lower confidence bound of a success rate (Clopper–Pearson);
    NaN with no request."""
    if requests == 0:
        return math.nan
    if successes == 0:
        return 0.0
    return float(stats.beta.ppf(1 - confidence, successes, requests - successes + 1))


def success_interval(successes: int, requests: int,
                     confidence: float = 0.95) -> tuple[float, float]:
    """The exact two-sided interval of a success rate (Clopper–Pearson); NaNs with no
    request."""
    if requests == 0:
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    low = 0.0 if successes == 0 else float(stats.beta.ppf(tail, successes,
                                                          requests - successes + 1))
    high = 1.0 if successes == requests else float(stats.beta.ppf(1 - tail, successes + 1,
                                                                   requests - successes))
    return low, high


def quantile_interval(values: np.ndarray, quantile: float,
                      confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval of a quantile from the sorted sample: the order
    statistics x(l) and x(u), with l and u the binomial (n, quantile) law's tails, so that
    P(x(l) ≤ true quantile ≤ x(u)) ≥ confidence. A bound beyond the sample is NaN: too few
    values lie on that side of the quantile to bound it."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    n = ordered.size
    if n == 0:
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    # Ranks (1-based): B ~ Binomial(n, q) values lie below the quantile; P(l ≤ B < u) ≥ 1 − 2 tail.
    lower_rank = int(stats.binom.ppf(tail, n, quantile))
    upper_rank = int(stats.binom.ppf(1 - tail, n, quantile)) + 1
    low = float(ordered[lower_rank - 1]) if lower_rank >= 1 else math.nan
    high = float(ordered[upper_rank - 1]) if upper_rank <= n else math.nan
    return low, high


def percentiles(values: pd.Series, prefix: str) -> dict[str, float | int]:
    array = values.dropna().to_numpy(dtype=np.float64)
    out: dict[str, float | int] = {f"{prefix}_count": int(array.size)}
    for name, q in PERCENTILES.items():
        out[f"{prefix}_{name}_s"] = float(np.quantile(array, q)) if array.size else math.nan
    out[f"{prefix}_mean_s"] = float(array.mean()) if array.size else math.nan
    return out


def over_slo(latency: pd.Series, slo_s: float) -> dict[str, int]:
    """How many requests decide whether P99 ≤ SLO: `latency_over_slo`, the successes slower
    than the SLO, and `latency_over_slo_allowed`, the most that may be, however slow, for the
    P99 (numpy's linear interpolation over n values, at position 0.99 (n - 1)) to stay within
    it: the values after that position's upper neighbour. Below 101 requests it is 0."""
    n = int(latency.notna().sum())
    allowed = max(0, n - 1 - math.ceil(0.99 * (n - 1))) if n else 0
    return {"latency_over_slo": int((latency > slo_s).sum()),
            "latency_over_slo_allowed": allowed}


def summarize(records: pd.DataFrame, window: Window, slo_s: float,
              stream: bool) -> dict[str, Any]:
    """Summary of one stack over its trials (a `trial` column; one trial without it). TTFT is
    reported only for streams, where `first_byte_s` is the first generated token."""
    trials = trial_count(records)
    seconds = window.length_s * trials
    scheduled = in_window(records, window)
    ok = scheduled[scheduled["ok"]]
    finished = records[records["ok"] & (records["done_s"] >= window.start_s)
                       & (records["done_s"] < window.end_s)]
    end_to_end = finished["done_s"] - finished["scheduled_s"]
    sent = scheduled[scheduled["sent_s"].notna()]
    lag = sent["sent_s"] - sent["scheduled_s"]
    answered = scheduled["replica"].dropna()
    summary: dict[str, Any] = {
        "trials": trials,
        "window_s": window.length_s,
        "requests": int(len(scheduled)),
        "ok_requests": int(len(ok)),
        "failed_requests": int(len(scheduled) - len(ok)),
        "success_rate": len(ok) / len(scheduled) if len(scheduled) else math.nan,
        "success_rate_low": success_lower_bound(len(ok), len(scheduled)),
        "offered_qps": len(scheduled) / seconds,
        "throughput_qps": len(finished) / seconds,
        "goodput_qps": int((end_to_end <= slo_s).sum()) / seconds,
        "output_tokens_per_s": float(finished["output_tokens"].sum()) / seconds,
        "slo_s": slo_s,
        **percentiles(ok["done_s"] - ok["scheduled_s"], "latency"),
        **over_slo(ok["done_s"] - ok["scheduled_s"], slo_s),
        **percentiles(ok["done_s"] - ok["sent_s"], "service"),
        **(percentiles(ok["first_byte_s"] - ok["sent_s"], "ttft") if stream else {}),
        **percentiles(lag, "send_lag"),
        "send_lag_max_s": float(lag.max()) if len(lag) else math.nan,
        "errors": {str(k): int(v) for k, v in scheduled["error"].value_counts().items()},
        "replica_share": {str(k): float(v)
                          for k, v in answered.value_counts(normalize=True).sort_index().items()},
    }
    return summary


def per_second(records: pd.DataFrame, window: Window) -> pd.DataFrame:
    """One row per whole second of the window (`second`: seconds from the run's start):
    `offered_qps`, `throughput_qps`, `latency_p99_s` (NaN where nothing succeeded), `errors`."""
    trials = trial_count(records)
    seconds = np.arange(math.floor(window.start_s), math.ceil(window.end_s))
    scheduled = in_window(records, window)
    by_schedule = np.floor(scheduled["scheduled_s"]).astype(int)
    ok = scheduled[scheduled["ok"]]
    latency = (ok["done_s"] - ok["scheduled_s"]).groupby(by_schedule[scheduled["ok"]])
    finished = records[records["ok"] & (records["done_s"] >= window.start_s)
                       & (records["done_s"] < window.end_s)]
    by_done = np.floor(finished["done_s"]).astype(int)
    frame = pd.DataFrame({
        "second": seconds,
        "offered_qps": by_schedule.value_counts().reindex(seconds, fill_value=0).to_numpy()
        / trials,
        "throughput_qps": by_done.value_counts().reindex(seconds, fill_value=0).to_numpy()
        / trials,
        "latency_p99_s": latency.quantile(0.99).reindex(seconds).to_numpy(dtype=np.float64),
        "errors": (~scheduled["ok"]).groupby(by_schedule).sum().reindex(seconds, fill_value=0)
        .to_numpy() / trials,
    })
    return frame


def error_timeline(records: pd.DataFrame, window: Window) -> pd.DataFrame:
    """Failed requests per second of scheduled time and error class (`second`, `error`,
    `count`, per trial); empty when nothing failed."""
    failed = in_window(records, window)
    failed = failed[~failed["ok"]]
    counts = (failed.assign(second=np.floor(failed["scheduled_s"]).astype(int),
                            error=failed["error"].fillna("unknown"))
              .groupby(["second", "error"]).size().rename("count").reset_index())
    return counts.assign(count=counts["count"] / trial_count(records))


def latency_cdf(records: pd.DataFrame, window: Window) -> pd.DataFrame:
    """End-to-end latency of every successful request in the window, sorted, with the fraction
    of requests at or below it (`latency_s`, `fraction`)."""
    scheduled = in_window(records, window)
    ok = scheduled[scheduled["ok"]]
    latency = np.sort((ok["done_s"] - ok["scheduled_s"]).to_numpy(dtype=np.float64))
    return pd.DataFrame({"latency_s": latency,
                         "fraction": np.arange(1, latency.size + 1) / max(latency.size, 1)})


def in_flight(figures: dict[str, Any]) -> float | None:
    """Mean requests in flight over a summary's window, by Little's law: throughput × mean
    service time (what a balancer counts from send to answer); None where either is unknown."""
    value = figures["throughput_qps"] * figures["service_mean_s"]
    return None if math.isnan(value) else float(value)


def ratios(summaries: dict[str, dict[str, Any]], baseline: str) -> dict[str, dict[str, float]]:
    """Each other stack's metrics divided by the baseline's (NaN where undefined)."""
    base = summaries[baseline]
    out: dict[str, dict[str, float]] = {}
    for name, summary in summaries.items():
        if name == baseline:
            continue
        out[name] = {metric: ratio_of(summary.get(metric), base.get(metric))
                     for metric in RATIO_METRICS if metric in base}
    return out


def ratio_of(value: Any, base: Any) -> float:
    """value ÷ base; NaN where either is missing or NaN, or base is 0."""
    if value is None or base is None or not base or math.isnan(base) or math.isnan(value):
        return math.nan
    return float(value) / float(base)


def finished_success(probes: pd.DataFrame) -> pd.Series:
    """Success over the requests each probe waited for: a probe stopped once failing was
    certain never learned how its unfinished requests would end, so they are left out (its
    summary counts them as failures, as a run must)."""
    stopped = probes["errors"].map(lambda errors: (errors or {}).get(STOPPED, 0))
    finished = (probes["requests"] - stopped).where(lambda count: count > 0)
    return probes["ok_requests"] / finished
