"""`harness project`: the fleet projection's shell (registered by `harness.cli`; the work is in
`harness.projection`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from harness.cli_output import err, stack_list
from harness.errors import UsageError
from harness.projection.cold_starts import measured_cold_starts
from harness.projection.fleet_size import REPLICAS_PER_BALANCER, SIM_REPLICAS
from harness.projection.projection import Projection, StackProjection, project_stack
from stacks.spec import PROJECT_ROOT, load_local_stack_spec

# One replica's cold start from its image, measured here (docs/images.md): 41-48 s.
MEASURED_COLD_START_S = 48.0


def parse_replica_qps(text: str, stacks: list[str]) -> dict[str, float]:
    given: dict[str, float] = {}
    for item in filter(None, text.split(",")):
        name, sep, value = item.partition("=")
        try:
            given[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or name not in stacks or given.get(name, 0) <= 0:
            raise UsageError(f"--replica-qps: want STACK=QPS for the stacks projected "
                             f"({', '.join(stacks)}), e.g. diy=750,optimized=1200; got {item!r}")
    return given


def project(
    calibrate_from: Annotated[Path, typer.Option(help="a `harness capacity` folder, or a "
                                                 "`harness run --workload calibration_levels` "
                                                 "folder: its load levels calibrate the "
                                                 "simulation")],
    target_qps: Annotated[float, typer.Option(help="the rate to size fleets for")] = 200_000,
    slo_p99: Annotated[float, typer.Option(help="P99 end-to-end latency bound, seconds")] = 1.0,
    stacks: Annotated[str, typer.Option(help="stacks measured in that run")] = "diy,optimized",
    replica_qps: Annotated[str, typer.Option(help="per-replica capacities to project with "
                                             "instead of this machine's, e.g. "
                                             "diy=750,optimized=1200")] = "",
    cold_start_s: Annotated[float, typer.Option(help="a replica's cold start in the day's "
                                                "autoscaling")] = MEASURED_COLD_START_S,
    coldstart_from: Annotated[Path | None, typer.Option(help="a `harness coldstart` folder: "
                                                        "each stack's cold start from it, "
                                                        "in place of --cold-start-s")] = None,
    replicas_per_balancer: Annotated[int, typer.Option(
        help="the simulated fleet's replicas for each balancer; requests go to a balancer at "
        "random")] = REPLICAS_PER_BALANCER,
    seed: Annotated[int, typer.Option(help="the simulation's random seed")] = 0,
    out: Annotated[Path | None, typer.Option(help="where projection.json goes")] = None,
) -> None:
    """Calibrate a request-level simulation on measured probes, check it reproduces them
    within 15 %, then size fleets for the target rate, per stack and balancer policy."""
    if target_qps <= 0 or slo_p99 <= 0 or cold_start_s < 0:
        raise UsageError("--target-qps and --slo-p99 must be positive, --cold-start-s not "
                         "negative")
    if not 1 <= replicas_per_balancer <= SIM_REPLICAS:
        raise UsageError(f"--replicas-per-balancer: between 1 and {SIM_REPLICAS} (the "
                         f"simulated fleet's replicas), not {replicas_per_balancer}")
    names = stack_list(stacks)
    given = parse_replica_qps(replica_qps, names)
    starts = measured_cold_starts(coldstart_from, names) if coldstart_from else {}
    folder = out or PROJECT_ROOT / "results" / f"project-{datetime.now():%Y%m%d-%H%M%S}"
    result = Projection(target_qps=target_qps, slo_p99_s=slo_p99,
                        calibrated_from=str(calibrate_from),
                        replicas_per_balancer=replicas_per_balancer, cold_start_s=cold_start_s,
                        coldstart_from=str(coldstart_from) if coldstart_from else None,
                        stacks=[])
    for name in names:
        scaling = load_local_stack_spec(name).autoscaling
        err.print(f"calibrating {name} on {calibrate_from} ...", highlight=False)
        result.stacks.append(project_stack(calibrate_from, name, target_qps, slo_p99,
                                           given.get(name), scaling,
                                           starts.get(name, cold_start_s),
                                           "measured" if starts else "given", seed,
                                           replicas_per_balancer))
        folder.mkdir(parents=True, exist_ok=True)  # only once there is something to keep
        (folder / "projection.json").write_text(result.model_dump_json(indent=2))
    for stack in result.stacks:
        for table in projection_tables(stack, result):
            err.print("")
            err.print(table)
    err.print(f"\nsaved in {folder / 'projection.json'}", highlight=False)


def all_and_slowest(overall: float | None, slowest: float | None, form: str) -> str:
    """A level's figure over all its requests' lives and over its slowest 1 %'s."""
    if overall is None or slowest is None:
        return "–"
    return f"{overall:{form}} / {slowest:{form}}"


