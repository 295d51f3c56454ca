"""The reliability tables of a run with a scenario, formatted once for the CLI and the dashboard
(`harness.report.tables.ReportTable`): each stack's success under the faults with its lower
bound and what its failures were; each fault with who was in flight, time to detect and time to
recover; and the failed requests one by one."""

from __future__ import annotations

from harness.report.results import ComparisonSummary, Reliability
from harness.report.tables import NONE, ReportTable, show

CAUSES = (("in_flight", "failed: in flight at a fault"),
          ("during_fault", "failed: sent during a fault"),
          ("overload", "failed: during an overload"),
          ("other", "failed: other"))
SHOWN_FAILURES = 20  # per stack in the CLI; summary.json lists up to 200


def _seconds(value: float | None) -> str:
    return NONE if value is None else f"{value:,.2f} s"


def reliability_table(summary: ComparisonSummary) -> ReportTable | None:
    stacks = {name: figures for name, figures in summary.stacks.items()
              if figures.reliability is not None}
    if not stacks:
        return None
    reports: dict[str, Reliability] = {name: figures.reliability  # type: ignore[misc]
                                       for name, figures in stacks.items()}
    rows = [["success rate", *[show(f.success_rate, "%") for f in stacks.values()]],
            ["success rate, 95% lower bound",
             *[show(f.success_rate_low, "%") for f in stacks.values()]],
            ["requests measured", *[show(f.requests) for f in stacks.values()]]]
    rows += [[label, *[show(r.failed_by_cause.get(cause, 0)) for r in reports.values()]]
             for cause, label in CAUSES]
    rows += [
        ["faults", *[show(len(r.faults)) for r in reports.values()]],
        ["in flight at the faults (failed)",
         *[f"{sum(f.in_flight for f in r.faults):,} ({sum(f.in_flight_failed for f in r.faults):,})"
           for r in reports.values()]],
        ["time to detect, median", *[_seconds(r.detect_s_median) for r in reports.values()]],
        ["faults never detected", *[show(r.undetected) for r in reports.values()]],
        ["time to recover, median", *[_seconds(r.recover_s_median) for r in reports.values()]],
        ["faults not recovered", *[show(r.unrecovered) for r in reports.values()]],
        ["retries (balancer)", *[NONE if r.retries is None else f"{r.retries:,.0f}"
                                 for r in reports.values()]],
    ]
    return ReportTable(f"scenario {summary.scenario} · reliability", ["metric", *stacks], rows,
                       left=("metric",))


def faults_table(summary: ComparisonSummary) -> ReportTable | None:
    rows = []
    for name, figures in summary.stacks.items():
        if figures.reliability is None:
            continue
        for fault in figures.reliability.faults:
            fates = ", ".join(f"{count} {fate}" for fate, count in sorted(fault.fates.items()))
            rows.append([name, str(fault.trial), fault.kind, fault.replica or NONE,
                         f"{fault.at_s:,.1f} s", f"{fault.in_flight:,}", fates or NONE,
                         "already down" if fault.already_down and fault.detect_s is None
                         else _seconds(fault.detect_s), _seconds(fault.recover_s)])
    if not rows:
        return None
    return ReportTable("faults · times from each fault", [
        "stack", "trial", "fault", "replica", "at (in window)", "in flight", "their fates",
        "detected", "recovered"], rows, left=("stack", "fault", "replica", "their fates"))


def failures_table(summary: ComparisonSummary, limit: int = SHOWN_FAILURES) -> \
        ReportTable | None:
    rows = []
    for name, figures in summary.stacks.items():
        report = figures.reliability
        if report is None:
            continue
        for failure in report.failures[:limit]:
            rows.append([name, str(failure.trial), str(failure.index),
                         f"{failure.scheduled_s - summary.window.start_s:,.2f} s",
                         failure.error, failure.replica or NONE, failure.cause])
        more = figures.failed_requests - min(limit, len(report.failures))
        if more > 0:
            rows.append([name, "", "", "", f"… {more:,} more", "",
                         "summary.json lists the first 200"])
    if not rows:
        return None
    return ReportTable("failed requests", ["stack", "trial", "request", "scheduled (in window)",
                                           "error", "replica", "cause"], rows,
                       left=("stack", "error", "replica", "cause"))
