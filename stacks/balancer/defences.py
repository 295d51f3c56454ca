"""The balancer's defences against sick replicas and overload, each off unless configured, with
the field's defaults as reference (Envoy's, where it has one). Pure rules: the balancer and its
membership table apply them.

- `OutlierDetection` (Envoy's consecutive 5xx outlier detection): a replica whose last
  `consecutive_5xx` attempts failed (a 5xx, a refused or dropped connection, an attempt past
  its timeout) is ejected for `base_ejection_s` × the times it has been ejected, unless that
  would put more than `max_ejection_percent` of the replicas out (one is always allowed when
  none is out). Envoy: 5, 30 s, 10 %.
- `RetryBudget` (Envoy's retry budget): a retry is allowed while the retries in flight stay
  under `percent` % of the requests in flight, or under `min_concurrency`. Envoy: 20 %, 3. It
  keeps a sick fleet from being hammered by retries of retries.
- `Admission`: once every serving replica has `queue_limit` or more requests in flight or
  queued, a new request is answered 503 with `Retry-After` at once, so the admitted ones keep
  their latency (no Envoy default: off unless set).

The per-attempt timeout (`per_try_timeout_s`, Envoy's `per_try_timeout`) is a number the
balancer applies itself: an attempt that has not started to answer by then is abandoned, and
retried elsewhere when retries allow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stacks.balancer.policies import ReplicaView


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    consecutive_5xx: int = 5
    base_ejection_s: float = 30.0
    max_ejection_percent: float = 10.0

    def ejection_s(self, times_ejected: int) -> float:
        """How long the `times_ejected`-th ejection lasts (counting this one)."""
        return self.base_ejection_s * times_ejected

    def may_eject(self, ejected: int, members: int) -> bool:
        """Whether one more of `members` may be ejected while `ejected` are out."""
        return ejected == 0 or (ejected + 1) * 100 <= self.max_ejection_percent * members


@dataclass(frozen=True, slots=True)
class RetryBudget:
    percent: float = 20.0
    min_concurrency: int = 3

    def allows(self, retries_in_flight: int, requests_in_flight: int) -> bool:
        return retries_in_flight < max(self.min_concurrency,
                                       self.percent / 100 * requests_in_flight)


@dataclass(frozen=True, slots=True)
class Admission:
    queue_limit: int
    retry_after_s: int = 1

    def admits(self, serving: Sequence[ReplicaView]) -> bool:
        """Whether some serving replica still has room (with none serving, the balancer's
        own 503 says so instead)."""
        return not serving or any(view.load < self.queue_limit for view in serving)