def spread(values: list[float]) -> str:
    """The lowest and highest of several trials' figures; the one where there is one."""
    if len(values) < 2:
        return f"{values[0]:.3f}" if values else "–"
    return f"{min(values):.3f}–{max(values):.3f}"


def tail_table(stack: StackProjection) -> Table:
    """What each level's measured P99 rests on: how far the trials' own P99s spread, and the
    machine over the lives of all its requests against its slowest 1 %."""
    tail = Table(title=f"{stack.stack}: what each level's measured P99 rests on — over the "
                       "lives of all its requests / of its slowest 1 %")
    for column in ("rate QPS", "P99 per trial", "host's steal", "cores ×",
                   "CPU outside the run"):
        tail.add_column(column, justify="right")
    for level in stack.levels:
        tail.add_row(f"{level.rate_qps:.1f}", spread(level.p99_trials),
                     all_and_slowest(level.steal, level.steal_slowest, ".1%"),
                     all_and_slowest(level.core_speed, level.core_speed_slowest, ".2f"),
                     all_and_slowest(level.outside, level.outside_slowest, ".1%"))
    return tail


def projection_tables(stack: StackProjection, result: Projection) -> list[Table]:
    calibration = Table(title=f"{stack.stack}: calibration on {stack.replicas_measured} "
                              f"replicas behind {stack.policy_measured} — measured against "
                              f"simulated, worst error {stack.calibration_error:.1%}; fitted "
                              f"{stack.front_s * 1000:.1f} ms a request in each of "
                              f"{stack.front_servers} API server(s), sharing cost "
                              f"{stack.jump:.3g}, batching cost {stack.slowdown:.3g}"
                              + (f"; the work alone: {stack.work_source}"
                                 if stack.work_source else ""))
    for column in ("rate QPS", "machine ×", "P50 measured", "P50 simulated", "error",
                   "P99 measured", "P99 simulated", "error", "held out"):
        calibration.add_column(column, justify="right")
    for level in stack.levels:
        calibration.add_row(f"{level.rate_qps:.1f}", f"{level.speed:.2f}",
                            f"{level.measured_p50_s:.3f}",
                            f"{level.simulated_p50_s:.3f}", f"{level.p50_error:.1%}",
                            f"{level.measured_p99_s:.3f}", f"{level.simulated_p99_s:.3f}",
                            f"{level.p99_error:.1%}", f"{level.held_out_error:.1%}")
    tail = tail_table(stack)
    if not stack.trusted:
        calibration.caption = (f"not projected: the error is over {result.max_error:.0%}, or "
                               "fewer than 3 levels")
        return [calibration, tail]
    if stack.note:
        calibration.caption = stack.note
        return [calibration, tail]
    label = f"simulated (calibrated, error {stack.calibration_error:.0%})"
    simulated = stack.fleets[0] if stack.fleets else None
    fleet = Table(title=f"{stack.stack}: replicas for {result.target_qps:,.0f} QPS at P99 ≤ "
                        f"{result.slo_p99_s:g} s — projected"
                        + (f"; efficiency from {simulated.simulated_replicas} replicas behind "
                           f"{simulated.balancers} balancer(s)" if simulated else ""))
    for column in ("policy", f"efficiency, {label}", "per-replica QPS", "from", "replicas"):
        fleet.add_column(column, justify="left" if column in ("policy", "from") else "right")
    for row in stack.fleets:
        fleet.add_row(row.policy, f"{row.efficiency:.3f}", f"{row.per_replica_qps:,.1f}",
                      row.source, f"{row.replicas:,}")
    day = Table(title=f"{stack.stack}: a diurnal day (trough 30 % of peak) with autoscaling, "
                      f"{stack.cold_start_s:.0f} s cold starts ({stack.cold_start_source}) — "
                      "projected")
    for column in ("policy", "replica-hours", "SLO-violating minutes", "peak replicas",
                   "static fleet", "static replica-hours"):
        day.add_column(column, justify="left" if column == "policy" else "right")
    for hours in stack.day:
        day.add_row(hours.policy, f"{hours.replica_hours:,.0f}", str(hours.violating_minutes),
                    f"{hours.peak_replicas:,}", f"{hours.static_replicas:,}",
                    f"{hours.static_replica_hours:,.0f}")
    return [calibration, tail, fleet, day]
