"""The work of a request alone on a replica, from measured records.

The simulation draws each request's engine time alone from a measured sample. Taking every
request at a light level as that sample counts sharing twice: at 2 QPS a replica, two in
five of diy's requests overlapped another and took 27 % longer for it (docs/findings.md),
which is the batching cost the calibration fits. So the sample is the requests that were
**alone** on their replica: no other request of it in flight at any moment of theirs.

Being alone favours short requests: a long one is more often joined before it ends. A
request alone for s seconds stays alone with probability exp(−rate × s), where the rate is
how often a replica holding one request gets a second. That rate is measured from the same
records, not assumed: round-robin sends a replica every other request, P2C sends to a busy
replica only when the other is busy too, so it differs from the offered rate per replica.
The alone requests are then drawn again, as many, each in proportion to exp(rate × s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MIN_ALONE = 50  # requests alone (after weighting: their effective number), to take work from
CAP_QUANTILE = 99  # weights grow with a request's time up to this percentile's, no further


def mark_alone(records: pd.DataFrame) -> pd.DataFrame:
    """One trial's records, each marked `alone` where no other request of its replica was in
    flight (sent to done) at any moment of its own; a request no replica answered, never."""
    records = records.reset_index(drop=True)
    alone = pd.Series(False, index=records.index)
    if "replica" in records.columns:
        for _, served in records.dropna(subset=["replica"]).groupby("replica"):
            served = served.sort_values("sent_s")
            sent, done = served["sent_s"].to_numpy(), served["done_s"].to_numpy()
            # the latest answer among the requests sent before each one, and the next sending
            before = np.concatenate([[-np.inf], np.maximum.accumulate(done)[:-1]])
            after = np.concatenate([sent[1:], [np.inf]])
            alone[served.index] = (before < sent) & (after > done)
    return records.assign(alone=alone)


def company_rate(records: pd.DataFrame) -> float:
    """How often a replica holding exactly one request was sent a second, per second it held
    exactly one: arrivals at one in flight ÷ time at one in flight, over every replica (and
    trial) in `records`. 0 where no replica ever held exactly one."""
    if "replica" not in records.columns:
        return 0.0
    keys = ["trial", "replica"] if "trial" in records.columns else ["replica"]
    joined, alone_s = 0, 0.0
    for _, served in records.dropna(subset=["replica"]).groupby(keys):
        times = np.concatenate([served["sent_s"].to_numpy(), served["done_s"].to_numpy()])
        steps = np.concatenate([np.ones(len(served)), -np.ones(len(served))])
        order = np.lexsort((steps, times))  # at the same instant, an answer before a sending
        times, steps = times[order], steps[order]
        held = np.cumsum(steps)  # in flight after each event
        joined += int(np.sum((steps > 0) & (held == 2)))
        alone_s += float(np.sum(np.diff(times)[held[:-1] == 1]))
    return joined / alone_s if alone_s > 0 else 0.0


def weighted_draw(service: np.ndarray, rate: float) -> np.ndarray | None:
    """`service` drawn again, as many, each in proportion to exp(rate × its time, capped at
    the CAP_QUANTILE percentile's: one stall must not become a tenth of the work); None where
    the weights leave fewer than MIN_ALONE effective samples. Seeded: the same records give
    the same work."""
    capped = np.minimum(service, np.percentile(service, CAP_QUANTILE))
    weight = np.exp(rate * (capped - capped.max()))  # ≤ 1: no overflow
    if weight.sum() ** 2 / np.sum(weight ** 2) < MIN_ALONE:
        return None
    return np.random.default_rng(0).choice(service, len(service), p=weight / weight.sum())


@dataclass(frozen=True)
class SoloWork:
    service_s: np.ndarray  # the sample each simulated request draws its engine time from
    source: str  # where it came from, in words, for the calibration's report


def solo_service(records: pd.DataFrame) -> SoloWork:
    """Service times (done − sent) of the requests alone among `records` (marked by
    `mark_alone`), drawn again against their bias; of every request that succeeded where too
    few were alone, or the records do not name replicas: an overestimate of the work, and its
    `source` says so."""
    done = records[records["ok"]]
    alone = done[done["alone"]]
    service = (alone["done_s"] - alone["sent_s"]).to_numpy(dtype=float)
    drawn, rate = None, 0.0
    if len(alone) >= MIN_ALONE:  # the company rate sweeps every replica: only where it is used
        rate = company_rate(records)
        drawn = weighted_draw(service, rate)
    if drawn is None:
        why = ("the records do not name replicas" if "replica" not in records.columns else
               f"only {len(alone)} alone" if len(alone) < MIN_ALONE else
               f"{len(alone)} alone, fewer than {MIN_ALONE} once weighted")
        return SoloWork((done["done_s"] - done["sent_s"]).to_numpy(dtype=float),
                        f"every one of {len(done):,} requests at the lowest level ({why}): "
                        "an overestimate, sharing counted twice")
    return SoloWork(drawn, f"{len(alone):,} of {len(done):,} requests at the lowest level, "
                    f"those alone on their replica, drawn again at a company rate of "
                    f"{rate:.2f}/s")
