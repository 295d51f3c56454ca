"""The work of a request alone, from records: which requests were alone on their replica, how
often a lone request gets company, and the draw that undoes the bias towards short ones."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.projection import solo_work
from harness.projection.solo_work import (
    MIN_ALONE,
    company_rate,
    mark_alone,
    solo_service,
    weighted_draw,
)

# replica-0: a request, a second joining it half-way, then one alone; replica-1: one alone;
# and a request no replica answered.
RECORDS = pd.DataFrame({
    "sent_s": [0.0, 0.5, 2.0, 0.2, 3.0], "done_s": [1.0, 1.2, 2.3, 0.4, 3.1],
    "ok": [True, True, True, True, False],
    "replica": ["replica-0", "replica-0", "replica-0", "replica-1", None]})


def test_a_request_is_alone_only_if_nothing_else_on_its_replica_overlapped_it() -> None:
    assert mark_alone(RECORDS)["alone"].tolist() == [False, False, True, True, False]


def test_company_comes_at_the_rate_measured_while_a_replica_holds_one_request() -> None:
    # Held one: replica-0 for 0.5 s before the join, 0.2 s after the first answer, 0.3 s
    # for the lone request; replica-1 0.2 s. One arrival found one in flight.
    assert company_rate(RECORDS) == pytest.approx(1 / 1.2)
    alone_only = RECORDS.drop(index=1)
    assert company_rate(alone_only) == 0.0
    assert company_rate(RECORDS.drop(columns="replica")) == 0.0


def test_too_few_alone_takes_every_success_and_says_so() -> None:
    work = solo_service(mark_alone(RECORDS))
    np.testing.assert_allclose(sorted(work.service_s), [0.2, 0.3, 0.7, 1.0])
    assert work.source.startswith("every one of 4 requests at the lowest level (only 2 alone)")
    unnamed = solo_service(mark_alone(RECORDS.drop(columns="replica")))
    assert "(the records do not name replicas)" in unnamed.source


def test_a_long_request_is_drawn_as_much_more_often_as_it_is_less_often_alone() -> None:
    # At a company rate of 2 a second, a request of 1.0 s stays alone e^(2 × 0.9) times less
    # often than one of 0.1 s, so it is drawn that much more often.
    drawn = weighted_draw(np.repeat([0.1, 1.0], 100), 2.0)
    assert drawn is not None
    assert len(drawn) == 200
    assert np.mean(drawn == 1.0) == pytest.approx(math.exp(1.8) / (1 + math.exp(1.8)), abs=0.06)
    assert np.array_equal(drawn, weighted_draw(np.repeat([0.1, 1.0], 100), 2.0))  # seeded


def test_one_stall_does_not_become_the_work() -> None:
    """A 30 s stall among 199 requests of 0.2 s: without the cap its weight would be e^60
    times theirs; capped at the 99th percentile, it is drawn about as often as it occurred."""
    service = np.append(np.full(199, 0.2), 30.0)
    drawn = weighted_draw(service, 2.0)
    assert drawn is not None
    assert np.sum(drawn == 30.0) <= 5
    assert weighted_draw(np.linspace(0.1, 5.0, MIN_ALONE), 20.0) is None  # weights on a few


def test_the_draw_undoes_the_bias_of_who_is_alone() -> None:
    """Poisson arrivals at 2 a second to one replica serving each request alone in its own
    time (no slowdown): the alone ones are the short ones, the draw gives back all of them."""
    rng = np.random.default_rng(5)
    sent = np.cumsum(rng.exponential(0.5, 4000))
    service = rng.lognormal(math.log(0.25), 0.5, 4000)
    records = mark_alone(pd.DataFrame({"sent_s": sent, "done_s": sent + service, "ok": True,
                                       "replica": "replica-0", "trial": 1}))
    alone = records[records["alone"]]
    assert np.mean(alone["done_s"] - alone["sent_s"]) < 0.9 * np.mean(service)  # the bias
    work = solo_service(records)
    assert np.mean(work.service_s) == pytest.approx(np.mean(service), rel=0.05)
    assert work.source == (f"{len(alone):,} of 4,000 requests at the lowest level, those alone "
                           f"on their replica, drawn again at a company rate of "
                           f"{company_rate(records):.2f}/s")


def test_weights_left_on_too_few_fall_back_to_every_success_and_say_so(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sent = np.arange(100) * 2.0
    records = mark_alone(pd.DataFrame({"sent_s": sent, "done_s": sent + 0.5, "ok": True,
                                       "replica": "replica-0"}))
    monkeypatch.setattr(solo_work, "weighted_draw", lambda service, rate: None)
    work = solo_service(records)
    assert len(work.service_s) == 100
    assert work.source.startswith("every one of 100 requests at the lowest level (100 alone, "
                                  f"fewer than {MIN_ALONE} once weighted)")
