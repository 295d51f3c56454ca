"""The reliability report of a run with a scenario, as typed results (part of
`harness.report.results`; computed by `harness.measure.reliability`)."""

from __future__ import annotations

from pydantic import Field

from harness.report.result_base import Figure, Result


class FaultOutcome(Result):
    """One fault as it struck one trial (`harness.measure.reliability`)."""

    trial: int
    fault: int = Field(description="its index in the scenario")
    kind: str = Field(description="kill_replica, hang_replica, slow_replica or overload")
    replica: str | None = Field(description="the replica it struck (none for an overload)")
    at_s: float = Field(description="when it was acted on, s into the measured window")
    for_s: float = Field(description="how long it lasted, s (0: a kill)")
    in_flight: int = Field(description="requests on that replica (overload: anywhere) when it "
                                       "struck")
    in_flight_failed: int = Field(description="of those, the ones that failed")
    fates: dict[str, int] = Field(description="how those ended: `ok` or their error class")
    detect_s: Figure = Field(description="fault → the balancer ejects the replica, s (null: "
                                         "never ejected)")
    recover_s: Figure = Field(description="fault → the replica back in rotation, s (null: "
                                          "not within the trial)")
    already_down: bool = Field(default=False, description="the replica was out already when "
                               "it struck (restarting or ejected): not counted as undetected")


class FailedRequest(Result):
    trial: int
    index: int = Field(description="its index in the schedule")
    scheduled_s: float
    error: str
    replica: str | None = Field(description="the replica that failed it, when known")
    cause: str = Field(description="in_flight, during_fault, overload or other")


class Reliability(Result):
    """A stack under a scenario's faults, over its trials."""

    scenario: str
    faults: list[FaultOutcome]
    failed_by_cause: dict[str, int] = Field(description="failed requests in the window, by "
                                                        "cause")
    detect_s_median: Figure = Field(description="median time to detect over faults detected")
    recover_s_median: Figure = Field(description="median time to recover over faults "
                                                 "recovered")
    undetected: int = Field(description="replica faults the balancer never ejected for (on a "
                                        "replica that was serving)")
    unrecovered: int = Field(description="replica faults not recovered within their trial")
    retries: Figure = Field(description="requests the balancer sent again elsewhere, over "
                                        "the trials (null: not reported)")
    failures: list[FailedRequest] = Field(description="failed requests, one by one (the "
                                                      "first 200)")
