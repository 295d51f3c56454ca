"""The cold-start report (`harness coldstart`), as typed results: every start's phases, and per
stack and cache state the phases over trials with their intervals, then the ratios."""

from __future__ import annotations

from pydantic import Field

from harness.report.result_base import Figure, Result

COLDSTART_FILE = "coldstart.json"
PHASES = ("image_s", "engine_s", "first_response_s")
PHASE_LABELS = {"image_s": "image fetch or mount", "engine_s": "engine start to /health",
                "first_response_s": "/health to first completion",
                "total_s": "scheduled to first answer",
                "image_part_s": "the image's part: cold less warm first answer"}


class StartRecord(Result):
    """One replica start from an image, phase by phase."""

    stack: str
    mode: str = Field(description="eager or lazy")
    trial: int
    cache: str = Field(description="cold (the node held nothing of the image) or warm (the "
                                   "node kept it from the start before)")
    image_s: float = Field(description="replica scheduled → image usable (manifest, then "
                                       "download, check and unpack, or mount)")
    engine_s: float = Field(description="engine process started → /health 200")
    first_response_s: float = Field(description="/health 200 → first successful completion")
    total_s: float = Field(description="replica scheduled → first successful completion")
    bytes_fetched: int = Field(description="bytes the registry sent for the image (blob and "
                                           "manifest) before the first completion")
    image_bytes: int
    fetched_fraction: float = Field(description="bytes_fetched ÷ image size")
    prefetch_blocks: int = Field(default=0, description="blocks a lazy start prefetched by "
                                 "its image's plan, in the background from the mount on")
    file_system: str = Field(default="", description="lazy: what read the mounted image, "
                             "kernel (squashfs on a loop device) or fuse (squashfuse_ll)")
    download_s: float = Field(default=0.0, description="eager, cold: of image_s, the blob's "
                              "download and digest check")
    unpack_s: float = Field(default=0.0, description="eager, cold: of image_s, its unpacking "
                            "to local disk")


class PhaseFigure(Result):
    value: float = Field(description="mean over trials")
    ci_low: Figure
    ci_high: Figure
    trials: list[float]


class StartSummary(Result):
    stack: str
    mode: str
    cache: str
    phases: dict[str, PhaseFigure] = Field(description="image_s, engine_s, first_response_s "
                                                       "and total_s")
    fetched_fraction: PhaseFigure


class StartRatio(Result):
    """A phase of the eager stack ÷ the same phase of the lazy one, paired by trial."""

    phase: str = Field(description="image_s, engine_s or total_s; or image_part_s: each "
                                   "trial's cold total_s less its warm one")
    cache: str
    eager: str
    lazy: str
    value: float = Field(description="geometric mean of the paired ratios")
    ci_low: Figure
    ci_high: Figure
    goal: float | None = Field(default=None, description="the ratio the goal asks for")
    method: str


class RegistrySettings(Result):
    bandwidth_mbps: float
    latency_ms: float


class ColdStartResult(Result):
    run_id: str
    stacks: list[str]
    trials: int
    registry: RegistrySettings
    images: dict[str, dict[str, str | int | float | list[str]]] = Field(
        description="per stack: digest, size, unpacked bytes, distributions left out")
    starts: list[StartRecord]
    summaries: list[StartSummary]
    ratios: list[StartRatio]
    notes: list[str] = Field(default_factory=list)
